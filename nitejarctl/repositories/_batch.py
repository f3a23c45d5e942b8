"""Bulk writes in short transactions, batched by key range.

nitejar's own writers wait at most 5 s for SQLite's write lock, so a bulk
change never holds it for long: each batch finds the upper key of the next
`size` matching rows and applies one set-based statement to the key range
(last, upper], in its own write transaction. On SQLite the key is the rowid
(every index ends with it, so the scan for the next range seeks instead of
rescanning); on PostgreSQL the primary key. The batch size adapts so that each
transaction holds the lock for about TARGET_SECONDS: small enough for
nitejar's writers, large enough that per-commit costs do not dominate a
million-row change.

Checkpoints (SQLite in WAL mode). A commit appends the pages the batch
changed to the WAL; a checkpoint copies them into the database file and
syncs it. SQLite checkpoints on every commit once the WAL passes 1000 pages,
which for a batched change means writing and syncing, for every batch, every
index page it touched — with random keys (uuids) nearly the same pages each
time, so a million-row change would write its indexes a hundred times over.
While a bulk change runs, its own connection instead checkpoints once the
WAL holds about WAL_TARGET_BYTES (seen from the file's growth, or judged by
the frames the previous interval wrote), and once more at the end. The
checkpoints are PASSIVE: they never hold the write lock nor wait for
readers, and they run between batches, so nitejar's writers never wait on
them; the WAL stays bounded (about the size a single statement doing the
whole change would leave), and the last one leaves nothing for the next
writer to copy. The connection's page cache is raised to BULK_CACHE_KIB
meanwhile, so that a batch's index pages stay in memory until its commit.
Both settings are the connection's own and are restored. At the end, if no
reader is using the WAL, it is truncated: a large change does not leave a
large file behind while nitejar keeps the database open.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import time
from collections.abc import Callable, Sequence

from peewee import SQL, PeeweeException, fn

from nitejarctl.db import dialect

DEFAULT_BATCH = 10_000
MIN_BATCH = 500
MAX_BATCH = 100_000
TARGET_SECONDS = 0.4
WAL_TARGET_BYTES = 256 << 20
FIRST_CHECKPOINT_SECONDS = 4.0  # unless the WAL file grew past WAL_TARGET_BYTES before
MAX_CHECKPOINT_SECONDS = 10.0
BULK_CACHE_KIB = 128 * 1024

Progress = Callable[[int], None]


def batch_key(db, model):
    return SQL("rowid") if dialect(db) == "sqlite" else model._meta.primary_key


def in_batches(db, model, where, apply: Callable[[object], int], *,
               batch_size: int = DEFAULT_BATCH, progress: Progress | None = None) -> int:
    """Call `apply(condition)` once per batch, where `condition` is `where`
    restricted to the batch's key range, each call in its own write
    transaction. `apply` runs one set-based statement and returns the rows it
    changed. Returns the total. `progress(done)` is called after each commit
    with the rows changed so far."""
    key = batch_key(db, model)
    total = 0
    last = None
    size = batch_size
    with _bulk_connection(db) as committed:
        while True:
            with db.atomic():
                started = time.monotonic()  # the write lock is ours from here to the commit
                ended: list[float] = []
                db.after_commit(functools.partial(_now_into, ended))  # before any callback of apply's
                upper, found = _next_upper(model, key, where, last, size)
                if upper is None:
                    return total
                condition = where & (key <= upper)
                if last is not None:
                    condition = condition & (key > last)
                total += apply(condition)
            seconds = (ended[0] if ended else time.monotonic()) - started
            committed(seconds)
            if progress is not None:
                progress(total)
            if found < size:  # that was the last of them: no need to look further
                return total
            last = upper
            size = _next_size(size, seconds)


def _now_into(times: list) -> None:
    times.append(time.monotonic())


def returning(db, query, model, columns: Sequence, sink: Callable[[list], None]) -> int:
    """Run `query`, an UPDATE or DELETE of `model`'s rows, RETURNING `columns`,
    and hand the rows to `sink` as tuples in batch-key order — the order a
    dry run lists them in — a chunk at a time. Returns how many there were.

    The database returns them in the order its plan visited them (on SQLite
    one index range after the other for an IN; on PostgreSQL any order), so
    they are sorted: on SQLite by rowid here (a batch is bounded, and mostly
    sorted already), on PostgreSQL by the primary key in the database, with
    its collation, as the dry run's ORDER BY does."""
    sql, params = query.returning(batch_key(db, model).alias("nitejarctl_key"), *columns).sql()
    if dialect(db) == "postgresql":
        sql = f'WITH "changed" AS ({sql}) SELECT * FROM "changed" ORDER BY 1'
    rows = db.execute_sql(sql, params).fetchall()
    if dialect(db) == "sqlite":
        rows.sort(key=_first)
    for start in range(0, len(rows), HAND_OVER):
        sink([row[1:] for row in rows[start:start + HAND_OVER]])
    return len(rows)


