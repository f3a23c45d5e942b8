"""WAL checkpoints while a bulk change runs on a SQLite database in WAL mode.

A commit appends the pages the batch changed to the WAL; a checkpoint copies
them into the database file and syncs it. SQLite checkpoints on every commit
once the WAL passes 1000 pages, which for a batched change means writing and
syncing, for every batch, every index page it touched — with random keys
(uuids) nearly the same pages each time, so a million-row change would write
its indexes a hundred times over. While a bulk change runs, SQLite's own
checkpoints are off on its connection and a `Checkpointer` runs them in a
thread of its own, on a second connection, while the next batches go on, when
the `Schedule` says so: after each commit during the first `eager` seconds of
transactions (a short change thus ends with little left to copy), then once
the WAL holds about `wal_bytes` (seen from the file's growth, or judged by
the frames the previous interval wrote), and once more at the end, which also
truncates the WAL file if no reader is using it: a large change does not
leave a large file behind while nitejar keeps the database open. SQLite
starts the WAL again from its beginning only at a commit that finds it
copied whole, which a checkpoint running beside the batches never leaves
it; so, once the first second is over, every other checkpoint is a
catch-up that the change waits for between two batches (`Session`).

The checkpoints are PASSIVE and never wait: they never hold the write lock
nor wait for readers, so nitejar's writers never wait on them. The
connection's page cache is raised to BULK_CACHE_KIB meanwhile, so that a
batch's index pages stay in memory until its commit. Both settings are the
connection's own and are restored.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from dataclasses import dataclass
from urllib.parse import quote

from nitejarctl import timings
from nitejarctl.errors import OperationalProblem

BULK_CACHE_KIB = 128 * 1024


@dataclass
class Schedule:
    """When to checkpoint: a pure function of the commits' lock times and the
    WAL file's size (no clock, no thread)."""

    eager: float = 1.0  # seconds of transactions, each checkpointed as soon as it commits
    first_every: float = 4.0  # then every so many seconds of transactions at first …
    wal_bytes: int = 256 << 20  # … or as soon as the WAL file grew by this much
    shortest: float = 0.4
    longest: float = 10.0
    frame_bytes: int = 4096 + 24  # one WAL frame: a page and its header

    def __post_init__(self):
        self._young = 0.0  # transaction time so far, while it is under `eager`
        self._pending = 0.0  # transaction time since the last checkpoint
        self._every = self.first_every
        self._since = 0  # the WAL's size at the last checkpoint

    @property
    def eager_now(self) -> bool:
        """Whether every commit is still checkpointed as soon as it is made."""
        return self._young < self.eager

    def start(self, wal_size: int) -> None:
        """The change starts, with the WAL file `wal_size` bytes long."""
        self._since = wal_size

    def committed(self, seconds: float, wal_size: int, frames: int) -> bool:
        """After a commit whose transaction took `seconds`, with the WAL file
        now `wal_size` bytes and the previous checkpoint having found
        `frames` frames: checkpoint now?"""
        if self._young < self.eager:
            self._young += seconds
            self._since = wal_size
            return True
        self._pending += seconds
        if self._pending < self._every and wal_size - self._since < self.wal_bytes:
            return False
        if frames > 0:  # how long the previous interval's batches took to write wal_bytes
            per_second = frames * self.frame_bytes / self._pending
            self._every = min(self.longest, max(self.shortest, self.wal_bytes / per_second))
        self._pending, self._since = 0.0, wal_size
        return True


