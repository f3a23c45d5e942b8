"""Copying a live SQLite database, and putting a copy back: SQLite's backup
API a step at a time, VACUUM INTO, and the checks a copy gets.

nitejar keeps writing meanwhile. In WAL mode (nitejar's) the copy holds one
read transaction across all its steps: it copies one snapshot, is never
restarted by nitejar's commits, and takes no lock a writer waits for. In a
rollback-journal mode every step holds a shared lock, which a writer's commit
does wait for: each step is short, the copy pauses after every
`Batching.pause_after` seconds of steps as a bulk change does, and since a
commit makes the backup API start over, a copy that keeps being restarted
gives up with an error rather than run for ever.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field

from nitejarctl.db.batches import Batching
from nitejarctl.errors import OperationalProblem, UsageProblem

STEP_PAGES = 1024  # pages a backup step copies (4 MB at SQLite's default page size)
MAX_RESTARTS = 5  # times a copy in a rollback-journal mode may start over
BUSY_RETRY = 0.05  # seconds the backup API sleeps when a lock it needs is taken


def connect(path: str, *, mode: str = "rw", busy_timeout: float = 5.0) -> sqlite3.Connection:
    """A connection of nitejarctl's own to an existing file (`mode` ro or rw:
    never created here), waiting up to `busy_timeout` seconds for a lock."""
    from nitejarctl.db.checkpoints import connect as connect_file

    return connect_file(os.path.abspath(path), mode, timeout=busy_timeout)


def online_copy(source: str, dest: sqlite3.Connection, *, busy_timeout: float, progress=None,
                batching: Batching | None = None, sleep=time.sleep, clock=time.monotonic) -> int:
    """Copy the database file `source` into `dest` (an open connection to an
    empty file) while others write to it; returns the pages copied.
    `progress(done, total)` after each step."""
    conn = connect(source, mode="ro", busy_timeout=busy_timeout)
    try:
        wal = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
        if wal:
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
        steps = _Steps(progress, busy_timeout=busy_timeout, batching=None if wal else batching or Batching(),
                       sleep=sleep, clock=clock)
        conn.backup(dest, pages=STEP_PAGES, progress=steps, sleep=BUSY_RETRY)
        return steps.total
    finally:
        conn.close()


def copy_into(source: sqlite3.Connection, dest: sqlite3.Connection, *, busy_timeout: float,
              progress=None) -> int:
    """Copy `source`'s database over `dest`'s (a restore): one write
    transaction on `dest`, committed at the end, so that a copy stopped
    half-way leaves `dest` as it was. Returns the pages copied."""
    steps = _Steps(progress, busy_timeout=busy_timeout)
    source.backup(dest, pages=STEP_PAGES, progress=steps, sleep=BUSY_RETRY)
    return steps.total


class _Steps:
    """The backup API's progress callback: reports progress, pauses for
    writers (`batching`, when a step's lock makes them wait), counts
    restarts, and gives up on a lock held past the busy timeout."""

    def __init__(self, progress, *, busy_timeout: float, batching: Batching | None = None,
                 sleep=time.sleep, clock=time.monotonic):
        self.progress, self.busy_timeout, self.batching = progress, busy_timeout, batching
        self.sleep, self.clock = sleep, clock
        self.total = 0
        self.restarts = 0
        self._remaining = None
        self._busy_since = None
        self._since_pause = clock()

    def __call__(self, status: int, remaining: int, total: int) -> None:
        now = self.clock()
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            self._busy_since = self._busy_since or now
            if now - self._busy_since > self.busy_timeout:
                raise OperationalProblem("database is locked: another process held its lock past the busy "
                                         "timeout (retry, or raise --busy-timeout)")
            return
        self._busy_since = None
        if self._remaining is not None and remaining > self._remaining:
            self.restarts += 1  # the source changed: the backup API starts over
            if self.restarts > MAX_RESTARTS:
                raise OperationalProblem(
                    f"the database changed {self.restarts} times while it was being copied (it is not in "
                    "WAL mode, where a copy reads one snapshot); retry when it is quieter, or put it in WAL "
                    "mode as nitejar does")
        self._remaining = remaining
        self.total = total
        if self.progress is not None:
            self.progress(total - remaining, total)
        if self.batching is not None and remaining and now - self._since_pause >= self.batching.pause_after:
            self.sleep(self.batching.pause)  # a writer waiting for the lock gets it
            self._since_pause = self.clock()


def vacuum_into(source: str, path: str, *, busy_timeout: float, page_size: int | None = None) -> None:
    """VACUUM INTO `path` (an empty file): a compact copy from one read
    transaction, with `page_size` when given."""
    conn = connect(source, mode="ro", busy_timeout=busy_timeout)
    try:
        if page_size is not None:
            conn.execute(f"PRAGMA page_size = {int(page_size)}")
        conn.execute("VACUUM INTO ?", (path,))
    finally:
        conn.close()


# ------------------------------------------------------------------ checks

MAGIC = b"SQLite format 3\x00"


@dataclass
class FileCheck:
    """What a check of a database file found."""

    integrity: str = "ok"
    rows: dict[str, int | None] = field(default_factory=dict)
    page_size: int = 0
    tables: set[str] = field(default_factory=set)


def is_sqlite_file(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def check(conn: sqlite3.Connection, *, full: bool = True) -> FileCheck:
    """integrity_check (quick_check unless `full`), the tables and, when it
    passes, their rows."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        found = [r[0] for r in conn.execute(f"PRAGMA {pragma}").fetchall()]
    except sqlite3.DatabaseError as exc:  # too damaged to be checked at all
        found = [str(exc)]
    result = FileCheck(integrity="ok" if found == ["ok"] else "; ".join(map(str, found[:5])),
                       page_size=conn.execute("PRAGMA page_size").fetchone()[0])
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
        "ORDER BY name")]
    result.tables = set(names)
    if result.integrity != "ok":
        return result
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            result.rows[name] = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
        except sqlite3.Error:  # a virtual table whose module this SQLite lacks
            result.rows[name] = None
    return result


