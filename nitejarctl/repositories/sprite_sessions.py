"""Sprite (remote shell) sessions — nitejar's spriteSessions repository.

Bulk changes (`close_stale`, `purge`) are set-based statements batched by key
range (`_batch.in_batches`): one short write transaction per batch of at most
`DEFAULT_BATCH` rows, so nitejar's own writers never wait long for the lock.
They return the number of rows changed. A caller that also wants the rows
passes `on_rows`: it receives each batch's rows as dicts — with their new
values for updates (UPDATE … RETURNING), as they were for deletes — inside that
batch's transaction, so it must be quick (append them to a spool file; never
write to a pipe whose reader may stall). Memory thus stays bounded by one
batch however many rows change; without `on_rows` nothing is returned but the
count. With `dry_run` nothing is written: the same rows are read (with the
values they would get) and handed to `on_rows` in chunks of the same size.

The per-id operations (`close_ids`, `error_ids`, `touch_ids`) take the ids an
operator typed (already in memory) and return an `IdChanges`: the rows changed
(in the order given), the ids already in the requested state, the missing ids.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from nitejarctl.db import present_fields, stream
from nitejarctl.models import SpriteSession
from nitejarctl.repositories._batch import DEFAULT_BATCH, batch_key, in_batches

STATUSES = ("active", "closed", "error")
PURGEABLE = ("closed", "error")


def stale_condition(older_than: int, now: int):
    """nitejar's findStaleSessions: active and last active before now - older_than."""
    return (SpriteSession.status == "active") & (SpriteSession.last_active_at < now - older_than)


def count_stale(db, older_than: int, now: int) -> int:
    return SpriteSession.select().where(stale_condition(older_than, now)).count()


RowSink = Callable[[list], None]


def fields(db) -> list:
    """The sprite_sessions columns this database has (of the model's)."""
    return present_fields(db, SpriteSession)


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


def get(db, session_id: str) -> dict:
    """One session by id; NotFound when there is none."""
    from nitejarctl.errors import NotFound

    row = SpriteSession.select(*fields(db)).where(SpriteSession.id == session_id).dicts().first()
    if row is None:
        raise NotFound(f"no sprite session with id {session_id!r}")
    return row


# ------------------------------------------------------------- bulk changes


def _closing(now: int) -> dict:
    return {SpriteSession.status: "closed", SpriteSession.last_active_at: now}


def _fetch(db, query) -> list[dict]:
    cursor = db.execute_sql(*query.sql())
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _preview(db, where, on_rows: RowSink | None, values: dict | None) -> int:
    """dry_run: count, or hand over the rows `where` selects, with `values` applied."""
    if on_rows is None:
        return SpriteSession.select().where(where).count()
    new = {f.name: v for f, v in (values or {}).items()}
    query = SpriteSession.select(*fields(db)).where(where).order_by(batch_key(db, SpriteSession))
    count, chunk = 0, []
    for row in stream(db, query):
        row.update(new)
        chunk.append(row)
        count += 1
        if len(chunk) >= DEFAULT_BATCH:
            on_rows(chunk)
            chunk = []
    if chunk:
        on_rows(chunk)
    return count


def _bulk(db, where, values: dict | None, *, dry_run: bool, on_rows: RowSink | None) -> int:
    """UPDATE (`values`) or DELETE (None) the rows `where` selects, batched by key."""
    if dry_run:
        return _preview(db, where, on_rows, values)
    returning = fields(db) if on_rows is not None else None

    def apply(condition) -> int:
        query = (SpriteSession.delete() if values is None else SpriteSession.update(values))
        query = query.where(condition)
        if returning is None:
            return query.execute()
        rows = _fetch(db, query.returning(*returning))
        if rows:
            on_rows(rows)
        return len(rows)

    return in_batches(db, SpriteSession, where, apply)


def close_stale(db, older_than: int, now: int, *, dry_run: bool = False,
                on_rows: RowSink | None = None) -> int:
    """Close every active session last active before now - older_than (status
    closed, last_active_at now). Returns how many (would have) changed."""
    return _bulk(db, stale_condition(older_than, now), _closing(now), dry_run=dry_run, on_rows=on_rows)


def close_for_conversation(db, session_key: str, agent_id: str, now: int, *, dry_run: bool = False,
                           on_rows: RowSink | None = None) -> int:
    """nitejar's closeSessionsForConversation: the conversation's active sessions
    -> closed. One statement (a conversation has a handful of sessions, found
    through idx_sprite_sessions_session_key_agent) and no transaction of its own,
    so that compaction can close them in the transaction that writes the summary."""
    where = ((SpriteSession.session_key == session_key) & (SpriteSession.agent_id == agent_id)
             & (SpriteSession.status == "active"))
    if dry_run:
        return _preview(db, where, on_rows, _closing(now))
    query = SpriteSession.update(_closing(now)).where(where)
    if on_rows is None:
        return query.execute()
    rows = _fetch(db, query.returning(*fields(db)))
    if rows:
        on_rows(rows)
    return len(rows)


def purge_condition(older_than: int, now: int, status: str | None = None):
    """nitejar's deleteOldSessions: closed or error, last active before now - older_than."""
    statuses = SpriteSession.status.in_(PURGEABLE) if status is None else SpriteSession.status == status
    return statuses & (SpriteSession.last_active_at < now - older_than)


def purge(db, older_than: int, now: int, *, dry_run: bool = False,
          on_rows: RowSink | None = None) -> int:
    """Delete closed and error sessions last active before now - older_than.
    Returns how many (would have) gone; `on_rows` receives them as they were."""
    # One status at a time: each batch's key scan then walks a single range of
    # idx_sprite_sessions_status, (status, rowid), in key order and stops at the
    # batch size, instead of sorting every remaining candidate for each batch.
    return sum(_bulk(db, purge_condition(older_than, now, status), None, dry_run=dry_run, on_rows=on_rows)
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
            found = {row["id"]: row for row in
                     SpriteSession.select(*cols).where(SpriteSession.id.in_(chunk)).dicts()}
            todo = [i for i in chunk if i in found and differs(found[i])]
            if not todo:
                rows = {}
            elif dry_run:
                rows = {i: {**found[i], **new} for i in todo}
            else:
                query = (SpriteSession.update(values)
                         .where(SpriteSession.id.in_(todo) & condition).returning(*cols))
                rows = {row["id"]: row for row in _fetch(db, query)}
        for i in chunk:
            if i in rows:
                result.changed.append(rows[i])
            elif i in found:
                result.unchanged.append(i)
            else:
                result.missing.append(i)
    return result


def close_ids(db, ids, now: int, *, dry_run: bool = False) -> IdChanges:
    """nitejar's closeSpriteSession for each id: status closed, last_active_at now."""
    return _change_ids(db, ids, _closing(now), lambda row: row["status"] != "closed",
                       SpriteSession.status != "closed", dry_run=dry_run)


def error_ids(db, ids, now: int, *, dry_run: bool = False) -> IdChanges:
    """nitejar's errorSpriteSession for each id: status error, last_active_at now."""
    values = {SpriteSession.status: "error", SpriteSession.last_active_at: now}
    return _change_ids(db, ids, values, lambda row: row["status"] != "error",
                       SpriteSession.status != "error", dry_run=dry_run)


def touch_ids(db, ids, now: int, *, dry_run: bool = False) -> IdChanges:
    """nitejar's touchSpriteSession for each id: last_active_at now (any status)."""
    return _change_ids(db, ids, {SpriteSession.last_active_at: now},
                       lambda row: row["last_active_at"] != now,
                       SpriteSession.last_active_at != now, dry_run=dry_run)
