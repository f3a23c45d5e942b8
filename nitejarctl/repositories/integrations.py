"""Integrations (telegram, github, …) — nitejar's integrations repository.

Databases nitejarctl migrated keep them in `integrations`, linked to agents
by `agent_integrations`. Newer nitejar databases keep them as plugin
instances: `plugin_instances` (the type is `plugin_id`, the config
`config_json`), linked by `agent_plugin_instances`, referred to by
`work_items.plugin_instance_id`. Every function here works on whichever pair
the database has (`pair(db)`); rows carry the live column names.
"""

from __future__ import annotations

from dataclasses import dataclass

from nitejarctl.db import foreign_keys as fks
from nitejarctl.errors import NotFound, OperationalProblem, UsageProblem


@dataclass(frozen=True)
class Pair:
    """Where a database keeps its integrations and their links to agents."""

    table: str
    links: str
    type: str  # the column naming the kind of integration
    config: str  # the JSON config column
    key: str  # the column referring to one in the links and in work_items
    noun: str  # how messages call one

    def fields(self) -> tuple[str, ...]:
        """The listed columns, in order."""
        return ("id", self.type, "name", "scope", "enabled", "created_at", "updated_at")


INTEGRATIONS = Pair("integrations", "agent_integrations", "type", "config", "integration_id", "integration")
PLUGIN_INSTANCES = Pair("plugin_instances", "agent_plugin_instances", "plugin_id", "config_json",
                        "plugin_instance_id", "plugin instance")


def pair(db) -> Pair:
    """The pair of tables the database has (integrations first); a one-line
    SchemaProblem when it has neither."""
    for candidate in (INTEGRATIONS, PLUGIN_INSTANCES):
        if db.has_table(candidate.table):
            return candidate
    db.require_table(INTEGRATIONS.table)
    raise AssertionError("unreachable")  # require_table raised


def links_pair(db) -> Pair:
    """The pair, when the database also has its links table."""
    p = pair(db)
    db.require_table(p.links)
    return p


def _table(db, p: Pair):
    return fks.table(db, p.table)


def _present(db, p: Pair, names) -> list[str]:
    live = set(db.columns(p.table))
    return [n for n in names if n in live]


def _select(db, p: Pair, t, names=None):
    names = _present(db, p, p.fields() if names is None else names)
    return t.select(*(getattr(t.c, n) for n in names))


def list_query(db, *, type: str | None = None, enabled: bool | None = None):
    p = pair(db)
    t = _table(db, p)
    query = _select(db, p, t).order_by(getattr(t.c, p.type), t.c.name, t.c.id)
    if type is not None:
        query = query.where(getattr(t.c, p.type) == type)
    if enabled is not None:
        query = query.where(t.c.enabled == (1 if enabled else 0))
    return query.dicts()


def resolve(db, ref: str) -> dict:
    """The integration whose id, or else unique name, is `ref` (its listed
    columns and its config). NotFound; several of that name: UsageProblem."""
    p = pair(db)
    t = _table(db, p)
    names = (*p.fields()[:3], p.config, *p.fields()[3:])
    query = _select(db, p, t, names)
    row = query.where(t.c.id == ref).dicts().first()
    if row is not None:
        return row
    rows = list(query.where(t.c.name == ref).limit(2).dicts())
    if not rows:
        from nitejarctl.db import prefixes

        (full,) = prefixes.resolve(db, t, t.c.id, [ref], p.noun + "s")
        rows = list(query.where(t.c.id == full).dicts())
    if not rows:
        raise NotFound(f"no {p.noun} with id or name {ref!r}")
    if len(rows) > 1:
        raise UsageProblem(f"several {p.noun}s are named {ref!r}: give the id")
    return rows[0]


def get(db, integration_id: str) -> dict:
    p = pair(db)
    t = _table(db, p)
    row = _select(db, p, t).where(t.c.id == integration_id).dicts().first()
    if row is None:
        raise NotFound(f"no {p.noun} with id {integration_id!r}")
    return row


def agents_query(db, integration_id: str):
    """The agents linked to an integration (none without a links table)."""
    from nitejarctl.models import Agent

    p = pair(db)
    if not db.has_table(p.links):
        return []
    links = fks.table(db, p.links)
    return (Agent.select(Agent.id, Agent.name, Agent.status, links.c.created_at.alias("linked_at"))
            .join(links, on=(links.c.agent_id == Agent.id))
            .where(getattr(links.c, p.key) == integration_id)
            .order_by(Agent.name, Agent.id).dicts())