def finish_copy(conn: sqlite3.Connection) -> None:
    """Make a fresh copy one self-contained file (rollback journal: no -wal
    or -shm beside it, readable from read-only media)."""
    conn.execute("PRAGMA journal_mode = DELETE").fetchone()


def checkpoint(conn: sqlite3.Connection) -> bool:
    """Move the WAL into the database file and truncate it; False when a
    reader kept part of it (the next checkpoint finishes the work)."""
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy


# ------------------------------------------------------------------ backups


class SqliteBackups:
    """Backups of a SQLite database file (db.sqlite.Sqlite.backups())."""

    can_compact = True  # VACUUM INTO
    suffix = "bak"

    def __init__(self, db):
        self.db = db
        self.path = db.file_path()
        if self.path is None:
            raise UsageProblem("an in-memory database has no file to back up or restore")
        self.busy_timeout = db.pragma("busy_timeout") / 1000

    def write(self, path: str, *, progress=None, compact: bool = False,
              batching: Batching | None = None) -> FileCheck:
        """Copy the database into `path` (an empty file of ours) — the backup
        API in steps, or VACUUM INTO with `compact` — make the copy one
        self-contained file and check it (integrity_check, rows per table)."""
        if compact:
            vacuum_into(self.path, path, busy_timeout=self.busy_timeout)
        dest = connect(path, mode="rw", busy_timeout=self.busy_timeout)
        try:
            if not compact:
                online_copy(self.path, dest, busy_timeout=self.busy_timeout, progress=progress,
                            batching=batching)
            finish_copy(dest)
            checked = check(dest)
        finally:
            dest.close()
        if checked.integrity != "ok":
            raise OperationalProblem(f"the copy failed its integrity check ({checked.integrity}); "
                                     "the database itself may be damaged: run 'nitejarctl doctor'")
        return checked

    def safety_path(self, stamp: str) -> str:
        return f"{self.path}.{stamp}.{self.suffix}"

    def check(self, path: str) -> FileCheck:
        """Is `path` a sound SQLite database? integrity_check, tables, rows."""
        from nitejarctl.db.pg_tools import MAGIC as PG_MAGIC

        with open(path, "rb") as fh:
            head = fh.read(len(MAGIC))
        if head.startswith(PG_MAGIC):
            raise OperationalProblem(f"{path} is a pg_dump archive (PostgreSQL), not a SQLite database")
        if head != MAGIC:
            raise OperationalProblem(f"{path} is not a SQLite database")
        try:
            conn = connect(path, mode="ro", busy_timeout=self.busy_timeout)
            try:
                return check(conn)
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise OperationalProblem(f"{path} cannot be read as a SQLite database: {exc}") from None

    def restore(self, path: str, *, progress=None) -> dict:
        """Replace the database's content with `path`'s, through the backup
        API on a connection to the live file (its -wal and -shm stay
        SQLite's to handle), in one write transaction. Returns the rows per
        table after."""
        import shutil
        import tempfile

        source = connect(path, mode="ro", busy_timeout=self.busy_timeout)
        dest = connect(self.path, mode="rw", busy_timeout=self.busy_timeout)
        scratch = None
        try:
            wal = str(dest.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
            size = dest.execute("PRAGMA page_size").fetchone()[0]
            if wal and source.execute("PRAGMA page_size").fetchone()[0] != size:
                # The backup API cannot change a WAL database's page size: copy
                # the source with this one's first.
                scratch = tempfile.mkdtemp(prefix=".nitejarctl-restore.", dir=os.path.dirname(self.path))
                converted = os.path.join(scratch, "restore.db")
                source.close()
                vacuum_into(path, converted, busy_timeout=self.busy_timeout, page_size=size)
                source = connect(converted, mode="ro", busy_timeout=self.busy_timeout)
            copy_into(source, dest, busy_timeout=self.busy_timeout, progress=progress)
            if wal:
                checkpoint(dest)
            after = check(dest, full=False)
        finally:
            source.close()
            dest.close()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        self.db.forget_schema()
        if after.integrity != "ok":
            raise OperationalProblem(f"the restored database failed its check: {after.integrity}")
        return after.rows
