"""What a bulk change does, and the rows it changed, read back batch by batch.

A `Change` describes one set-based change: UPDATE `model` SET `values`
(DELETE when `values` is None) of the rows `where` selects, and the columns it
reports of each changed row — as the row reads after the change (`columns`),
and values it had before (`Before`, such as decay's previous strength).
`db.batches.run` cuts it into key-range batches over the rows of `scan` in
`scope` (by default: the model's rows `where` selects).

Every backend hands over the same rows — those the batch's statement
changed, with their new values, in key order — but reads them its own way:

* `ReadBeside` (SQLite in WAL mode): the UPDATE or DELETE runs in a thread
  of its own (SQLite works without Python's lock) while a second, read-only
  connection reads the batch's rows, the values the change sets computed in
  their columns' place. The batch holds the write lock, so the reader's
  snapshot is the state the change starts from: they are exactly the rows it
  changes (the counts are compared; a mismatch rolls the batch back). That
  costs about what the change alone costs, where RETURNING would add its
  rows' cost to it (SQLite collects them before it hands out the first).
* `ReadFirst` (SQLite otherwise, where a reader would block the writer): the
  same SELECT on the change's own connection, just before the statement, in
  its write transaction.
* `Returning` (PostgreSQL, where another transaction may change a row
  between a SELECT and the UPDATE): the statement returns them itself.

A dry run lists `preview()`: the same SELECT over every row in scope.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import peewee as pw

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
        key = db.batch_key(self.model)
        return (self.model.select(key, *self.before_change()).where(self.condition(batch))
                .order_by(key))


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
        for row in rows:
            yield row[1:]  # without the batch key
    finally:
        rows.close()


# --------------------------------------------------------- reading them back


class ReadFirst(contextlib.AbstractContextManager):
    """Read the batch's rows on the change's own connection, then change them.
    `apply(batch)` returns them as tuples of the batch key and `change.names`."""

    def __init__(self, db, change: Change):
        self.db, self.change = db, change

    def __exit__(self, *exc) -> None:
        pass

    def apply(self, batch) -> list[tuple]:
        rows = self.db.execute(self.change.rows_query(self.db, batch)).fetchall()
        changed = self.change.statement(batch).execute()
        _check(self.change, changed, len(rows))
        return rows


READER_TIMEOUT = 5.0


class ReadBeside(ReadFirst):
    """Read the batch's rows on a read-only connection while the change runs."""

    def __init__(self, db, change: Change, path: str):
        from nitejarctl.db.checkpoints import connect

        super().__init__(db, change)
        # A WAL reader never waits for the writer; only for the moment a
        # writer resets the WAL after a checkpoint (SQLITE_BUSY otherwise).
        self._reader = connect(path, "ro", timeout=READER_TIMEOUT)

    def __exit__(self, *exc) -> None:
        self._reader.close()

    def apply(self, batch) -> list[tuple]:
        import sqlite3

        statement = _Background(self.change.statement(batch).execute)
        try:
            rows = self._read(self.change.rows_query(self.db, batch))
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                statement.join()
            if isinstance(exc, sqlite3.Error):
                raise OperationalProblem(f"reading the changed rows failed: {exc}") from None
            raise
        _check(self.change, statement.join(), len(rows))
        return rows

    def _read(self, query) -> list:
        import sqlite3

        from nitejarctl.db import text

        started = time.perf_counter()
        sql, params = query.sql()
        try:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if not text.undecodable(exc):
                    raise
                self._reader.text_factory = text.decoded  # as db.text does on the change's connection
                return self._reader.execute(sql, params).fetchall()
        finally:
            if self.db.trace is not None:
                self.db.trace(sql, params, time.perf_counter() - started)


class Returning(ReadFirst):
    """The statement returns the rows it changed (UPDATE / DELETE … RETURNING),
    sorted by the batch key in the database, with its collation, as a dry run
    lists them."""

    def apply(self, batch) -> list[tuple]:
        change, db = self.change, self.db
        key = db.batch_key(change.model).alias("nitejarctl_key")
        query = change.statement(batch)
        before = _before_columns(change)
        if before and change.values is not None:
            # The values a row had before: from the same rows, joined by key.
            pk = change.model._meta.primary_key
            old = change.model.select(pk, *before).where(change.condition(batch)).alias("before")
            query = query.from_(old).where(pk == getattr(old.c, pk.column_name))
            values = {c.name: getattr(old.c, c.name) for c in change.columns if isinstance(c, Before)}
        else:
            values = {c.name: c.column for c in change.columns if isinstance(c, Before)}
        columns = [values[c.name].alias(c.name) if isinstance(c, Before) else c for c in change.columns]
        sql, params = query.returning(key, *columns).sql()
        return db.execute_sql(f'WITH "changed" AS ({sql}) SELECT * FROM "changed" ORDER BY 1', params).fetchall()


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