def work_item_count(db, integration_id: str) -> int:
    p = pair(db)
    if p.key not in db.columns("work_items"):
        return 0
    items = fks.table(db, "work_items")
    return fks.count(db, items, getattr(items.c, p.key) == integration_id)


def create(db, *, type: str, name: str, config: dict | None = None, scope: str = "global",
           enabled: bool = True) -> dict:
    import uuid

    from nitejarctl.db import now
    from nitejarctl.jsonarg import dumps
    from nitejarctl.models import Integration

    if pair(db) is PLUGIN_INSTANCES:
        raise OperationalProblem(
            "this database keeps integrations as nitejar's plugin instances, which nitejar creates "
            "with their plugin's installation: create it in nitejar (list, show, update, enable, "
            "disable, delete and link work here)")
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

    p = pair(db)
    t = _table(db, p)
    values: dict = {}
    for column, value in ((p.type, type), ("name", name), ("scope", scope)):
        if value is not None:
            values[getattr(t.c, column)] = value
    missing: list = []
    with db.atomic():
        found = resolve(db, ref)
        if config is not None or sets or unsets:
            values[getattr(t.c, p.config)], missing = edited_config(
                db, t, t.c.id, getattr(t.c, p.config), found["id"], config, sets, unsets,
                f"{p.noun} {ref!r}", masked=True)
        if "updated_at" in db.columns(p.table):
            values[t.c.updated_at] = now()
        t.update(values).where(t.c.id == found["id"]).execute()
    return get(db, found["id"]), missing


def set_enabled(db, refs, enabled: bool, *, ignore_missing: bool = False) -> tuple[list, int, list]:
    """Enable or disable integrations, one set-based statement.
    Returns (rows after the change, how many changed, refs not found)."""
    from nitejarctl.db import now

    p = pair(db)
    t = _table(db, p)
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
        values = {t.c.enabled: flag}
        if "updated_at" in db.columns(p.table):
            values[t.c.updated_at] = now()
        with db.atomic():
            changed = t.update(values).where(t.c.id.in_(ids) & (t.c.enabled != flag)).execute()
    rows = list(_select(db, p, t).where(t.c.id.in_(ids))
                .order_by(getattr(t.c, p.type), t.c.name, t.c.id).dicts()) if ids else []
    return rows, changed, missing


def deleting(db, integration_id: str, *, detach_work_items: bool = False):
    """Deleting an integration: (the maintenance.cascade Cascade — its links and
    whatever else its keys delete with it —, the name of the work items' key).
    Work items that refer to it keep it from being deleted, unless
    `detach_work_items` (their reference is set to NULL)."""
    from nitejarctl.maintenance.cascade import Cascade

    p = pair(db)
    work_items = f"work_items.{p.key}"
    return Cascade(db, {p.table: lambda t: t.c.id == integration_id},
                   detach={work_items} if detach_work_items else frozenset()), work_items


# --------------------------------------------------------------------- links


def link(db, agent: dict, integration_ref: str, now: int) -> tuple[dict, bool]:
    """Link an agent ({id, name}) to an integration. Returns (link row, created)."""
    from peewee import IntegrityError

    p = links_pair(db)
    integration = resolve(db, integration_ref)
    links = fks.table(db, p.links)
    row = {"agent_id": agent["id"], "agent_name": agent["name"], "integration_id": integration["id"],
           "integration_name": integration["name"], "created_at": now}
    pair_of = (links.c.agent_id == agent["id"]) & (getattr(links.c, p.key) == integration["id"])
    existing = links.select(links.c.created_at).where(pair_of)
    try:
        with db.atomic():
            created = existing.scalar()
            if created is not None:
                return {**row, "created_at": created}, False
            links.insert({links.c.agent_id: agent["id"], getattr(links.c, p.key): integration["id"],
                          links.c.created_at: now}).execute()
    except IntegrityError:  # linked meanwhile by someone else: the end state holds
        return {**row, "created_at": existing.scalar()}, False
    return row, True


def unlink(db, agent: dict, integration_ref: str) -> tuple[dict, bool]:
    """Remove a link. Returns (link row, removed)."""
    p = links_pair(db)
    integration = resolve(db, integration_ref)
    links = fks.table(db, p.links)
    pair_of = (links.c.agent_id == agent["id"]) & (getattr(links.c, p.key) == integration["id"])
    with db.atomic():
        created = links.select(links.c.created_at).where(pair_of).scalar()
        if created is not None:
            links.delete().where(pair_of).execute()
    row = {"agent_id": agent["id"], "agent_name": agent["name"], "integration_id": integration["id"],
           "integration_name": integration["name"], "created_at": created}
    return row, created is not None
