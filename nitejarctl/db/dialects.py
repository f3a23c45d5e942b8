"""SQLite and PostgreSQL as Peewee databases: every difference between the
two backends, in one place.

`Sqlite` and `Postgres` subclass Peewee's own databases, so that a
repository builds its queries with Peewee and asks the database it was given
for whatever differs: the key bulk changes are batched by, a planner hint,
the temporary schema, how a case-insensitive substring is matched, how rows
stream, how changed rows are read back, the DDL types. A database also keeps
what it learnt of the live schema (`columns`, `tables`), and reports every
statement to `trace` when one is set (-v).
"""

from __future__ import annotations

import contextlib
import os
import time

import peewee as pw
from peewee import SQL, fn

from nitejarctl.errors import SchemaProblem

STREAM_BATCH = 2000
# pg_advisory_lock keys: "nitejar" as a 56-bit integer (migrate), and the
# transaction-scoped lock that serialises compaction writes.
MIGRATION_LOCK_KEY = int.from_bytes(b"nitejar", "big")
COMPACTION_LOCK_KEY = 0x6E6A_636F_6D70


class Database:
    """What both backends share: schema introspection, tracing, streaming."""

    backend = ""
    temp_schema = ""
    # SQLite's write lock is not fair: a long bulk change must pause now and
    # then for a writer waiting on it (db.batches).
    pauses_for_writers = False
    column_types: dict[str, str] = {}
    now_sql = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trace = None  # callable(sql, params, seconds): every statement and its time (-v)
        self._columns: dict[str, list[str]] = {}
        self._tables: set[str] | None = None

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

    def tables(self) -> set[str]:
        if self._tables is None:
            self._tables = set(self.get_tables())
        return self._tables

    def columns(self, table: str) -> list[str]:
        """Live column names of `table` (empty when the table does not exist)."""
        if table not in self._columns:
            self._columns[table] = [c.name for c in self.get_columns(table)]
        return self._columns[table]

    def has_table(self, table: str) -> bool:
        return bool(self.columns(table))

    def forget_schema(self) -> None:
        """After DDL: what was learnt of the schema may be out of date."""
        self._columns.clear()
        self._tables = None

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

    @contextlib.contextmanager
    def turn(self, *, wait: float, on_wait=None):
        """Bulk changes on one database take turns where the backend needs it."""
        yield

    @contextlib.contextmanager
    def bulk_session(self):
        """Yields `committed(seconds)`, called after each batch of a bulk change
        commits; the backend may tune the connection meanwhile."""
        yield lambda seconds: None

    def serialise_writes(self) -> None:
        """Inside a write transaction: wait until no other nitejarctl writes
        summaries (compaction)."""

    def for_update(self, query):
        return query

    def analyze_temporary(self, table: str) -> None:
        """Statistics for a temporary table just filled, where the planner needs them."""

    def as_float(self, expr):
        return expr

    def unindexed(self, column):
        return column


class Sqlite(Database, pw.SqliteDatabase):
    backend = "sqlite"
    temp_schema = "temp"
    pauses_for_writers = True
    column_types = {"text": "text", "integer": "integer", "real": "real", "blob": "blob"}
    now_sql = "(unixepoch())"

    def file_path(self) -> str | None:
        """The main database's file (None for an in-memory one)."""
        rows = self.execute_sql("PRAGMA database_list").fetchall()
        return next((row[2] for row in rows if row[1] == "main"), "") or None

    def pragma(self, name: str):
        return self.execute_sql(f"PRAGMA {name}").fetchone()[0]

    def wal_file(self) -> str | None:
        """The database file when it is in WAL mode and used outside any
        transaction (where bulk changes checkpoint and read beside the change)."""
        if self.transaction_depth() > 0:
            return None
        path = self.file_path()
        if path is None or str(self.pragma("journal_mode")).lower() != "wal":
            return None
        return path

    # ------------------------------------------------------------- queries

    def batch_key(self, model):
        """The key bulk changes are batched by: the rowid (every index ends
        with it, so the scan for the next range seeks instead of rescanning)."""
        return pw.Column(model, "rowid")

    def batch_key_field(self, model, **kwargs):
        """A field for a column holding `model`'s batch keys."""
        return pw.IntegerField(**kwargs)

    def insertion_order(self, model):
        return pw.Column(model, "rowid")

    def greatest(self, *args):
        return fn.MAX(*args)

    def contains(self, column, text: str):
        """Case-insensitive literal substring match (% and _ match themselves)."""
        return _like(column, "LIKE", text)

    def byte_length(self, column):
        return fn.LENGTH(column)

    def unindexed(self, column):
        """`column` as the planner may not use an index for (unary +):
        without statistics SQLite may pick a far wider index than the one
        the query means."""
        return pw.NodeList((SQL("+"), column), glue="")

    # ------------------------------------------------------------- writes

    @contextlib.contextmanager
    def turn(self, *, wait: float, on_wait=None):
        from nitejarctl.db.batches import TurnLock

        path = self.file_path() if self.transaction_depth() == 0 else None
        if path is None:
            yield
            return
        with TurnLock(path, wait=wait, on_wait=on_wait):
            yield

    def bulk_session(self):
        from nitejarctl.db.checkpoints import bulk_session

        path = self.wal_file()
        return bulk_session(self, path) if path is not None else Database.bulk_session(self)

    def changed_rows(self, change):
        from nitejarctl.db import changed_rows

        path = self.wal_file()
        if path is not None and not change.temporary:
            return changed_rows.ReadBeside(self, change, path)
        return changed_rows.ReadFirst(self, change)

    # ----------------------------------------------------------- the server

    def version_text(self) -> str:
        return self.execute_sql("SELECT sqlite_version()").fetchone()[0]

    def file_info(self) -> dict | None:
        check = [r[0] for r in self.execute_sql("PRAGMA quick_check").fetchall()]
        info = {"journal_mode": self.pragma("journal_mode"),
                "integrity": "ok" if check == ["ok"] else "; ".join(check[:5])}
        path = self.file_path()
        if path and os.path.exists(path):
            info["file_size"] = os.path.getsize(path)
        return info

    def index_names(self) -> dict[str, str]:
        rows = self.execute_sql("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'").fetchall()
        return dict(rows)

    # -------------------------------------------------------------- schema

    @staticmethod
    def add_column_default(default):
        # SQLite cannot add a column whose default is not a constant.
        from nitejarctl.models import NOW

        return 0 if default == NOW else default

    def prepare_new(self) -> None:
        # Several processes may create the same file at once; the switch needs
        # the write lock, which busy_timeout waits for.
        self.execute_sql("PRAGMA journal_mode = WAL").fetchone()

    @contextlib.contextmanager
    def migration_lock(self, wait: float):
        yield  # BEGIN IMMEDIATE serialises the migrations themselves


