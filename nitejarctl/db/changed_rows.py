"""What a bulk change does, and the rows it changed, read back batch by batch.

A `Change` describes one set-based change: UPDATE `model` SET `values`
(DELETE when `values` is None) of the rows `where` selects, and the columns it
reports of each changed row — as the row reads after the change (`columns`),
and values it had before (`Before`, such as decay's previous strength).
`db.batches.run` cuts it into batches over the rows of `scan` in `scope` (by
default: the model's rows `where` selects).

Every backend hands over the same rows — those the batch's statement
changed, with their new values — but reads them its own way:

* `ReadAfter` (SQLite in WAL mode): a second, read-only connection begins
  reading while the batch holds the write lock, which pins its snapshot to
  the state the batch's statement starts from; it counts the batch's rows
  there while the statement runs (the counts are compared; a mismatch rolls
  the batch back), and reads them, the values the change sets computed in
  their columns' place, once the batch has committed — after the lock is
  released, beside the next batches. So reading the rows costs the write
  lock nothing, and nitejar's writers no wait.
* `ReadFirst` (SQLite otherwise, where a reader would block the writer, and
  changes that read a temporary table, which only their own connection
  sees): the same SELECT on the change's own connection, just before the
  statement, in its write transaction.
* `Returning` (PostgreSQL, where another transaction may change a row
  between a SELECT and the UPDATE): the statement returns them itself
  (UPDATE / DELETE … RETURNING), read from the driver once committed.

Without a sink (`-o count`) none of them runs: the batch is the statement.
A dry run lists `preview()`: the same SELECT over every row in scope.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import peewee as pw

from nitejarctl import timings
from nitejarctl.errors import OperationalProblem


@dataclass(frozen=True)
class Before:
    """A reported column: `column`'s value before the change, named `name`."""

    column: object
    name: str


@dataclass
class Change:
    model: type
    where: object = None
    values: dict | None = None  # field -> constant or expression of the row before the change
    columns: Sequence = ()  # fields, aliased expressions and Before(...)s, in reporting order
    scan: type | None = None  # the table whose keys the batches are cut from [model]
    scope: object = None  # which of its rows [where]
    # the rows a batch changes, given the batch's key range over `scan`
    # (None: every batch) [where, within that range]
    within: Callable | None = None
    # reads a temporary table: its rows can only be read on the change's own connection
    temporary: bool = False
    names: tuple = field(init=False)

    def __post_init__(self):
        if self.scan is None:
            self.scan = self.model
        if self.scope is None:
            self.scope = self.where
        self.names = tuple(_name(c) for c in self.columns)

    def condition(self, batch=None):
        if self.within is not None:
            return self.within(batch)
        return self.where if batch is None else self.where & batch

    def statement(self, batch=None):
        query = self.model.delete() if self.values is None else self.model.update(self.values)
        return query.where(self.condition(batch))

    def before_change(self) -> list:
        """The reported columns as read from the row before the change: each
        set column replaced by the value the change gives it."""
        new = {f.name: v for f, v in (self.values or {}).items()}
        selected = []
        for column in self.columns:
            if isinstance(column, Before):
                selected.append(column.column.alias(column.name))
            elif isinstance(column, pw.Field) and column.name in new:
                value = new[column.name]
                value = value if isinstance(value, pw.Node) else pw.Value(value)
                selected.append(value.alias(column.name))
            else:
                selected.append(column)
        return selected

    def rows_query(self, db, batch=None):
        """The rows (as the change leaves them) in the order it visits them."""
        return (self.model.select(*self.before_change()).where(self.condition(batch))
                .order_by(db.batch_key(self.model)))


def scalar(query, name: str):
    """A scalar subquery as a reported column named `name` (inside a
    COALESCE: a bare subquery in RETURNING gets an alias of Peewee's own,
    which another would follow)."""
    return pw.fn.COALESCE(query, None).alias(name)


def _name(column) -> str:
    if isinstance(column, Before):
        return column.name
    if isinstance(column, pw.Field):
        return column.name
    if isinstance(column, pw.Alias):
        return column._alias
    raise TypeError(f"a reported column needs a name: {column!r}")


def preview_tuples(db, change: Change):
    """The rows the change would change (tuples of `change.names`), in the
    order it changes them, with the values it would give them."""
    rows = db.stream_tuples(change.rows_query(db))
    try:
        next(rows)  # the column names
        yield from rows
    finally:
        rows.close()


# --------------------------------------------------------- reading them back

CHUNK = 5000  # rows handed over at a time


def _chunks(rows: list):
    for start in range(0, len(rows), CHUNK):
        yield rows[start:start + CHUNK]


class ReadFirst(contextlib.AbstractContextManager):
    """Read the batch's rows on the change's own connection, then change them.
    `apply(batch)`, in the batch's transaction, returns how many rows changed
    and a callable yielding them (tuples of `change.names`), a chunk at a
    time, once the batch has committed."""

    def __init__(self, db, change: Change):
        self.db, self.change = db, change

    def __exit__(self, *exc) -> None:
        pass

    def apply(self, batch):
        rows = self.db.execute(self.change.rows_query(self.db, batch)).fetchall()
        changed = self.change.statement(batch).execute()
        _check(self.change, changed, len(rows))
        return changed, lambda: _chunks(rows)


