"""What both backends share (`Database`, the base of db.sqlite.Sqlite and
db.postgres.Postgres): schema introspection, tracing, streaming, and the
defaults of the hooks a backend may override (see db.dialects)."""

from __future__ import annotations

import contextlib
import time

import peewee as pw
from peewee import SQL

from nitejarctl.errors import SchemaProblem

STREAM_BATCH = 2000


class Database:
    """What both backends share: schema introspection, tracing, streaming."""

    backend = ""
    temp_schema = ""
    # SQLite's write lock is not fair: a long bulk change must pause now and
    # then for a writer waiting on it (db.batches).
    pauses_for_writers = False
    # Batches are cut by key scans that walk an index of the scope in key
    # order (SQLite: every index ends with the rowid), so a scope that is one
    # range of an index is cut without sorting (db.ranges).
    key_scans_walk_an_index = False
    column_types: dict[str, str] = {}
    now_sql = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trace = None  # callable(sql, params, seconds): every statement and its time (-v)
        self.notify = None  # callable(line): a note for the operator (stderr), once per matter
        self._schema: dict[str, list[str]] | None = None  # table -> live column names
        self._columns: dict[str, list] = {}  # table -> peewee's ColumnMetadata (nullable())
        self._foreign_keys: list | None = None

    def execute_sql(self, sql, params=None):
        trace = self.trace
        if trace is None:
            return super().execute_sql(sql, params)
        started = time.perf_counter()
        try:
            return super().execute_sql(sql, params)
        finally:
            trace(sql, params, time.perf_counter() - started)

    # ------------------------------------------------------------ the schema

    def live_schema(self) -> dict[str, list[str]]:
        """Every table of the database and its columns, in order: one query
        (each backend reads its own catalogue, `SCHEMA_SQL`: rows of table
        and column)."""
        schema: dict[str, list[str]] = {}
        for table, column in self.execute_sql(self.SCHEMA_SQL).fetchall():
            schema.setdefault(table, []).append(column)
        return schema

    def _live(self) -> dict[str, list[str]]:
        # Read once per connection: a command asks about the same few tables again and again.
        if self._schema is None:
            self._schema = self.live_schema()
        return self._schema

    def tables(self) -> set[str]:
        return set(self._live())

    def columns(self, table: str) -> list[str]:
        """Live column names of `table` (empty when the table does not exist)."""
        return list(self._live().get(table, ()))

    def nullable(self, table: str, column: str) -> bool:
        """Whether the live `table.column` may hold NULL."""
        return any(c.name == column and c.null for c in self._column_info(table))

    def _column_info(self, table: str) -> list:
        if table not in self._columns:
            self._columns[table] = list(self.get_columns(table))
        return self._columns[table]

    def has_table(self, table: str) -> bool:
        return table in self._live()

    def file_path(self) -> str | None:
        """The database's file, for a backend that keeps one."""
        return None

    def forget_schema(self) -> None:
        """After DDL: what was learnt of the schema may be out of date."""
        self._schema = None
        self._columns.clear()
        self._foreign_keys = None

    def foreign_keys(self) -> list:
        """Every foreign key the schema declares (db.foreign_keys.ForeignKey),
        from the database's own catalogue, read once."""
        if self._foreign_keys is None:
            self._foreign_keys = self.read_foreign_keys()
        return self._foreign_keys

    def read_foreign_keys(self) -> list:
        raise NotImplementedError

    def dangling_references(self) -> dict:
        """{ForeignKey: rows} of the keys whose value no parent row has (only
        keys with such rows): an anti-join over each declared key."""
        found = {}
        for fk in self.foreign_keys():
            n = self.count_dangling(fk)
            if n:
                found[fk] = n
        return found

    def count_dangling(self, fk) -> int:
        from nitejarctl.db import foreign_keys as fks

        child = fks.table(self, fk.child)
        return fks.count(self, child, self.dangling(fk, child))

    def dangling(self, fk, child):
        """The rows of `child` (a table) whose key `fk` points nowhere (every
        row with a value, when the parent table itself is gone)."""
        from nitejarctl.db import foreign_keys as fks

        if not self.has_table(fk.parent):
            condition = None
            for column in fk.child_columns:
                present = getattr(child.c, column).is_null(False)
                condition = present if condition is None else condition & present
            return condition
        return fks.dangling(self, fk, child)

    @contextlib.contextmanager
    def cascades_by_hand(self):
        """While a change does itself what the foreign keys say (maintenance.cascade):
        where the database would check or cascade again what it already did,
        it does not."""
        yield

    def require_table(self, table: str) -> None:
        """Fail with one line when the database lacks a table a command needs."""
        if self.columns(table):
            return
        hint = ""
        if "kysely_migration" in self.tables():
            hint = " (this database is managed by nitejar's migrator, which does not create it)"
        elif not self.tables() - {"sqlite_sequence"}:
            hint = " (the database is empty: run 'nitejarctl migrate')"
        raise SchemaProblem(f"this database has no {table!r} table{hint}")

    def present_fields(self, model) -> list:
        """The model's fields that the live table has: never select a missing column."""
        table = model._meta.table_name
        self.require_table(table)
        live = set(self.columns(table))
        return [f for f in model._meta.sorted_fields if f.column_name in live]

    # --------------------------------------------------------------- reading

    def stream(self, query, batch_size: int = STREAM_BATCH):
        """Yield result rows as dicts without loading them all into memory.
        `query` is a Peewee query or a (sql, params) pair."""
        rows = self.stream_tuples(query, batch_size)
        try:
            names = next(rows)
            for row in rows:
                yield dict(zip(names, row))
        finally:
            rows.close()

    def stream_tuples(self, query, batch_size: int = STREAM_BATCH):
        """Like stream, as tuples; the first item is the tuple of column names."""
        sql, params = query if isinstance(query, tuple) else query.sql()
        cursor = self.execute_sql(sql, params)
        try:
            yield tuple(d[0] for d in cursor.description)
            while rows := cursor.fetchmany(batch_size):
                yield from rows
        finally:
            cursor.close()

    # ---------------------------------------------------------------- writes

    def batching(self):
        """How bulk changes are batched here by default (a db.batches.Batching)."""
        from nitejarctl.db.batches import Batching

        return Batching()

    def batch_ranges(self, change, batching):
        """How `change` is cut into batches (db.ranges)."""
        from nitejarctl.db.ranges import KeyRanges

        return KeyRanges(change, self.batch_key(change.scan), batching)

    @contextlib.contextmanager
    def turn(self, *, wait: float, on_wait=None):
        """Bulk changes on one database take turns where the backend needs it."""
        yield

    @contextlib.contextmanager
    def bulk_session(self, *, cache: bool = True):
        """Yields a session whose `committed(seconds)` is called after each
        batch of a bulk change commits and `between(settle)` before the next
        one begins; the backend may tune the connection meanwhile (without
        `cache`, leaving its page cache as it is)."""
        yield BulkSession()

    def serialise_writes(self) -> None:
        """Inside a write transaction: wait until no other nitejarctl writes
        summaries (compaction)."""

    def rows_listed(self, model, listing, key, pairs, batch):
        """`model`'s rows whose batch key the `listing` table's `key` field
        holds (of its rows in `batch`), where each (model's expression, listing's
        field) of `pairs` agree: the listing still describes the row."""
        import peewee as pw

        listed = listing.select(key, *[field for _, field in pairs]).where(batch)
        return pw.Tuple(self.batch_key(model), *[expr for expr, _ in pairs]).in_(listed)

    def side_reader(self):
        """A db.side_reader.SideReader reading beside this connection while it
        writes, where the backend allows it; else None (it reads itself)."""
        return None

    def for_update(self, query):
        return query

    def update_in_order(self, model, condition, values: dict) -> int:
        """Inside a write transaction: UPDATE `model` SET `values` of the rows
        `condition` selects, locking them in the order bulk changes lock them
        (where rows are locked one by one), so that two changes never wait for
        each other crosswise. `values` may be a function giving them, called
        once the rows are locked (values that depend on when that was).
        Returns how many rows changed."""
        return model.update(values() if callable(values) else values).where(condition).execute()

    def analyze_temporary(self, table: str) -> None:
        """Statistics for a temporary table just filled, where the planner needs them."""

    def as_float(self, expr):
        return expr

    def numeric(self, column):
        """`column` holds a number (where a column may hold anything: SQLite)."""
        return SQL("1 = 1")

    def unindexed(self, column):
        return column


def like(column, op: str, text: str):
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return pw.NodeList((column, SQL(op), f"%{escaped}%", SQL("ESCAPE '\\'")))


class BulkSession:
    """What a bulk change tells its database between batches (see
    Database.bulk_session); here, nothing is done with it."""

    def committed(self, seconds: float) -> None:
        """A batch whose transaction took `seconds` has committed."""

    def between(self, settle=None) -> None:
        """The next batch is about to begin; `settle()`, if given, waits until
        the rows of the batches so far have been read."""
