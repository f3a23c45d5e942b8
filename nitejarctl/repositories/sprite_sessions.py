"""Sprite (remote shell) sessions — nitejar's spriteSessions repository.

Bulk changes (`close_stale`, `close_for_conversation`, `purge`) are
set-based statements batched by key range (db.batches): one short write
transaction per batch, so nitejar's own writers never wait long for the
lock. Each takes a `Bulk` saying where the changed rows go (`sink`: as tuples
of `fields(db)`, with their new values for updates, as they were for
deletes), and whether it is a dry run; it returns how many rows (would have)
changed.

The per-id operations (`close_ids`, `error_ids`, `touch_ids`) take the ids an
operator typed (already in memory) and return an `IdChanges`: the rows changed
(in the order given), the ids already in the requested state, the missing ids.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from peewee import SQL, fn

from nitejarctl.db.batches import Bulk
from nitejarctl.db.changed_rows import Change
from nitejarctl.errors import NotFound, OperationalProblem
from nitejarctl.models import SpriteSession

STATUSES = ("active", "closed", "error")
PURGEABLE = ("closed", "error")


def stale_condition(older_than: int, now: int):
    """nitejar's findStaleSessions: active and last active before now - older_than."""
    return (SpriteSession.status == "active") & (SpriteSession.last_active_at < now - older_than)


def count_stale(db, older_than: int, now: int) -> int:
    return SpriteSession.select().where(stale_condition(older_than, now)).count()


STATUSES = ("active", "closed", "error")


def count_by_status(db) -> dict:
    """Sessions per status: active, closed and error always, and any other
    status the table holds (NULL, which nitejar's databases may hold, last)."""
    found = dict(SpriteSession.select(SpriteSession.status, fn.COUNT(SQL("*")))
                 .group_by(SpriteSession.status).tuples())
    return {status: int(found.get(status, 0)) for status in sorted(set(found) | set(STATUSES), key=_nulls_last)}


def _nulls_last(value):
    """A sort key for values a column may hold, NULL among them (after the rest)."""
    return (value is None, "" if value is None else str(value))


def fields(db) -> list:
    """The sprite_sessions columns this database has (of the model's)."""
    return db.present_fields(SpriteSession)


# ------------------------------------------------------------------- reading


def list_query(db, *, status: str = "active", stale: int | None = None, agent_id: str | None = None,
               sprite: str | None = None, session_key: str | None = None, now: int):
    """Sessions oldest activity first. `status` is active, closed, error or all;
    `stale` (seconds) keeps the active ones last active before now - stale
    (nitejar's findStaleSessions). The other filters are exact matches."""
    query = SpriteSession.select(*fields(db))
    if status != "all":
        query = query.where(SpriteSession.status == status)
    if stale is not None:
        query = query.where(stale_condition(stale, now))
    if agent_id is not None:
        query = query.where(SpriteSession.agent_id == agent_id)
    if sprite is not None:
        query = query.where(SpriteSession.sprite_name == sprite)
    if session_key is not None:
        query = query.where(SpriteSession.session_key == session_key)
    return query.order_by(SpriteSession.last_active_at, SpriteSession.id).dicts()


def has_agent(db, agent_id: str) -> bool:
    """Whether any session names `agent_id` as its owner (sprite_sessions.agent_id
    references no table: it may hold ids of agents nitejarctl does not know)."""
    return SpriteSession.select().where(SpriteSession.agent_id == agent_id).exists()


def get(db, session_id: str) -> dict:
    """One session by id; NotFound when there is none."""
    row = SpriteSession.select(*fields(db)).where(SpriteSession.id == session_id).dicts().first()
    if row is None:
        raise NotFound(f"no sprite session with id {session_id!r}")
    return row


# ------------------------------------------------------------- bulk changes


def _closing(now: int) -> dict:
    return {SpriteSession.status: "closed", SpriteSession.last_active_at: now}


def _change(db, where, values=None) -> Change:
    return Change(SpriteSession, where, values, columns=fields(db))


def close_stale(db, older_than: int, now: int, bulk: Bulk) -> int:
    """Close every active session last active before now - older_than (status
    closed, last_active_at now)."""
    return bulk.apply(db, _change(db, stale_condition(older_than, now), _closing(now)))


def close_for_conversation(db, session_key: str, agent_id: str, now: int, bulk: Bulk) -> int:
    """nitejar's closeSessionsForConversation: the conversation's active sessions
    -> closed (found through idx_sprite_sessions_session_key_agent)."""
    where = ((SpriteSession.session_key == session_key) & (SpriteSession.agent_id == agent_id)
             & (SpriteSession.status == "active"))
    return bulk.apply(db, _change(db, where, _closing(now)))


