"""PostgreSQL as a Peewee database: what differs from SQLite (db.dialects)."""

from __future__ import annotations

import contextlib
import time

import peewee as pw
from peewee import fn

from nitejarctl.db.base import STREAM_BATCH, Database, like

# pg_advisory_lock keys: "nitejar" as a 56-bit integer (migrate), and the
# transaction-scoped lock that serialises compaction writes.
MIGRATION_LOCK_KEY = int.from_bytes(b"nitejar", "big")
COMPACTION_LOCK_KEY = 0x6E6A_636F_6D70


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

    def read_only_rows(self, pieces, params, *, declare: bool = True):
        """`nitejarctl query` (db.read_only): the column names, then the rows,
        in a transaction that is READ ONLY (the server refuses every write),
        rolled back at the end; through a server-side cursor unless `declare`
        is false (EXPLAIN, which a cursor cannot be declared for)."""
        sql = "%s".join(piece.replace("%", "%%") for piece in pieces)
        conn = self.connection()
        conn.autocommit = False
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET TRANSACTION READ ONLY")
            name = f"nitejarctl_query_{time.monotonic_ns()}" if declare else None
            with conn.cursor(name=name) as cursor:
                cursor.itersize = STREAM_BATCH
                started = time.perf_counter()
                cursor.execute(sql, params)
                if self.trace is not None:
                    self.trace(sql, params, time.perf_counter() - started)
                first = cursor.fetchmany(STREAM_BATCH)  # a named cursor's description comes with its rows
                yield tuple(d[0] for d in cursor.description)
                yield from first
                while rows := cursor.fetchmany(STREAM_BATCH):
                    yield from rows
        finally:
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
        return like(column, "ILIKE", text)

    def code_point_order(self, column):
        """`column` compared code point by code point (the "C" collation; an index
        of the database's own collation serves it when that is C)."""
        return pw.NodeList((column, pw.SQL('COLLATE "C"')))

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

    # -------------------------------------------------------- foreign keys

    def read_foreign_keys(self) -> list:
        from nitejarctl.db.foreign_keys import PG_ACTIONS, ForeignKey

        def columns(relation: str, keys: str) -> str:
            return (f"array(SELECT a.attname::text FROM unnest(c.{keys}) WITH ORDINALITY AS k(n, i) "
                    f"JOIN pg_attribute AS a ON a.attrelid = c.{relation} AND a.attnum = k.n ORDER BY k.i)")

        rows = self.execute_sql(
            f"SELECT child.relname::text, {columns('conrelid', 'conkey')}, parent.relname::text, "
            f"{columns('confrelid', 'confkey')}, c.confdeltype::text, c.conname::text "
            "FROM pg_constraint AS c JOIN pg_class AS child ON child.oid = c.conrelid "
            "JOIN pg_class AS parent ON parent.oid = c.confrelid "
            "WHERE c.contype = 'f' AND child.relnamespace = current_schema()::regnamespace "
            "AND parent.relnamespace = current_schema()::regnamespace ORDER BY 1, 6").fetchall()
        return [ForeignKey(child, tuple(cols), parent, tuple(parents), PG_ACTIONS.get(action, "NO ACTION"), name)
                for child, cols, parent, parents, action, name in rows]

    def listed_rows(self, name: str, source, condition):
        """The keys of the rows of `source` (a table) in `condition` — its
        primary key, else its ctid —, numbered in key order in temporary table
        `name` (db.foreign_keys.Listed): a batch is a range of those numbers."""
        import peewee as pw

        from nitejarctl.db import foreign_keys as fks

        drop = fks.drop_temporary(self, name)
        drop()
        keys = self.get_primary_keys(source.__name__) or ["ctid"]
        listed_names = [f"c{i}" for i in range(len(keys))]
        key_columns = [pw.Column(source, k) for k in keys]
        number = pw.fn.ROW_NUMBER().over(order_by=key_columns)
        select = source.select(number.alias("k"), *(c.alias(n) for c, n in zip(key_columns, listed_names)))
        sql, params = select.where(condition).sql()
        count = self.execute_sql(f'CREATE TEMPORARY TABLE "{name}" AS {sql}', params).rowcount
        self.execute_sql(f'ALTER TABLE pg_temp."{name}" ADD PRIMARY KEY (k)')
        self.analyze_temporary(name)
        model = fks.temporary_model(self, name, pw.BigIntegerField(primary_key=True), listed_names)

        def within(target, batch):
            listed = model.select(*(getattr(model, n) for n in listed_names))
            if batch is not None:
                listed = listed.where(batch)
            own = [pw.Column(target, k) for k in keys]
            return (own[0] if len(own) == 1 else pw.Tuple(*own)).in_(listed)

        return fks.Listed(model, count, within, drop)
