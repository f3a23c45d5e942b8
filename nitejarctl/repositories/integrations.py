"""Integrations (telegram, github, …) — nitejar's integrations repository.

Newer nitejar databases keep them as plugin instances instead; there every
function here fails with one line saying so.
"""

from __future__ import annotations

from nitejarctl.errors import NotFound, OperationalProblem, SchemaProblem, UsageProblem
from nitejarctl.models import AgentIntegration, Integration, WorkItem

LIST_FIELDS = ("id", "type", "name", "scope", "enabled", "created_at", "updated_at")


def require(db, table: str = "integrations") -> None:
    """Fail with one line when the database has no `table` (integrations or
    agent_integrations), naming nitejar's replacement when it is there."""
    if db.columns(table):
        return
    if db.columns("plugin_instances"):
        raise SchemaProblem(
            f"this database has no {table!r} table: it is managed by nitejar's migrator, which "
            "keeps integrations as plugin instances ('plugin_instances'); manage those in nitejar")
    db.require_table(table)


def _fields(names=LIST_FIELDS):
    return [getattr(Integration, n) for n in names]


def list_query(db, *, type: str | None = None, enabled: bool | None = None):
    require(db)
    query = Integration.select(*_fields()).order_by(Integration.type, Integration.name, Integration.id)
    if type is not None:
        query = query.where(Integration.type == type)
    if enabled is not None:
        query = query.where(Integration.enabled == (1 if enabled else 0))
    return query.dicts()


def resolve(db, ref: str) -> dict:
    """The integration whose id, or else unique name, is `ref` (every column). NotFound."""
    require(db)
    fields = _fields(("id", "type", "name", "config", "scope", "enabled", "created_at",
                      "updated_at"))
    row = Integration.select(*fields).where(Integration.id == ref).dicts().first()
    if row is not None:
        return row
    rows = list(Integration.select(*fields).where(Integration.name == ref).limit(2).dicts())
    if not rows:
        raise NotFound(f"no integration with id or name {ref!r}")
    if len(rows) > 1:
        raise UsageProblem(f"several integrations are named {ref!r}: give the id")
    return rows[0]


def get(db, integration_id: str) -> dict:
    require(db)
    row = (Integration.select(*_fields()).where(Integration.id == integration_id).dicts().first())
    if row is None:
        raise NotFound(f"no integration with id {integration_id!r}")
    return row


def agents_query(db, integration_id: str):
    """The agents linked to an integration."""
    from nitejarctl.models import Agent

    return (Agent.select(Agent.id, Agent.name, Agent.status,
                         AgentIntegration.created_at.alias("linked_at"))
            .join(AgentIntegration, on=(AgentIntegration.agent_id == Agent.id))
            .where(AgentIntegration.integration_id == integration_id)
            .order_by(Agent.name, Agent.id).dicts())


def work_item_count(db, integration_id: str) -> int:
    if "integration_id" not in db.columns("work_items"):
        return 0
    return WorkItem.select().where(WorkItem.integration_id == integration_id).count()


def create(db, *, type: str, name: str, config: dict | None = None, scope: str = "global",
           enabled: bool = True) -> dict:
    import uuid

    from nitejarctl.db import now
    from nitejarctl.jsonarg import dumps

    require(db)
    if config is not None:
        from nitejarctl.secrets import keep_stored

        config = keep_stored(config, None, f"integration {name!r}")  # a placeholder stands for nothing
    t = now()
    row = {"id": str(uuid.uuid4()), "type": type, "name": name, "scope": scope,
           "enabled": 1 if enabled else 0, "created_at": t, "updated_at": t}
    with db.atomic():
        Integration.insert({**row, "config": None if config is None else dumps(config)}).execute()
    return row


def update(db, ref: str, *, type: str | None = None, name: str | None = None,
           scope: str | None = None, config: dict | None = None, sets=(), unsets=()) -> tuple[dict, list]:
    """Change one integration (config edits as for agents). Returns the row and
    the unset keys that were not there."""
    from nitejarctl.db import now
    from nitejarctl.repositories._config import edited_config

    values: dict = {}
    for field, value in ((Integration.type, type), (Integration.name, name),
                         (Integration.scope, scope)):
        if value is not None:
            values[field] = value
    missing: list = []
    with db.atomic():
        integration_id = resolve(db, ref)["id"]
        if config is not None or sets or unsets:
            values[Integration.config], missing = edited_config(
                db, Integration, integration_id, config, sets, unsets, f"integration {ref!r}",
                masked=True)
        values[Integration.updated_at] = now()
        Integration.update(values).where(Integration.id == integration_id).execute()
    return get(db, integration_id), missing


def set_enabled(db, refs, enabled: bool, *, ignore_missing: bool = False) -> tuple[list, int, list]:
    """Enable or disable integrations, one set-based statement.
    Returns (rows after the change, how many changed, refs not found)."""
    from nitejarctl.db import now

    ids, missing = [], []
    for ref in refs:
        try:
            ids.append(resolve(db, ref)["id"])
        except NotFound:
            if not ignore_missing:
                raise
            missing.append(ref)
    ids = list(dict.fromkeys(ids))
    flag = 1 if enabled else 0
    changed = 0
    if ids:
        with db.atomic():
            changed = (Integration.update(enabled=flag, updated_at=now())
                       .where(Integration.id.in_(ids) & (Integration.enabled != flag)).execute())
    rows = list(Integration.select(*_fields()).where(Integration.id.in_(ids))
                .order_by(Integration.type, Integration.name, Integration.id).dicts()) if ids else []
    return rows, changed, missing


def cascade_counts(db, integration_id: str) -> dict:
    """What deleting an integration affects: agent links (removed) and work
    items that refer to it (kept, detached)."""
    return {"links": AgentIntegration.select()
            .where(AgentIntegration.integration_id == integration_id).count(),
            "work_items": work_item_count(db, integration_id)}


def delete(db, integration_id: str, *, detach_work_items: bool = False) -> dict:
    """Delete an integration and its agent links. Work items referring to it
    block the delete unless `detach_work_items` (their integration_id -> NULL)."""
    with db.atomic():
        affected = cascade_counts(db, integration_id)
        if affected["work_items"]:
            if not detach_work_items:
                raise OperationalProblem(
                    f"integration {integration_id!r} is referred to by {affected['work_items']} "
                    "work item(s); pass --detach-work-items to keep them without it")
            (WorkItem.update(integration_id=None)
             .where(WorkItem.integration_id == integration_id).execute())
        if not Integration.delete().where(Integration.id == integration_id).execute():
            raise NotFound(f"no integration with id {integration_id!r}")
    return affected