_first = operator.itemgetter(0)
HAND_OVER = 5000  # rows handed to a sink at a time


def _next_upper(model, key, where, last, size: int):
    """The key of the `size`-th row `where` selects after `last` (or of the
    last one), and how many there are up to it."""
    keys = model.select(key.alias("k")).where(where)
    if last is not None:
        keys = keys.where(key > last)
    keys = keys.order_by(key).limit(size)
    return model.select(fn.MAX(SQL("k")), fn.COUNT(SQL("*"))).from_(keys.alias("batch")).tuples().get()


def _next_size(size: int, seconds: float) -> int:
    """The size whose transaction should take TARGET_SECONDS, judging by this
    one's (at most twice or half this size per step)."""
    factor = min(2.0, max(0.5, TARGET_SECONDS / seconds)) if seconds > 0 else 2.0
    return min(MAX_BATCH, max(MIN_BATCH, int(size * factor)))


@contextlib.contextmanager
def _bulk_connection(db):
    """Yield `committed(seconds)`, to call after each batch's commit. On a
    SQLite database in WAL mode (outside any transaction) the connection
    checkpoints by itself meanwhile and has a larger page cache (see the
    module docstring); both settings are the connection's own and restored."""
    if (dialect(db) != "sqlite" or db.transaction_depth() > 0
            or str(_pragma(db, "journal_mode")).lower() != "wal"):
        yield lambda seconds: None
        return
    autocheckpoint, cache = _pragma(db, "wal_autocheckpoint"), _pragma(db, "cache_size")
    frame = _pragma(db, "page_size") + 24
    wal = _wal_file(db)
    pending, every, since = 0.0, FIRST_CHECKPOINT_SECONDS, _size(wal)

    def committed(seconds: float) -> None:
        # Checkpoint once the WAL holds about WAL_TARGET_BYTES: seen from the
        # file's growth while it grows, else judged by how many frames the
        # previous interval's batches wrote per second of transaction.
        nonlocal pending, every, since
        pending += seconds
        if pending >= every or _size(wal) - since >= WAL_TARGET_BYTES:
            frames = _checkpoint(db)
            if frames > 0:
                every = min(MAX_CHECKPOINT_SECONDS, max(TARGET_SECONDS, pending * WAL_TARGET_BYTES / (frames * frame)))
            pending, since = 0.0, _size(wal)

    db.execute_sql("PRAGMA wal_autocheckpoint = 0")
    if _cache_kib(db, cache) < BULK_CACHE_KIB:
        db.execute_sql(f"PRAGMA cache_size = {-BULK_CACHE_KIB}")
    try:
        yield committed
    except BaseException:
        with contextlib.suppress(PeeweeException):  # keep the error that stopped the change
            _restore(db, autocheckpoint, cache)
        raise
    _restore(db, autocheckpoint, cache)


def _restore(db, autocheckpoint, cache) -> None:
    db.execute_sql(f"PRAGMA cache_size = {int(cache)}")
    db.execute_sql(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint)}")
    if _checkpoint(db) > 0:
        _truncate_wal(db)


def _truncate_wal(db) -> None:
    """Give the disk space of a WAL the change grew back, if nobody is using
    it right now: a TRUNCATE checkpoint with no busy wait (after the PASSIVE
    one there is nothing left to copy), which otherwise just gives up."""
    timeout = _pragma(db, "busy_timeout")
    db.execute_sql("PRAGMA busy_timeout = 0")
    try:
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        db.execute_sql(f"PRAGMA busy_timeout = {int(timeout)}")


def _wal_file(db) -> str | None:
    path = next((row[2] for row in db.execute_sql("PRAGMA database_list") if row[1] == "main"), "")
    return path + "-wal" if path else None


def _size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _pragma(db, name: str):
    return db.execute_sql(f"PRAGMA {name}").fetchone()[0]


def _cache_kib(db, cache: int) -> int:
    """cache_size in KiB (negative values are KiB already, positive ones pages)."""
    return -cache if cache < 0 else cache * _pragma(db, "page_size") // 1024


def _checkpoint(db) -> int:
    """Checkpoint what no reader needs any more; the frames the WAL held."""
    busy, frames, _done = db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return frames
