"""Jobs (an agent's run on a work item) — nitejar's jobs repository."""

from __future__ import annotations

from nitejarctl.errors import NotFound
from nitejarctl.models import Agent, Job, Message

LIST_FIELDS = ("id", "work_item_id", "agent_id", "status", "error_text", "started_at",
               "completed_at", "created_at", "updated_at")


def _fields(db, names=None):
    present = db.present_fields(Job)
    if names is None:
        return present
    by_name = {f.name: f for f in present}
    return [by_name[n] for n in names if n in by_name]


def _with_agent_name(db, names=None):
    return (Job.select(*_fields(db, names), Agent.name.alias("agent_name"))
            .join(Agent, on=(Agent.id == Job.agent_id)))


def list_query(db, *, agent_id: str | None = None, status: str | None = None,
               work_item_id: str | None = None):
    """Jobs with their agent's name, oldest first."""
    query = _with_agent_name(db, LIST_FIELDS).order_by(Job.created_at, Job.id)
    if agent_id is not None:
        query = query.where(Job.agent_id == agent_id)
    if status is not None:
        query = query.where(Job.status == status)
    if work_item_id is not None:
        query = query.where(Job.work_item_id == work_item_id)
    return query.dicts()


def get(db, job_id: str) -> dict:
    row = _with_agent_name(db).where(Job.id == job_id).dicts().first()
    if row is None:
        raise NotFound(f"no job with id {job_id!r}")
    return row


def messages_query(db, job_id: str):
    """A job's messages in order (id, role, content, created_at); within one
    second, in insertion order on SQLite."""
    return (Message.select(Message.id, Message.role, Message.content, Message.created_at)
            .where(Message.job_id == job_id)
            .order_by(Message.created_at, db.insertion_order(Message)).dicts())
