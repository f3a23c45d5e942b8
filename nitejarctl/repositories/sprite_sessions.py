"""Sprite (remote shell) sessions — nitejar's spriteSessions repository.

Bulk changes (`close_stale`, `purge`) are set-based statements batched by key
range (`_batch.change_in_batches`): one short write transaction per batch, so
nitejar's own writers never wait long for the lock. They return the number of
rows changed. A caller that also wants the rows passes a `spool`
(nitejarctl.spool.Spool over `fields(db)`): each batch's rows go there as
tuples — with their new values for updates, as they were for deletes —
inside that batch's transaction; or `on_rows`, a callable
that gets them as lists of dicts (it must be as quick: never write to a pipe
whose reader may stall). Memory thus stays bounded by one batch however many
rows change. With `dry_run` nothing is written: the same rows are read (with
the values they would get) and handed over in chunks. `progress(done)` is
called after each batch commits.

The per-id operations (`close_ids`, `error_ids`, `touch_ids`) take the ids an
operator typed (already in memory) and return an `IdChanges`: the rows changed
(in the order given), the ids already in the requested state, the missing ids.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from nitejarctl.db import dialect, present_fields, stream
from nitejarctl.models import SpriteSession
from nitejarctl.repositories._batch import batch_key, change_in_batches, preview_columns, returning

STATUSES = ("active", "closed", "error")
PURGEABLE = ("closed", "error")


def stale_condition(older_than: int, now: int):
    """nitejar's findStaleSessions: active and last active before now - older_than."""
    return (SpriteSession.status == "active") & (SpriteSession.last_active_at < now - older_than)


def count_stale(db, older_than: int, now: int) -> int:
    return SpriteSession.select().where(stale_condition(older_than, now)).count()


RowSink = Callable[[list], None]
FETCH = 5000  # rows fetched (and handed over) at a time


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


def _sink(db, spool, on_rows: RowSink | None) -> Callable[[list], None] | None:
    """Where rows (tuples in `fields(db)` order) go: the spool, or `on_rows` as dicts."""
    if spool is not None:
        return spool.add
    if on_rows is None:
        return None
    names = [f.name for f in fields(db)]
    return lambda rows: on_rows([dict(zip(names, row)) for row in rows])


def _hand_over(cursor, sink) -> int:
    count = 0
    while rows := cursor.fetchmany(FETCH):
        sink(rows)
        count += len(rows)
    return count


def _returning(db, query, sink) -> int:
    return returning(db, query, SpriteSession, fields(db), sink)


def _preview(db, where, sink, values: dict | None) -> int:
    """dry_run: count, or hand over the rows `where` selects, with `values` applied."""
    if sink is None:
        return SpriteSession.select().where(where).count()
    query = (SpriteSession.select(*preview_columns(fields(db), values)).where(where)
             .order_by(batch_key(db, SpriteSession)))
    if dialect(db) == "postgresql":
        return _hand_over_stream(db, query, sink)
    return _hand_over(db.execute_sql(*query.sql()), sink)


def _hand_over_stream(db, query, sink) -> int:
    count, chunk = 0, []
    for row in stream(db, query):
        chunk.append(tuple(row.values()))
        if len(chunk) >= FETCH:
            sink(chunk)
            count += len(chunk)
            chunk = []
    if chunk:
        sink(chunk)
        count += len(chunk)
    return count


def _bulk(db, where, values: dict | None, *, dry_run: bool, spool=None, on_rows: RowSink | None = None,
          progress=None) -> int:
    """UPDATE (`values`) or DELETE (None) the rows `where` selects, batched by key."""
    sink = _sink(db, spool, on_rows)
    if dry_run:
        return _preview(db, where, sink, values)
    return change_in_batches(db, SpriteSession, where, values, columns=fields(db), sink=sink,
                             progress=progress)


def close_stale(db, older_than: int, now: int, *, dry_run: bool = False, spool=None,
                on_rows: RowSink | None = None, progress=None) -> int:
    """Close every active session last active before now - older_than (status
    closed, last_active_at now). Returns how many (would have) changed."""
    return _bulk(db, stale_condition(older_than, now), _closing(now), dry_run=dry_run, spool=spool,
                 on_rows=on_rows, progress=progress)


def close_for_conversation(db, session_key: str, agent_id: str, now: int, *, dry_run: bool = False,
                           spool=None, on_rows: RowSink | None = None) -> int:
    """nitejar's closeSessionsForConversation: the conversation's active sessions
    -> closed. One statement (a conversation has a handful of sessions, found
    through idx_sprite_sessions_session_key_agent) and no transaction of its own,
    so that compaction can close them in the transaction that writes the summary."""
    where = ((SpriteSession.session_key == session_key) & (SpriteSession.agent_id == agent_id)
             & (SpriteSession.status == "active"))
    sink = _sink(db, spool, on_rows)
    if dry_run:
        return _preview(db, where, sink, _closing(now))
    query = SpriteSession.update(_closing(now)).where(where)
    if sink is None:
        return query.execute()
    return _returning(db, query, sink)


def purge_condition(older_than: int, now: int, status: str | None = None):
    """nitejar's deleteOldSessions: closed or error, last active before now - older_than."""
    statuses = SpriteSession.status.in_(PURGEABLE) if status is None else SpriteSession.status == status
    return statuses & (SpriteSession.last_active_at < now - older_than)


def purge(db, older_than: int, now: int, *, dry_run: bool = False, spool=None,
          on_rows: RowSink | None = None, progress=None) -> int:
    """Delete closed and error sessions last active before now - older_than.
    Returns how many (would have) gone; the spool / `on_rows` receive them as
    they were."""
    # One status at a time: each batch's key scan then walks a single range of
    # idx_sprite_sessions_status, (status, rowid), in key order and stops at the
    # batch size, instead of sorting every remaining candidate for each batch.
    done = 0
    for status in PURGEABLE:
        so_far = None if progress is None else (lambda n, before=done: progress(before + n))
        done += _bulk(db, purge_condition(older_than, now, status), None, dry_run=dry_run, spool=spool,
                      on_rows=on_rows, progress=so_far)
    return done


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
