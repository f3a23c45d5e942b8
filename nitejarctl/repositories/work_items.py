"""Work items (incoming requests) — nitejar's workItems repository.

Selects only the columns the live table has: nitejar-created databases have
plugin_instance_id instead of integration_id.
"""

from __future__ import annotations

from nitejarctl.errors import NotFound
from nitejarctl.models import WorkItem

LIST_FIELDS = ("id", "session_key", "source", "source_ref", "status", "title",
               "created_at", "updated_at")


def _fields(db, names=None):
    present = db.present_fields(WorkItem)
    if names is None:
        return present
    by_name = {f.name: f for f in present}
    return [by_name[n] for n in names if n in by_name]


def list_query(db, *, status: str | None = None, session_key: str | None = None,
               source: str | None = None):
    """Work items, oldest first."""
    query = (WorkItem.select(*_fields(db, LIST_FIELDS))
             .order_by(WorkItem.created_at, WorkItem.id))
    if status is not None:
        query = query.where(WorkItem.status == status)
    if session_key is not None:
        query = query.where(WorkItem.session_key == session_key)
    if source is not None:
        query = query.where(WorkItem.source == source)
    return query.dicts()


def get(db, work_item_id: str) -> dict:
    """Every column the model knows (payload as stored)."""
    row = WorkItem.select(*_fields(db)).where(WorkItem.id == work_item_id).dicts().first()
    if row is None:
        raise NotFound(f"no work item with id {work_item_id!r}")
    return row


def exists(db, work_item_id: str) -> bool:
    return WorkItem.select().where(WorkItem.id == work_item_id).exists()