def closing_of_agent(db, agent_id: str, now: int) -> Change | None:
    """Closing the agent's active sessions (they refer to it by no foreign
    key), as a Change; None when the database has no sprite sessions."""
    if not db.has_table(SpriteSession._meta.table_name):
        return None
    where = (SpriteSession.agent_id == agent_id) & (SpriteSession.status == "active")
    return Change(SpriteSession, where, _closing(now))


def purge_condition(older_than: int, now: int, status: str | None = None):
    """nitejar's deleteOldSessions: closed or error, last active before now - older_than."""
    statuses = SpriteSession.status.in_(PURGEABLE) if status is None else SpriteSession.status == status
    return statuses & (SpriteSession.last_active_at < now - older_than)


def count_purgeable(db, older_than: int, now: int) -> int:
    return SpriteSession.select().where(purge_condition(older_than, now)).count()


def purge(db, older_than: int, now: int, bulk: Bulk) -> int:
    """Delete closed and error sessions last active before now - older_than
    (the sink gets them as they were)."""
    if not db.key_scans_walk_an_index:
        return bulk.apply(db, _change(db, purge_condition(older_than, now)))
    # One status at a time: each batch's key scan then walks a single range of
    # idx_sprite_sessions_status, (status, rowid), in key order and stops at the
    # batch size, instead of sorting every remaining candidate for each batch.
    return sum(bulk.apply(db, _change(db, purge_condition(older_than, now, status)))
               for status in PURGEABLE)


# ----------------------------------------------------------- changes by id

_ID_CHUNK = 500


@dataclass
class IdChanges:
    changed: list = field(default_factory=list)    # rows as they are now (would be), in the order given
    unchanged: list = field(default_factory=list)  # ids already in the requested state
    missing: list = field(default_factory=list)    # ids of no session


def _change_ids(db, ids, values: dict, differs, condition, *, dry_run: bool) -> IdChanges:
    """Apply `values` to the sessions `ids` names where `condition` (SQL) /
    `differs` (the same test on a row) says they are not in that state yet."""
    wanted = list(dict.fromkeys(ids))
    cols = fields(db)
    new = {f.name: v for f, v in values.items()}
    result = IdChanges()
    for start in range(0, len(wanted), _ID_CHUNK):
        chunk = wanted[start:start + _ID_CHUNK]
        with contextlib.nullcontext() if dry_run else db.atomic():
            query = SpriteSession.select(*cols).where(SpriteSession.id.in_(chunk))
            found = {row["id"]: row for row in (query if dry_run else db.for_update(query)).dicts()}
            todo = [i for i in chunk if i in found and differs(found[i])]
            if not todo:
                rows = {}
            elif dry_run:
                rows = {i: {**found[i], **new} for i in todo}
            else:
                # Read under the write lock (on PostgreSQL under the rows' locks):
                # the rows changed are exactly those read, with the new values.
                n = SpriteSession.update(values).where(SpriteSession.id.in_(todo) & condition).execute()
                if n != len(todo):
                    raise OperationalProblem(f"sprite_sessions: {n} rows changed where {len(todo)} "
                                             "were read; rolled back")
                rows = {i: {**found[i], **new} for i in todo}
        for i in chunk:
            if i in rows:
                result.changed.append(rows[i])
            elif i in found:
                result.unchanged.append(i)
            else:
                result.missing.append(i)
    return result


def _differs(column, value):
    """`column` is not `value`, NULL included (as Python's != says of a row)."""
    return column.is_null() | (column != value)


def close_ids(db, ids, now: int, *, dry_run: bool = False) -> IdChanges:
    """nitejar's closeSpriteSession for each id: status closed, last_active_at now."""
    return _change_ids(db, ids, _closing(now), lambda row: row["status"] != "closed",
                       _differs(SpriteSession.status, "closed"), dry_run=dry_run)


def error_ids(db, ids, now: int, *, dry_run: bool = False) -> IdChanges:
    """nitejar's errorSpriteSession for each id: status error, last_active_at now."""
    values = {SpriteSession.status: "error", SpriteSession.last_active_at: now}
    return _change_ids(db, ids, values, lambda row: row["status"] != "error",
                       _differs(SpriteSession.status, "error"), dry_run=dry_run)


def touch_ids(db, ids, now: int, *, dry_run: bool = False) -> IdChanges:
    """nitejar's touchSpriteSession for each id: last_active_at now (any status)."""
    return _change_ids(db, ids, {SpriteSession.last_active_at: now},
                       lambda row: row["last_active_at"] != now,
                       _differs(SpriteSession.last_active_at, now), dry_run=dry_run)
