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
        raise NotFound(f"no agent with id or name {ref!r}")
    return row


def resolve_id(db, ref: str) -> str:
    return resolve(db, ref)["id"]


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


def _plugin_tables(db):
    from peewee import Table

    instances = Table("plugin_instances", ("id", "plugin_id", "name", "scope", "enabled"))
    links = Table("agent_plugin_instances", ("agent_id", "plugin_instance_id", "created_at"))
    return instances.bind(db), links.bind(db)


def links_query(db, agent_id: str):
    """(section name, query) of what the agent is linked to: its integrations,
    or on a nitejar-managed database its plugin instances; None when neither."""
    from nitejarctl.models import AgentIntegration, Integration

    if db.has_table("integrations") and db.has_table("agent_integrations"):
        query = (Integration
                 .select(Integration.id, Integration.type, Integration.name, Integration.scope,
                         Integration.enabled, AgentIntegration.created_at.alias("linked_at"))
                 .join(AgentIntegration, on=(AgentIntegration.integration_id == Integration.id))
                 .where(AgentIntegration.agent_id == agent_id)
                 .order_by(Integration.type, Integration.name, Integration.id))
        return "integrations", query.dicts()
    if db.has_table("plugin_instances") and db.has_table("agent_plugin_instances"):
        instances, links = _plugin_tables(db)
        query = (instances
                 .select(instances.id, instances.plugin_id, instances.name, instances.scope,
                         instances.enabled, links.created_at.alias("linked_at"))
                 .join(links, on=(links.plugin_instance_id == instances.id))
                 .where(links.agent_id == agent_id)
                 .order_by(instances.plugin_id, instances.name, instances.id))
        return "plugin_instances", query
    return None


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
                    db, Agent, agent_id, config, sets, unsets, f"agent {ref!r}")
            values[Agent.updated_at] = now()
            Agent.update(values).where(Agent.id == agent_id).execute()
    except IntegrityError as exc:
        raise _duplicate(db, name or ref, exc) from None
    return get(db, agent_id, LIST_FIELDS), missing


def cascade_counts(db, agent_id: str) -> dict:
    """What deleting the agent removes with it (ON DELETE CASCADE):
    jobs, messages, memories, summaries, links."""
    from nitejarctl.models import AgentIntegration, AgentMemory, Job, Message, SessionSummary

    result = {"jobs": 0, "messages": 0, "memories": 0, "summaries": 0, "links": 0}
    if db.has_table("jobs"):
        result["jobs"] = Job.select().where(Job.agent_id == agent_id).count()
        if db.has_table("messages"):
            result["messages"] = (Message.select().join(Job, on=(Job.id == Message.job_id))
                                  .where(Job.agent_id == agent_id).count())
    if db.has_table("agent_memories"):
        result["memories"] = AgentMemory.select().where(AgentMemory.agent_id == agent_id).count()
    if db.has_table("session_summaries"):
        result["summaries"] = (SessionSummary.select()
                               .where(SessionSummary.agent_id == agent_id).count())
    if db.has_table("agent_integrations"):
        result["links"] = (AgentIntegration.select()
                           .where(AgentIntegration.agent_id == agent_id).count())
    elif db.has_table("agent_plugin_instances"):
        _, links = _plugin_tables(db)
        result["links"] = links.select().where(links.agent_id == agent_id).count()
    return result


def delete(db, agent_id: str) -> dict:
    """Delete the agent; its jobs, messages, memories, summaries and links go
    with it (the schema's cascade), in one transaction. Returns what went."""
    with db.atomic():
        removed = cascade_counts(db, agent_id)
        if not Agent.delete().where(Agent.id == agent_id).execute():
            raise NotFound(f"no agent with id {agent_id!r}")
    return removed


# --------------------------------------------------------------------- links


def link(db, agent_ref: str, integration_ref: str) -> tuple[dict, bool]:
    """Link an agent to an integration. Returns (link row, created)."""
    from peewee import IntegrityError

    from nitejarctl.db import now
    from nitejarctl.models import AgentIntegration
    from nitejarctl.repositories import integrations

    integrations.require(db, "agent_integrations")
    agent = resolve(db, agent_ref)
    integration = integrations.resolve(db, integration_ref)
    row = {"agent_id": agent["id"], "agent_name": agent["name"],
           "integration_id": integration["id"], "integration_name": integration["name"],
           "created_at": now()}
    pair = ((AgentIntegration.agent_id == agent["id"])
            & (AgentIntegration.integration_id == integration["id"]))
    try:
        with db.atomic():
            existing = AgentIntegration.select(AgentIntegration.created_at).where(pair).scalar()
            if existing is not None:
                return {**row, "created_at": existing}, False
            AgentIntegration.insert(agent_id=agent["id"], integration_id=integration["id"],
                                    created_at=row["created_at"]).execute()
    except IntegrityError:  # linked meanwhile by someone else: the end state holds
        existing = AgentIntegration.select(AgentIntegration.created_at).where(pair).scalar()
        return {**row, "created_at": existing}, False
    return row, True


def unlink(db, agent_ref: str, integration_ref: str) -> tuple[dict, bool]:
    """Remove a link. Returns (link row, removed)."""
    from nitejarctl.models import AgentIntegration
    from nitejarctl.repositories import integrations

    integrations.require(db, "agent_integrations")
    agent = resolve(db, agent_ref)
    integration = integrations.resolve(db, integration_ref)
    pair = ((AgentIntegration.agent_id == agent["id"])
            & (AgentIntegration.integration_id == integration["id"]))
    with db.atomic():
        created = AgentIntegration.select(AgentIntegration.created_at).where(pair).scalar()
        if created is not None:
            AgentIntegration.delete().where(pair).execute()
    row = {"agent_id": agent["id"], "agent_name": agent["name"],
           "integration_id": integration["id"], "integration_name": integration["name"],
           "created_at": created}
    return row, created is not None
