"""Reading beside the change's own connection (SQLite in WAL mode).

A `SideReader` owns a read-only connection of its own and a thread of its
own that runs the queries it is given one after the other, each in a read
transaction of its own, and hands their rows over a chunk at a time (at most
`AHEAD` chunks of a query wait to be taken). SQLite reads without Python's
lock, so the caller works on one query's rows — and writes on its own
connection — while the next query is read. A WAL reader never blocks a writer
and is never blocked by one, and no cursor stays open on the writing
connection (which would keep its read snapshot across its own writes).

Text that is not valid UTF-8 is read as db.text does on the change's
connection: the query is read again from its start, tolerantly, in the same
read transaction (so the same rows), after the rows already handed out.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time

from nitejarctl.db import text
from nitejarctl.db.checkpoints import connect

CHUNK = 500  # rows handed over at a time
AHEAD = 2  # chunks of one query that may wait to be taken
READER_TIMEOUT = 5.0  # a WAL reader waits only while a writer resets the WAL after a checkpoint
_END = object()


class Rows:
    """One query's rows as the reader hands them over: iterate for chunks
    (lists of tuples); `close()` when they are no longer wanted."""

    def __init__(self, sql: str, params):
        self.sql, self.params = sql, params
        self.chunks: queue.Queue = queue.Queue(maxsize=AHEAD)
        self.cancelled = threading.Event()

    def __iter__(self):
        while True:
            item = self.chunks.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.cancelled.set()
        while True:  # unblock the reader if it waits to hand over a chunk
            try:
                self.chunks.get_nowait()
            except queue.Empty:
                return


class SideReader:
    def __init__(self, path: str, trace=None, on_tolerant=None):
        self._conn = connect(path, "ro", timeout=READER_TIMEOUT)
        try:  # a WAL reader needs the -shm file: where it cannot have it, there is no reader beside
            self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            self._conn.close()
            raise
        self._trace = trace
        self._on_tolerant = on_tolerant  # called (from the reader's thread) when it reads tolerantly
        self._requests: queue.Queue = queue.Queue()
        self._outstanding: list[Rows] = []
        self._thread = threading.Thread(target=self._run, name="reader", daemon=True)
        self._thread.start()

    def read(self, query) -> Rows:
        """Queue `query` (a Peewee query): its rows, once the queries before it are read."""
        sql, params = query.sql()
        rows = Rows(sql, params)
        self._outstanding = [r for r in self._outstanding if not r.cancelled.is_set()] + [rows]
        self._requests.put(rows)
        return rows

    def close(self) -> None:
        for rows in self._outstanding:  # nobody will take them now
            rows.close()
        self._requests.put(None)
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while (rows := self._requests.get()) is not None:
            if rows.cancelled.is_set():
                continue
            try:
                self._read(rows)
            except Exception as exc:  # raised in the taker's thread (a database error as any other)
                self._put(rows, exc)
            self._put(rows, _END)

    def _read(self, rows: Rows) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            handed = 0
            cursor = None
            while not rows.cancelled.is_set():
                try:
                    if cursor is None:
                        cursor = self._execute(rows)
                    chunk = cursor.fetchmany(CHUNK)
                except sqlite3.OperationalError as exc:
                    if not text.undecodable(exc) or conn.text_factory is text.decoded:
                        raise
                    conn.text_factory = text.decoded
                    if self._on_tolerant is not None:
                        self._on_tolerant()
                    cursor = self._execute(rows)
                    text.skip_rows(cursor, handed, CHUNK)
                    continue
                if not chunk:
                    break
                handed += len(chunk)
                self._put(rows, chunk)
            if cursor is not None:
                cursor.close()
        finally:
            conn.execute("COMMIT")  # the snapshot goes: checkpoints may pass it

    def _execute(self, rows: Rows):
        started = time.perf_counter()
        try:
            return self._conn.execute(rows.sql, rows.params)
        finally:
            if self._trace is not None:
                self._trace(rows.sql, rows.params, time.perf_counter() - started)

    @staticmethod
    def _put(rows: Rows, item) -> None:
        while not rows.cancelled.is_set():
            try:
                rows.chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
