"""Copying one table: batches read from the snapshot by rowid, written with
COPY by a thread of its own (so that formatting the next batch overlaps
PostgreSQL's work on this one), each batch committed with the progress row
that records it. A batch with a bad value is looked at value by value."""

from __future__ import annotations

import io
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass, field

from nitejarctl import signals
from nitejarctl.errors import OperationalProblem
from nitejarctl.maintenance.transfer import rows as R
from nitejarctl.maintenance.transfer import target as T
from nitejarctl.maintenance.transfer.rows import quote

FIRST_BATCH = 5000
BATCH_BYTES = 4 << 20  # COPY data per batch: large enough for COPY's speed, small enough to keep memory flat
LARGEST_BATCH = 200_000
_FORMAT_ERRORS = (TypeError, AttributeError, ValueError, UnicodeError, OverflowError)


class BadValues(OperationalProblem):
    """Values the target cannot take, with --on-bad-value fail."""


@dataclass
class Layout:
    """How one table's rows are read, written and checked."""

    table: object  # source.Table
    columns: list[str]
    kinds: list[str]
    limits: list
    nullable: list[bool]
    line: object = None  # rows.formatter
    hashed: object = None  # the line a checksum is taken of, where it is not the COPY line

    def __post_init__(self):
        self.line = R.formatter(self.kinds)
        if R.FLOAT in self.kinds or R.FLOAT4 in self.kinds:
            self.hashed = R.formatter(self.kinds, hashed=True)

    def encode(self, rows) -> tuple[bytes, int]:
        """COPY data and checksum of rows `(rowid, value, …)`."""
        lines = [self.line(r) for r in rows]
        return R.encode_batch(lines, None if self.hashed is None else [self.hashed(r) for r in rows])

    @property
    def copy_sql(self) -> str:
        return f"COPY {quote(self.table.name)} ({', '.join(map(quote, self.columns))}) FROM STDIN"

    @property
    def checksum_sql(self) -> str:
        return R.checksum_sql(self.table.name, self.columns, self.kinds)


@dataclass
class Batch:
    after: float | int
    upper: int
    data: bytes
    rows: int
    checksum: int
    rejected: list = field(default_factory=list)


class Rejects:
    """The reject file (created on the first bad value, mode 0600, never
    through a symbolic link) and the count of bad values per table."""

    def __init__(self, path: str):
        import threading

        self.path = path
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self._file = None

    def add(self, table, snapshot, rowid: int, bad) -> None:
        with self.lock:
            self._add(table, snapshot, rowid, bad)

    def _add(self, table, snapshot, rowid: int, bad) -> None:
        import json

        if self._file is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
            if self._file.tell() == 0:
                self._file.write("table\tkey\tcolumn\tproblem\tvalue\n")
        key = json.dumps(snapshot.keys_of(table, rowid), ensure_ascii=True, default=str)
        for column, problem, value in bad:
            self._file.write("\t".join(R.shown(x) for x in (table.name, key, column, problem))
                             + "\t" + R.shown(value) + "\n")
            self.counts[table.name] = self.counts.get(table.name, 0) + 1
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class _Writer:
    """COPY and commit, batch after batch, in a thread of its own."""

    def __init__(self, conn, layout: Layout, committed):
        self.conn, self.layout, self.committed = conn, layout, committed
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.refused: tuple | None = None  # (batch, PostgreSQL's error): a value it would not take
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="copy", daemon=True)
        self.thread.start()

    def put(self, batch: Batch) -> None:
        self.queue.put(batch)

    @property
    def stopped(self) -> bool:
        return self.refused is not None or self.error is not None

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abandon(self) -> None:
        """Stop after the batch being written (the command is ending)."""
        self.error = self.error or _Abandoned()
        self.queue.put(None)
        self.thread.join()

    def _run(self) -> None:
        import psycopg2

        cur = self.conn.cursor()
        while (batch := self.queue.get()) is not None:
            if self.stopped:
                continue
            try:
                write(cur, self.layout, batch)
                self.conn.commit()
                self.committed(batch.rows)
            except (psycopg2.DataError, psycopg2.IntegrityError) as exc:
                self.conn.rollback()
                self.refused = (batch, exc)
            except BaseException as exc:  # raised again in the copying thread
                self.error = exc


class _Abandoned(Exception):
    pass


def write(cur, layout: Layout, batch: Batch) -> None:
    if batch.data:
        cur.copy_expert(layout.copy_sql, io.BytesIO(batch.data), size=1 << 20)
    T.record_batch(cur, layout.table.name, batch.upper, batch.rows, batch.checksum, batch.rejected)


class Stopped(Exception):
    """Another lane failed or the command is ending: stop between batches."""