class Postgres(Database, pw.PostgresqlDatabase):
    backend = "postgresql"
    temp_schema = "pg_temp"
    column_types = {"text": "text", "integer": "integer", "real": "double precision", "blob": "bytea"}
    now_sql = "(extract(epoch from now())::integer)"

    def stream_tuples(self, query, batch_size: int = STREAM_BATCH):
        """A server-side (named) cursor, so that memory stays flat."""
        sql, params = query if isinstance(query, tuple) else query.sql()
        conn = self.connection()
        in_transaction = self.transaction_depth() > 0
        if not in_transaction:
            conn.autocommit = False
        cursor = conn.cursor(name=f"nitejarctl_{id(conn)}_{time.monotonic_ns()}")
        cursor.itersize = batch_size
        started = time.perf_counter()
        try:
            cursor.execute(sql, params)
            if self.trace is not None:
                self.trace(sql, params, time.perf_counter() - started)
            first = cursor.fetchmany(batch_size)  # the description comes with the first rows
            yield tuple(d[0] for d in cursor.description)
            yield from first
            while rows := cursor.fetchmany(batch_size):
                yield from rows
        finally:
            try:
                cursor.close()
            finally:
                if not in_transaction:
                    conn.rollback()
                    conn.autocommit = True

    # ------------------------------------------------------------- queries

    def batch_key(self, model):
        return model._meta.primary_key

    def batch_key_field(self, model, **kwargs):
        return type(model._meta.primary_key)(**kwargs)

    def insertion_order(self, model):
        return pw.Column(model, "ctid")

    def greatest(self, *args):
        return fn.GREATEST(*args)

    def contains(self, column, text: str):
        return _like(column, "ILIKE", text)

    def byte_length(self, column):
        return fn.OCTET_LENGTH(column)

    def as_float(self, expr):
        # A bare parameter would come back as numeric (a Decimal).
        return pw.Cast(expr, "double precision")

    def for_update(self, query):
        return query.for_update()

    def analyze_temporary(self, table: str) -> None:
        self.execute_sql(f'ANALYZE "{table}"')

    def serialise_writes(self) -> None:
        self.execute_sql("SELECT pg_advisory_xact_lock(%s)", (COMPACTION_LOCK_KEY,))

    def changed_rows(self, change):
        from nitejarctl.db import changed_rows

        return changed_rows.Returning(self, change)

    # ----------------------------------------------------------- the server

    def version_text(self) -> str:
        return self.execute_sql("SHOW server_version").fetchone()[0]

    def file_info(self) -> dict | None:
        return None

    def index_names(self) -> dict[str, str]:
        rows = self.execute_sql(
            "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema()").fetchall()
        return dict(rows)

    # -------------------------------------------------------------- schema

    @staticmethod
    def add_column_default(default):
        return default

    def prepare_new(self) -> None:
        pass

    @contextlib.contextmanager
    def migration_lock(self, wait: float):
        """pg_advisory_lock on this connection, waiting at most `wait` seconds."""
        from nitejarctl.errors import OperationalProblem

        deadline = time.monotonic() + wait
        while not self.execute_sql("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,)).fetchone()[0]:
            if time.monotonic() >= deadline:
                raise OperationalProblem(
                    f"another nitejarctl migrate holds the migration lock (waited {wait:.0f}s)")
            time.sleep(0.1)
        try:
            yield
        finally:
            self.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


BACKENDS = {"sqlite": Sqlite, "postgresql": Postgres}


def _like(column, op: str, text: str):
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return pw.NodeList((column, SQL(op), f"%{escaped}%", SQL("ESCAPE '\\'")))