READER_TIMEOUT = 5.0
READERS = 4  # batches whose rows may be waiting to be read: the delivery queue's, plus one each side


class ReadAfter(ReadFirst):
    """Read the batch's rows from a snapshot pinned while it held the write
    lock, after its commit (see the module's docstring)."""

    def __init__(self, db, change: Change, path: str):
        import queue

        super().__init__(db, change)
        self._path = path
        self._free = queue.Queue()
        self._open: list = []

    def __exit__(self, *exc) -> None:
        for reader in self._open:
            reader.close()

    def _reader(self):
        from nitejarctl.db.checkpoints import connect

        if self._free.empty() and len(self._open) < READERS:
            # A WAL reader never waits for the writer; only for the moment a
            # writer resets the WAL after a checkpoint (SQLITE_BUSY otherwise).
            self._open.append(connect(self._path, "ro", timeout=READER_TIMEOUT))
            return self._open[-1]
        return self._free.get()

    def apply(self, batch):
        change = self.change
        reader = self._reader()
        try:
            reader.execute("BEGIN")
            statement = _Background(change.statement(batch).execute)
            try:
                # The first read pins the snapshot: the batch holds the write lock, so
                # nobody can commit before the statement does.
                count = change.model.select(pw.fn.COUNT(pw.SQL("*"))).where(change.condition(batch))
                read = self._execute(reader, count).fetchone()[0]
            except BaseException as exc:
                with contextlib.suppress(BaseException):
                    statement.join()
                raise _reading_failed(exc) from None
            changed = statement.join()
            _check(change, changed, read)
        except BaseException:
            self._release(reader)
            raise
        query = change.rows_query(self.db, batch)
        return changed, lambda: self._rows(reader, query)

    def _rows(self, reader, query):
        import sqlite3

        from nitejarctl.db import text

        given = 0
        try:
            cursor = self._execute(reader, query)
            while True:
                try:
                    with timings.measured("rows"):
                        rows = cursor.fetchmany(CHUNK)
                except sqlite3.OperationalError as exc:
                    if not text.undecodable(exc) or reader.text_factory is text.decoded:
                        raise
                    # As db.text does on the change's connection: read again from the
                    # same snapshot, tolerantly, after the rows already given.
                    reader.text_factory = text.decoded
                    cursor = self._execute(reader, query)
                    text.skip_rows(cursor, given, CHUNK)
                    continue
                if not rows:
                    break
                given += len(rows)
                yield rows
        except Exception as exc:
            raise _reading_failed(exc) from None
        finally:
            self._release(reader)

    def _release(self, reader) -> None:
        with contextlib.suppress(Exception):
            reader.execute("COMMIT")  # the snapshot goes: checkpoints may pass it
        self._free.put(reader)

    def _execute(self, reader, query):
        started = time.perf_counter()
        sql, params = query.sql()
        try:
            return reader.execute(sql, params)
        finally:
            if self.db.trace is not None:
                self.db.trace(sql, params, time.perf_counter() - started)


def _reading_failed(exc: BaseException) -> BaseException:
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        return OperationalProblem(f"reading the changed rows failed: {exc}")
    return exc


class Returning(ReadFirst):
    """The statement returns the rows it changed (UPDATE / DELETE … RETURNING,
    in the order it visits them: no sort); they are fetched from the driver
    after the commit."""

    def apply(self, batch):
        change, db = self.change, self.db
        query = change.statement(batch)
        before = _before_columns(change)
        if before and change.values is not None:
            # The values a row had before: from the same rows, joined by the batch key.
            key = db.batch_key(change.model)
            old = (change.model.select(key.alias("nitejarctl_key"), *before)
                   .where(change.condition(batch)).alias("before"))
            query = query.from_(old).where(key == old.c.nitejarctl_key)
            values = {c.name: getattr(old.c, c.name) for c in change.columns if isinstance(c, Before)}
        else:
            values = {c.name: c.column for c in change.columns if isinstance(c, Before)}
        columns = [values[c.name].alias(c.name) if isinstance(c, Before) else c for c in change.columns]
        cursor = db.execute(query.returning(*columns))
        return cursor.rowcount, lambda: _fetched(cursor)


def _fetched(cursor):
    try:
        while True:
            with timings.measured("rows"):
                rows = cursor.fetchmany(CHUNK)
            if not rows:
                break
            yield rows
    finally:
        cursor.close()


def _before_columns(change: Change) -> list:
    return [c.column.alias(c.name) for c in change.columns if isinstance(c, Before)]


def _check(change: Change, changed: int, read: int) -> None:
    if changed != read:
        raise OperationalProblem(f"{change.model._meta.table_name}: a batch changed {changed} rows where "
                                 f"{read} were read; it was rolled back")


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