def copy_table(snapshot, conn, layout: Layout, state, *, on_bad: str, rejects: Rejects, progress,
               stop=lambda: False) -> None:
    """Copy the table's rows after `state.last_rowid`, committing each batch
    with its progress row; `progress(n)` after each batch of n rows; `stop()`
    true ends it between batches (Stopped)."""
    select = snapshot.batch_sql(layout.table.name, layout.columns)
    after = float("-inf") if state.last_rowid is None else state.last_rowid
    size = FIRST_BATCH
    while True:
        writer = _Writer(conn, layout, progress)
        unreadable = False  # the next batch has a value the fast path cannot format
        try:
            while not writer.stopped:
                try:
                    batch = _read(snapshot, select, layout, after, size)
                except _FORMAT_ERRORS + (sqlite3.OperationalError,) as exc:
                    if isinstance(exc, sqlite3.OperationalError) and "decode" not in str(exc):
                        raise
                    unreadable = True
                    break
                if batch.rows == 0:
                    break
                if stop():
                    raise Stopped()
                with signals.deferred():
                    writer.put(batch)
                after = batch.upper
                size = max(1000, min(LARGEST_BATCH, size * BATCH_BYTES // max(1, len(batch.data))))
        except BaseException:
            writer.abandon()
            raise
        writer.close()
        if writer.refused is not None:
            # PostgreSQL refused a batch; the ones after it were not written.
            refused, error = writer.refused
            done = _bad_batch(snapshot, conn, layout, refused.after, None, on_bad, rejects, error,
                              upper=refused.upper)
        elif unreadable:
            done = _bad_batch(snapshot, conn, layout, after, size, on_bad, rejects, None)
        else:
            return
        if done is None:
            return
        progress(done.rows)
        after = done.upper


def _read(snapshot, select, layout: Layout, after, size) -> Batch | None:
    rows = snapshot.execute(select, (after, size)).fetchall()
    if not rows:
        return Batch(after, after, b"", 0, 0)
    data, checksum = layout.encode(rows)
    return Batch(after, rows[-1][0], data, len(rows), checksum)


def _bad_batch(snapshot, conn, layout: Layout, after, size, on_bad, rejects: Rejects, error, upper=None):
    """The rows after `after` (up to `upper`, or `size` of them) value by
    value: bad ones reported, the others copied (with --on-bad-value reject)."""
    table = layout.table
    raw = snapshot.raw_rows(table.name, layout.columns, after, upper, None if upper else size)
    if not raw:
        return None
    good, bad_rows = [], []
    for r in raw:
        values, types = r[1::2], r[2::2]
        bad = R.classify(layout.kinds, layout.columns, layout.limits, layout.nullable, values, types)
        if bad:
            rejects.add(table, snapshot, r[0], bad)
            bad_rows.append(r[0])
        else:
            good.append((r[0],) + R.decoded(layout.kinds, values, types))
    if not bad_rows:
        if error is not None:
            raise OperationalProblem(f"PostgreSQL refused rows of {table.name}: "
                                     f"{' '.join(str(error).split())}")
        raise OperationalProblem(f"rows of {table.name} after rowid {after} could not be read")
    if on_bad == "fail":
        raise BadValues(f"{R.shown(len(bad_rows))} rows of {table.name} have values PostgreSQL cannot take "
                        f"(each listed in {rejects.path}): fix them in the source, or continue with "
                        "--resume --on-bad-value reject to leave those rows out")
    data, checksum = layout.encode(good)
    batch = Batch(after, raw[-1][0], data, len(good), checksum, bad_rows)
    with signals.deferred(), conn.cursor() as cur:
        write(cur, layout, batch)
        conn.commit()
    return batch


def source_checksum(snapshot, layout: Layout, skip=()) -> tuple[int, int]:
    """(rows, checksum) of the table in the snapshot, leaving out the rowids in
    `skip` (rejected rows), computed exactly as the copy computes it."""
    select = snapshot.batch_sql(layout.table.name, layout.columns)
    skip = set(skip)
    after, n, total = float("-inf"), 0, 0
    while True:
        try:
            rows = snapshot.execute(select, (after, 20000)).fetchall()
            if not rows:
                return n, total
            upper = rows[-1][0]
            rows = [r for r in rows if r[0] not in skip]
            checksum = layout.encode(rows)[1]
        except _FORMAT_ERRORS + (sqlite3.OperationalError,):
            # a bad value (left out of the target too): the batch value by value
            raw = snapshot.raw_rows(layout.table.name, layout.columns, after, None, 20000)
            upper = raw[-1][0]
            rows = [(r[0],) + R.decoded(layout.kinds, r[1::2], r[2::2]) for r in raw
                    if r[0] not in skip and not R.classify(layout.kinds, layout.columns, layout.limits,
                                                           layout.nullable, r[1::2], r[2::2])]
            checksum = layout.encode(rows)[1]
        n, total, after = n + len(rows), total + checksum, upper
