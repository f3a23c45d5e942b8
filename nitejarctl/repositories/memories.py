"""Agent memories — nitejar's memories repository: list, show, add, edit,
pin and delete. Decay and prune are maintenance (maintenance.decay, .prune);
an edit settles the decay owed so far (maintenance.memory_policy)."""

from __future__ import annotations

import uuid

import peewee as pw
from peewee import SQL

from nitejarctl.errors import NotFound, UsageProblem, missing_ids
from nitejarctl.maintenance import memory_policy as policy
from nitejarctl.models import AgentMemory as M

ID_CHUNK = 500

# The listed fields, in order (the embedding blob is never listed).
LIST_FIELDS = ("id", "agent_id", "strength", "permanent", "access_count", "last_accessed_at",
               "created_at", "updated_at", "content")


# -------------------------------------------------------------------- reading


def _fields(db, names=LIST_FIELDS) -> list:
    live = {f.name for f in db.present_fields(M)}
    return [getattr(M, n) for n in names if n in live]


def _filters(db, *, agent_id=None, min_strength=None, permanent=None, search=None):
    cond = SQL("1 = 1")
    if agent_id is not None:
        cond &= M.agent_id == agent_id
    if min_strength is not None:
        cond &= M.strength >= min_strength
    if permanent is not None:
        cond &= M.permanent == (1 if permanent else 0)
    if search:
        cond &= db.contains(M.content, search)
    return cond


def list_query(db, **filters):
    """Memories, strongest first within each agent (a query to stream)."""
    return (M.select(*_fields(db)).where(_filters(db, **filters))
            .order_by(M.agent_id, M.strength.desc(), M.id))


def count(db, **filters) -> int:
    return M.select().where(_filters(db, **filters)).count()


def get(db, memory_id: str) -> dict:
    """One memory with every column the table has, except the embedding blob
    (its size in bytes instead). Raises NotFound."""
    fields = [f for f in db.present_fields(M) if f.name != "embedding"]
    known = {f.column_name for f in M._meta.sorted_fields}
    extras = [c for c in db.columns(M._meta.table_name) if c not in known]
    query = M.select(*fields, db.byte_length(M.embedding).alias("embedding_bytes"),
                     *[pw.Entity(c).alias(c) for c in extras])
    row = query.where(M.id == memory_id).dicts().first()
    if row is None:
        raise NotFound(f"no memory with id {memory_id!r}")
    return row


def _chunks(items, size=ID_CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def find(db, ids) -> dict[str, dict]:
    """id -> listed row, for those of `ids` that exist."""
    found = {}
    for chunk in _chunks(list(ids)):
        for row in M.select(*_fields(db)).where(M.id.in_(chunk)).dicts():
            found[row["id"]] = row
    return found


def require(db, ids) -> dict[str, dict]:
    """Like find, but every id must exist (NotFound names the missing ones)."""
    found = find(db, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise missing_ids("memory", "memories", missing)
    return found


# -------------------------------------------------------------------- writing


def _table_update(values: dict, where):
    """UPDATE keyed by column name, so that columns the model does not know
    (nitejar's `version`) can be set too."""
    table = M._meta.table
    return table.update({pw.Column(table, k): v for k, v in values.items()}).where(where)


def _has_version(db) -> bool:
    return "version" in db.columns(M._meta.table_name)


def _bump_version(db, values: dict) -> dict:
    # nitejar's updateMemory uses `version` for optimistic concurrency: an agent
    # holding the old version must get a conflict, not overwrite this change.
    if _has_version(db):
        values["version"] = pw.Column(M._meta.table, "version") + 1
    return values


def check_content(content: str) -> str:
    if not content or not content.strip():
        raise UsageProblem("memory content must not be empty")
    return content


def add(db, agent_id: str, content: str, *, permanent=False, strength=1.0, now: int) -> dict:
    """Insert a memory (columns the model does not know keep their defaults)."""
    check_content(content)
    memory_id = str(uuid.uuid4())
    M.insert({M.id: memory_id, M.agent_id: agent_id, M.content: content, M.strength: strength,
              M.access_count: 0, M.permanent: 1 if permanent else 0, M.last_accessed_at: None,
              M.created_at: now, M.updated_at: now}).execute()
    return find(db, [memory_id])[memory_id]


def edit(db, memory_id: str, content: str, *, now: int) -> dict:
    """Replace a memory's content. Settles the decay owed so far (the edit
    moves updated_at, the decay clock), clears the embedding (it described
    the old text; nitejar regenerates it, or stores none when embeddings are
    off) and bumps nitejar's `version`."""
    check_content(content)
    with db.atomic():
        row = (M.select(M.agent_id).where(M.id == memory_id).tuples().first())
        if row is None:
            raise NotFound(f"no memory with id {memory_id!r}")
        rate = policy.settings_of(db, row[0]).decay_rate
        _table_update(_bump_version(db, {"content": content, "embedding": None,
                                         "strength": policy.settled(db, rate, now), "updated_at": now}),
                      M.id == memory_id).execute()
    return find(db, [memory_id])[memory_id]


def set_permanent(db, ids: list[str], permanent: bool, *, now: int) -> dict[str, dict]:
    """Pin (permanent, strength restored to 1.0, as nitejar's toggle does) or
    unpin (its decay clock restarts now: time spent pinned is not charged).
    Every id must exist; returns the updated rows."""
    with db.atomic():
        require(db, ids)
        values = {"permanent": 1 if permanent else 0, "updated_at": now}
        if permanent:
            values["strength"] = 1.0
        for chunk in _chunks(ids):
            _table_update(_bump_version(db, dict(values)), M.id.in_(chunk)).execute()
    return find(db, ids)


def delete(db, ids: list[str]) -> int:
    """Delete memories by id, a short transaction per chunk of ids."""
    total = 0
    for chunk in _chunks(ids):
        with db.atomic():
            total += M.delete().where(M.id.in_(chunk)).execute()
    return total
