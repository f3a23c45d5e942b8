"""Agents — nitejar's agents repository."""

from __future__ import annotations

from nitejarctl.errors import NotFound, OperationalProblem
from nitejarctl.models import Agent


def resolve(db, ref: str) -> dict:
    """The agent whose id, or else unique name, is `ref` ({'id', 'name', 'config', ...}).
    Raises NotFound."""
    fields = [Agent.id, Agent.name, Agent.config, Agent.status]
    row = Agent.select(*fields).where(Agent.id == ref).dicts().first()
    if row is None:
        row = Agent.select(*fields).where(Agent.name == ref).dicts().first()
    if row is None:
        from nitejarctl.db import prefixes

        (full,) = prefixes.resolve(db, Agent, Agent.id, [ref], "agents")
        row = Agent.select(*fields).where(Agent.id == full).dicts().first()
    if row is None:
        raise NotFound(f"no agent with id or name {ref!r}")
    return row


def resolve_id(db, ref: str) -> str:
    return resolve(db, ref)["id"]


def names(db, ids) -> dict:
    """{id: name} of the agents among `ids` (none when there is no agents table)."""
    if not db.has_table(Agent._meta.table_name):
        return {}
    query = Agent.select(Agent.id, Agent.name).where(Agent.id.in_(list(ids)))
    return dict(query.tuples())


# ------------------------------------------------------------------- listing

LIST_FIELDS = ("id", "name", "status", "sprite_id", "created_at", "updated_at")


def _fields(db, names):
    present = {f.name: f for f in db.present_fields(Agent)}
    return [present[n] for n in names if n in present]


def list_query(db, *, status: str | None = None):
    """Agents ordered by name (id, name, status, sprite_id, created_at, updated_at)."""
    query = Agent.select(*_fields(db, LIST_FIELDS)).order_by(Agent.name, Agent.id)
    if status is not None:
        query = query.where(Agent.status == status)
    return query.dicts()


def get(db, agent_id: str, names=None) -> dict:
    fields = db.present_fields(Agent) if names is None else _fields(db, names)
    row = Agent.select(*fields).where(Agent.id == agent_id).dicts().first()
    if row is None:
        raise NotFound(f"no agent with id {agent_id!r}")
    return row


# -------------------------------------------------------------------- detail


def counts(db, agent_id: str) -> dict:
    """What the agent has: job_count, memory_count, summary_count, active_session_count."""
    from nitejarctl.models import AgentMemory, Job, SessionSummary, SpriteSession

    result = {}
    for key, model, where in (
        ("job_count", Job, lambda: Job.agent_id == agent_id),
        ("memory_count", AgentMemory, lambda: AgentMemory.agent_id == agent_id),
        ("summary_count", SessionSummary, lambda: SessionSummary.agent_id == agent_id),
        ("active_session_count", SpriteSession,
         lambda: (SpriteSession.agent_id == agent_id) & (SpriteSession.status == "active")),
    ):
        if db.has_table(model._meta.table_name):
            result[key] = model.select().where(where()).count()
    return result


def links_query(db, agent_id: str):
    """(section name, query) of what the agent is linked to: its integrations,
    or on a nitejar-managed database its plugin instances; None when neither."""
    from nitejarctl.db import foreign_keys as fks
    from nitejarctl.errors import SchemaProblem
    from nitejarctl.repositories import integrations

    try:
        p = integrations.pair(db)
    except SchemaProblem:
        return None
    if not db.has_table(p.links):
        return None
    t, links = fks.table(db, p.table), fks.table(db, p.links)
    kind = getattr(t.c, p.type)
    query = (t.select(t.c.id, kind, t.c.name, t.c.scope, t.c.enabled, links.c.created_at.alias("linked_at"))
             .join(links, on=(getattr(links.c, p.key) == t.c.id))
             .where(links.c.agent_id == agent_id)
             .order_by(kind, t.c.name, t.c.id))
    return p.table, query


# ------------------------------------------------------------------- changes


def _duplicate(db, name: str, exc) -> OperationalProblem:
    if Agent.select().where(Agent.name == name).exists():
        return OperationalProblem(f"an agent named {name!r} already exists")
    return OperationalProblem(f"cannot save agent {name!r}: {' '.join(str(exc).split())}")


def create(db, *, name: str, config: dict | None = None, status: str = "idle",
           sprite_id: str | None = None) -> dict:
    """Insert an agent (a new uuid4 id); a taken name is an OperationalProblem."""
    import uuid

    from peewee import IntegrityError

    from nitejarctl.db import now
    from nitejarctl.jsonarg import dumps

    t = now()
    row = {"id": str(uuid.uuid4()), "name": name, "status": status, "sprite_id": sprite_id,
           "config": None if config is None else dumps(config), "created_at": t, "updated_at": t}
    try:
        with db.atomic():
            Agent.insert(row).execute()
    except IntegrityError as exc:
        raise _duplicate(db, name, exc) from None
    return row


_UNCHANGED = object()


def update(db, ref: str, *, name: str | None = None, status: str | None = None,
           sprite_id=_UNCHANGED, config: dict | None = None, sets=(), unsets=()) -> tuple[dict, list]:
    """Change an agent in one transaction. `config` replaces the whole config;
    then `sets` ("a.b=value") and `unsets` ("a.b") edit it. Returns the updated
    row and the unset keys that were not there."""
    from peewee import IntegrityError

    from nitejarctl.db import now
    from nitejarctl.repositories._config import edited_config

    values: dict = {}
    if name is not None:
        values[Agent.name] = name
    if status is not None:
        values[Agent.status] = status
    if sprite_id is not _UNCHANGED:
        values[Agent.sprite_id] = sprite_id
    missing: list = []
    try:
        with db.atomic():
            agent_id = resolve_id(db, ref)
            if config is not None or sets or unsets:
                values[Agent.config], missing = edited_config(
                    db, Agent, Agent.id, Agent.config, agent_id, config, sets, unsets, f"agent {ref!r}")
            values[Agent.updated_at] = now()
            Agent.update(values).where(Agent.id == agent_id).execute()
    except IntegrityError as exc:
        raise _duplicate(db, name or ref, exc) from None
    return get(db, agent_id, LIST_FIELDS), missing


# --------------------------------------------------------------------- links


def link(db, agent_ref: str, integration_ref: str) -> tuple[dict, bool]:
    """Link an agent to an integration (or plugin instance). Returns (link row, created)."""
    from nitejarctl.db import now
    from nitejarctl.repositories import integrations

    integrations.links_pair(db)
    return integrations.link(db, resolve(db, agent_ref), integration_ref, now())


def unlink(db, agent_ref: str, integration_ref: str) -> tuple[dict, bool]:
    """Remove a link. Returns (link row, removed)."""
    from nitejarctl.repositories import integrations

    integrations.links_pair(db)
    return integrations.unlink(db, resolve(db, agent_ref), integration_ref)
