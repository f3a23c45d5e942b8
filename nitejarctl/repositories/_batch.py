"""Bulk writes in short transactions, batched by key range.

nitejar's own writers wait at most 5 s for SQLite's write lock, so a bulk
change never holds it for long: each batch finds the upper key of the next
`size` matching rows and applies one set-based statement to the key range
(last, upper], in its own write transaction. On SQLite the key is the rowid
(every index ends with it, so the scan for the next range seeks instead of
rescanning); on PostgreSQL the primary key. The batch size adapts so that each
transaction holds the lock for about TARGET_SECONDS: small enough for
nitejar's writers, large enough that per-commit costs do not dominate a
million-row change. SQLite's lock is not fair: a writer waiting for it
sleeps between tries (up to 100 ms), and the next batch would take it again
at once, so after every YIELD_AFTER_SECONDS of write-lock time the change
pauses for YIELD_SECONDS, in which a waiting writer gets it.

Checkpoints (SQLite in WAL mode). A commit appends the pages the batch
changed to the WAL; a checkpoint copies them into the database file and
syncs it. SQLite checkpoints on every commit once the WAL passes 1000 pages,
which for a batched change means writing and syncing, for every batch, every
index page it touched — with random keys (uuids) nearly the same pages each
time, so a million-row change would write its indexes a hundred times over.
While a bulk change runs, SQLite's own checkpoints are off on its connection
and a Checkpointer runs them in a thread of its own, on a second connection,
while the next batches go on: after each commit during the first
EAGER_SECONDS of transactions (a short change thus ends with little left to
copy), then once the WAL holds about WAL_TARGET_BYTES (seen from the file's
growth, or judged by the frames the previous interval wrote), and once more
at the end, which also truncates the WAL file if no reader is using it: a
large change does not leave a large file behind while nitejar keeps the
database open. The checkpoints are PASSIVE and never wait: they never hold
the write lock nor wait for readers, so nitejar's writers never wait on
them; the WAL stays bounded (about the size a single statement doing the
whole change would leave), and the last one leaves nothing for the next
writer to copy. The connection's page cache is raised to BULK_CACHE_KIB
meanwhile, so that a batch's index pages stay in memory until its commit.
Both settings are the connection's own and are restored.

Rows. A change that reports its rows gets them, on SQLite in WAL mode, from
a read-only connection while the batch's statement runs in a thread of its
own (change_in_batches); elsewhere from UPDATE / DELETE … RETURNING
(returning()).
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence

from peewee import SQL, Value, fn

from nitejarctl.db import dialect
from nitejarctl.errors import OperationalProblem

DEFAULT_BATCH = 10_000
MIN_BATCH = 500
MAX_BATCH = 100_000
TARGET_SECONDS = 0.4
WAL_TARGET_BYTES = 256 << 20
EAGER_SECONDS = 1.0  # of transactions, each checkpointed as soon as it commits
FIRST_CHECKPOINT_SECONDS = 4.0  # unless the WAL file grew past WAL_TARGET_BYTES before
MAX_CHECKPOINT_SECONDS = 10.0
BULK_CACHE_KIB = 128 * 1024
# SQLite: after this much write-lock time, a pause before the next batch, long
# enough for a writer waiting on the lock to get it (SQLite's busy handler
# tries again at least every 100 ms), so that nitejar never waits much longer.
YIELD_AFTER_SECONDS = 1.0
YIELD_SECONDS = 0.12

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
    held = 0.0  # write-lock time since the last pause (SQLite)
    pauses = dialect(db) == "sqlite"
    with _one_at_a_time(db), _bulk_connection(db) as committed:
        while True:
            with db.atomic():
                started = time.monotonic()  # the write lock is ours from here to the commit
                lock: list[float] = []  # how long this batch held the write lock
                # First thing after the commit, before any callback of apply's: the
                # checkpoint of this batch starts at once.
                db.after_commit(functools.partial(_committed, started, lock, committed))
                upper, found = _next_upper(model, key, where, last, size)
                if upper is None:
                    return total
                condition = where & (key <= upper)
                if last is not None:
                    condition = condition & (key > last)
                total += apply(condition)
            seconds = lock[0] if lock else time.monotonic() - started
            if progress is not None:
                progress(total)
            if found < size:  # that was the last of them: no need to look further
                return total
            last = upper
            size = _next_size(size, seconds)
            held += seconds
            if pauses and held >= YIELD_AFTER_SECONDS:
                time.sleep(YIELD_SECONDS)  # nitejar's writers' turn
                held = 0.0


LOCK_SUFFIX = "-nitejarctl.lock"


@contextlib.contextmanager
def _one_at_a_time(db):
    """On a SQLite file, one bulk change at a time: an exclusive flock(2) on
    DATABASE-nitejarctl.lock (the database file itself must not be opened a
    second time: closing that descriptor would drop SQLite's own locks). Two
    greedy changes would otherwise take SQLite's unfair lock from each other
    in every pause they make for nitejar's writers, which would then rarely
    get it. A second change waits here for the first to end."""
    path = _database_file(db) if dialect(db) == "sqlite" and db.transaction_depth() == 0 else None
    try:
        import fcntl

        fd = os.open(path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, 0o644) if path else None
    except (ImportError, OSError):  # no flock here, or no file to lock: no turns to take
        fd = None
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


def _committed(started: float, lock: list, committed: Callable[[float], None]) -> None:
    lock.append(time.monotonic() - started)
    committed(lock[0])


def change_in_batches(db, model, where, values: dict | None, *, columns: Sequence = (),
                      sink: Callable[[list], None] | None = None, batch_size: int = DEFAULT_BATCH,
                      progress: Progress | None = None) -> int:
    """UPDATE `model` SET `values` (DELETE when None) where `where` holds,
    batch by batch (in_batches), and hand every changed row to `sink` — as a
    tuple of `columns`, with the new values for an update — in batch-key
    order, a chunk at a time, inside its batch's transaction (possibly while
    its change still runs, in another thread). Returns how many rows changed.

    On SQLite in WAL mode the rows are read while the change runs: the
    UPDATE or DELETE runs in a thread of its own (SQLite works without
    Python's lock) while a second, read-only connection reads the batch's
    rows — the values an update sets being constants selected in their
    columns' place, as a dry run's preview() does. The batch holds the write
    lock, so the reader's snapshot is the state the change starts from: they
    are exactly the rows it changes (the counts are compared; a mismatch
    rolls the batch back). That is about what the change alone costs, where
    RETURNING would add its rows' cost to it (SQLite collects them in a
    temporary b-tree before it hands out the first). Elsewhere (PostgreSQL,
    where another transaction may change a row between a SELECT and the
    UPDATE; SQLite without WAL, whose readers would block the writer) the
    statement returns them itself (returning())."""
    def statement(condition):
        query = model.delete() if values is None else model.update(values)
        return query.where(condition)

    if sink is None:
        return in_batches(db, model, where, lambda c: statement(c).execute(),
                          batch_size=batch_size, progress=progress)
    path = _wal_database(db)
    if path is None:
        return in_batches(db, model, where, lambda c: returning(db, statement(c), model, columns, sink),
                          batch_size=batch_size, progress=progress)

    key = batch_key(db, model)
    selected = [key, *preview_columns(columns, values)]

    def apply(reader, condition) -> int:
        change = _Background(statement(condition).execute)
        try:
            rows = _read(db, reader, model.select(*selected).where(condition).order_by(key))
            for start in range(0, len(rows), HAND_OVER):  # while the change still runs
                sink([row[1:] for row in rows[start:start + HAND_OVER]])
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                change.join()
            if isinstance(exc, sqlite3.Error):
                raise OperationalProblem(f"reading the changed rows failed: {exc}") from None
            raise
        changed = change.join()
        if changed != len(rows):
            raise OperationalProblem(f"{model._meta.table_name}: a batch changed {changed} rows where "
                                     f"{len(rows)} were read; it was rolled back")
        return changed

    with contextlib.closing(_connect(path, "ro")) as reader:
        return in_batches(db, model, where, functools.partial(apply, reader),
                          batch_size=batch_size, progress=progress)


def _read(db, conn: sqlite3.Connection, query) -> list:
    """The rows of `query`, run on `conn`, a connection of our own; its time
    reported to db.traced when the command traces its SQL (-v)."""
    started = time.perf_counter()
    sql, params = query.sql()
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        traced = getattr(db, "traced", None)
        if traced is not None:
            traced(sql, time.perf_counter() - started)


class _Background:
    """`call()` run by a thread of its own; `join()` waits for it and returns
    its result or raises its exception."""

    def __init__(self, call: Callable[[], object]):
        self._result: object = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), name="batch")
        self._thread.start()

    def _run(self, call) -> None:
        try:
            self._result = call()
        except BaseException as exc:  # handed to the joining thread
            self._error = exc

    def join(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def _wal_database(db) -> str | None:
    """The file of a SQLite database in WAL mode, used outside any
    transaction (None otherwise)."""
    if dialect(db) != "sqlite" or db.transaction_depth() > 0:
        return None
    path = _database_file(db)
    if path is None or str(_pragma(db, "journal_mode")).lower() != "wal":
        return None
    return path


def _connect(path: str, mode: str) -> sqlite3.Connection:
    """A connection of nitejarctl's own to the database file `path` (mode ro
    or rw), usable from any thread, that never waits for a lock."""
    from urllib.parse import quote

    return sqlite3.connect(f"file:{quote(path)}?mode={mode}", uri=True, isolation_level=None,
                           timeout=0, check_same_thread=False)


def preview_columns(columns: Sequence, values: dict | None) -> list:
    """`columns` as they read after an UPDATE that sets `values` (constants):
    each set column's value in its place, under its name."""
    new = {f.name: v for f, v in (values or {}).items()}
    return [Value(new[f.name]).alias(f.name) if f.name in new else f for f in columns]


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
    SQLite database in WAL mode (outside any transaction) the WAL is
    checkpointed in the background meanwhile and the connection has a larger
    page cache (see the module docstring); its settings are restored."""
    path = _wal_database(db)
    if path is None:
        yield lambda seconds: None
        return
    wal = path + "-wal"
    autocheckpoint, cache = _pragma(db, "wal_autocheckpoint"), _pragma(db, "cache_size")
    checkpointer = Checkpointer(path)

    frame = _pragma(db, "page_size") + 24
    young, pending, every, since = 0.0, 0.0, FIRST_CHECKPOINT_SECONDS, _size(wal)

    def committed(seconds: float) -> None:
        # While the change is young every commit is checkpointed right away,
        # so that a short change leaves little to copy when it ends. Then a
        # checkpoint once the WAL holds about WAL_TARGET_BYTES: seen from the
        # file's growth while it grows, else judged by how many frames the
        # previous interval's batches wrote per second of transaction.
        nonlocal young, pending, every, since
        if young < EAGER_SECONDS:
            young += seconds
            checkpointer.request()
            since = _size(wal)
            return
        pending += seconds
        if pending >= every or _size(wal) - since >= WAL_TARGET_BYTES:
            frames = checkpointer.frames
            checkpointer.request()
            if frames > 0:
                every = min(MAX_CHECKPOINT_SECONDS, max(TARGET_SECONDS, pending * WAL_TARGET_BYTES / (frames * frame)))
            pending, since = 0.0, _size(wal)

    db.execute_sql("PRAGMA wal_autocheckpoint = 0")
    if _cache_kib(db, cache) < BULK_CACHE_KIB:
        db.execute_sql(f"PRAGMA cache_size = {-BULK_CACHE_KIB}")
    try:
        yield committed
    except BaseException:
        with contextlib.suppress(Exception):  # keep the error that stopped the change
            _restore(db, autocheckpoint, cache, checkpointer)
        raise
    _restore(db, autocheckpoint, cache, checkpointer)


class Checkpointer:
    """Checkpoints of a WAL database, run one after the other by a thread of
    its own on a connection of its own, as they are requested: the copying
    and syncing overlap the next batches' work (the thread holds Python's
    lock only between checkpoints). A request made while one runs is served
    by one more run when it ends. The last one, `finish()`'s, also truncates
    the WAL file if nobody is using it then. They never wait (no busy
    timeout): PASSIVE, they never hold the write lock nor wait for readers,
    so nitejar's writers never wait on them."""

    def __init__(self, path: str):
        self.frames = 0  # the WAL frames the last checkpoint found
        self._error: Exception | None = None
        self._conn = _connect(path, "rw")
        self._wanted = threading.Event()
        self._last = False
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def finish(self) -> None:
        """Checkpoint what is left (and truncate the WAL when nobody uses it),
        wait for it, and close."""
        self._last = True
        self._wanted.set()
        self._thread.join()
        self._conn.close()
        if self._error is not None:
            raise OperationalProblem(f"checkpoint failed: {self._error}")

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            last = self._last
            mode = "TRUNCATE" if last else "PASSIVE"  # TRUNCATE that would wait works as PASSIVE
            try:
                self.frames = self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[1]
            except Exception as exc:  # reported by finish()
                self._error = exc
                return
            if last:
                return


def _restore(db, autocheckpoint, cache, checkpointer) -> None:
    db.execute_sql(f"PRAGMA cache_size = {int(cache)}")
    db.execute_sql(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint)}")
    checkpointer.finish()


def _database_file(db) -> str | None:
    """The main database's file (None for an in-memory one)."""
    return next((row[2] for row in db.execute_sql("PRAGMA database_list") if row[1] == "main"), "") or None


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _pragma(db, name: str):
    return db.execute_sql(f"PRAGMA {name}").fetchone()[0]


def _cache_kib(db, cache: int) -> int:
    """cache_size in KiB (negative values are KiB already, positive ones pages)."""
    return -cache if cache < 0 else cache * _pragma(db, "page_size") // 1024