class Checkpointer:
    """Checkpoints of a WAL database, run one after the other by a thread of
    its own on a connection of its own, as they are requested: the copying
    and syncing overlap the next batches' work (the thread holds Python's
    lock only between checkpoints). A request made while one runs is served
    by one more run when it ends. `catch_up()` also waits for that run: with
    no commit in between, the WAL is then copied whole, and the next write
    transaction starts it again from its beginning (a WAL that is never copied
    whole before a commit is never restarted, and grows by every batch's pages
    to the size of the whole change). The last one, `finish()`'s, also
    truncates the WAL file if nobody is using it then."""

    def __init__(self, path: str):
        self.frames = 0  # the WAL frames the last checkpoint found
        self._error: Exception | None = None
        self._conn = connect(path, "rw")
        self._changed = threading.Condition()
        self._requested = 0  # requests made so far
        self._served = 0  # requests that a checkpoint begun after them has served
        self._last = False
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self._thread.start()

    def request(self) -> int:
        with self._changed:
            self._requested += 1
            self._changed.notify_all()
            return self._requested

    def catch_up(self) -> None:
        """Checkpoint now and wait until it is done."""
        wanted = self.request()
        with timings.measured("checkpoint wait"), self._changed:
            while self._served < wanted and self._error is None and self._thread.is_alive():
                self._changed.wait()

    def finish(self) -> None:
        """Checkpoint what is left (and truncate the WAL when nobody uses it),
        wait for it, and close."""
        with self._changed:
            self._last = True
            self._changed.notify_all()
        with timings.measured("checkpoint wait"):
            self._thread.join()
        self._conn.close()
        if self._error is not None:
            raise OperationalProblem(f"checkpoint failed: {self._error}")

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._served == self._requested and not self._last:
                    self._changed.wait()
                wanted, last = self._requested, self._last
            mode = "TRUNCATE" if last else "PASSIVE"  # TRUNCATE that would wait works as PASSIVE
            try:
                with timings.measured("checkpoint"):
                    self.frames = self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[1]
            except Exception as exc:  # reported by finish()
                with self._changed:
                    self._error = exc
                    self._changed.notify_all()
                return
            with self._changed:
                self._served = wanted
                self._changed.notify_all()
            if last:
                return


def connect(path: str, mode: str, *, timeout: float = 0) -> sqlite3.Connection:
    """A connection of nitejarctl's own to the database file `path` (mode ro
    or rw), usable from any thread, that waits `timeout` seconds at most for
    a lock (by default never)."""
    return sqlite3.connect(f"file:{quote(path)}?mode={mode}", uri=True, isolation_level=None,
                           timeout=timeout, check_same_thread=False)


class Session:
    """The bulk session of a WAL database (see bulk_session). While the
    schedule is eager, each checkpoint runs in the background; after that,
    every other one is a catch-up between two batches (once the rows read
    beside the change so far, whose snapshots would keep the WAL's last
    frames from being copied, have been read): the WAL is then copied whole,
    and the next batch's commit starts it again from its beginning. So the
    WAL holds about two intervals' frames at most (each `schedule.wal_bytes`
    or less), while half the checkpoints still overlap the batches."""

    def __init__(self, wal: str, schedule: Schedule, checkpointer: Checkpointer):
        self.wal, self.schedule, self.checkpointer = wal, schedule, checkpointer
        self.due = False  # a catch-up before the next batch
        self._catch_up_next = False

    def committed(self, seconds: float) -> None:
        schedule, checkpointer = self.schedule, self.checkpointer
        if not schedule.committed(seconds, _size(self.wal), checkpointer.frames):
            return
        if self._catch_up_next:
            self.due = True
        else:
            checkpointer.request()
        self._catch_up_next = not self._catch_up_next and not schedule.eager_now

    def between(self, settle=None) -> None:
        if self.due:
            self.due = False
            if settle is not None:
                settle()
            self.checkpointer.catch_up()


@contextlib.contextmanager
def bulk_session(db, path: str, schedule: Schedule | None = None, *, larger_cache: bool = True):
    """While a bulk change runs on `db` (the WAL database `path`): SQLite's
    own checkpoints off, a larger page cache (with `larger_cache`), and a
    Checkpointer in the background, requested as `schedule` says. Yields a
    Session: its `committed(seconds)` after each batch commits, its
    `between(settle)` before the next one begins."""
    wal = path + "-wal"
    autocheckpoint, cache = db.pragma("wal_autocheckpoint"), db.pragma("cache_size")
    page = db.pragma("page_size")
    schedule = schedule or Schedule(frame_bytes=page + 24)
    schedule.start(_size(wal))
    checkpointer = Checkpointer(path)
    db.execute_sql("PRAGMA wal_autocheckpoint = 0")
    kib = -cache if cache < 0 else cache * page // 1024  # negative sizes are KiB already, others pages
    if larger_cache and kib < BULK_CACHE_KIB:
        db.execute_sql(f"PRAGMA cache_size = {-BULK_CACHE_KIB}")
    try:
        yield Session(wal, schedule, checkpointer)
    except BaseException:
        with contextlib.suppress(Exception):  # keep the error that stopped the change
            _restore(db, autocheckpoint, cache, checkpointer)
        raise
    _restore(db, autocheckpoint, cache, checkpointer)


def _restore(db, autocheckpoint, cache, checkpointer) -> None:
    try:
        db.execute_sql(f"PRAGMA cache_size = {int(cache)}")
        db.execute_sql(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint)}")
    finally:
        checkpointer.finish()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
