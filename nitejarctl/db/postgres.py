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


class RowAddressField(pw.Field):
    field_type = "TID"


def _qualified(model) -> str:
    meta = model._meta
    name = '"' + meta.table_name.replace('"', '""') + '"'
    return f'"{meta.schema}".{name}' if meta.schema else name


class Postgres(Database, pw.PostgresqlDatabase):
    backend = "postgresql"
    temp_schema = "pg_temp"
    column_types = {"text": "text", "integer": "integer", "real": "double precision", "blob": "bytea"}
    now_sql = "(extract(epoch from now())::integer)"
    # The current schema's tables and columns from pg_catalog in one query
    # (information_schema would take one query per table, and is slow).
    SCHEMA_SQL = ("SELECT c.relname, a.attname FROM pg_catalog.pg_class AS c "
                  "JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
                  "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') "
                  "ORDER BY c.relname, a.attnum")

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

    @property
    def by_pages(self) -> bool:
        """Whether bulk changes go by page ranges (TID Range Scans and max(tid): 14 and later)."""
        return self.server_version >= 140000

    def batch_key(self, model):
        """The key bulk changes are batched by: the row's physical address
        (ctid), whatever the primary key looks like (db.ranges)."""
        if self.by_pages:
            return pw.Column(model, "ctid")
        return model._meta.primary_key

    def batch_key_field(self, model, **kwargs):
        """A field for a column holding `model`'s batch keys."""
        if self.by_pages:
            return RowAddressField(**kwargs)
        return type(model._meta.primary_key)(**kwargs)

    def rows_listed(self, model, listing, key, pairs, batch):
        """As Database.rows_listed, reading the rows by address (`ctid =
        ANY(ARRAY(…))`: a Tid Scan, where an IN would hash-join the whole
        table) and checking the pairs for each."""
        if not self.by_pages:
            return Database.rows_listed(self, model, listing, key, pairs, batch)
        address = self.batch_key(model)
        same = listing.alias("same")
        agree = getattr(same, key.name) == address
        for expr, field in pairs:
            agree &= expr == getattr(same, field.name)
        return (pw.Expression(address, "=", fn.ANY(fn.ARRAY(listing.select(key).where(batch))))
                & fn.EXISTS(same.select(pw.SQL("1")).where(agree)))

    def table_pages(self, model) -> int:
        """How many pages `model`'s table has now."""
        return self.execute_sql("SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int",
                                (_qualified(model),)).fetchone()[0]

    def estimated_rows(self, query) -> float:
        """The planner's estimate of how many rows `query` returns (EXPLAIN)."""
        sql, params = query.sql()
        plan = self.execute_sql("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()[0]
        if isinstance(plan, str):
            import json

            plan = json.loads(plan)
        return float(plan[0]["Plan"]["Plan Rows"])

    @staticmethod
    def row_address(page: int, offset: int) -> str:
        return f"({page},{offset})"

    @staticmethod
    def parse_row_address(text: str) -> tuple[int, int]:
        page, offset = str(text).strip("()").split(",")
        return int(page), int(offset)

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

    def update_in_order(self, model, condition, values: dict) -> int:
        """In the rows' physical order, the order each batch of a bulk change (a
        TID Range Scan) locks them in: the rows are found and locked once (SELECT
        … ORDER BY ctid FOR UPDATE), then changed by address (a Tid Scan; a row
        locked by this transaction keeps its address)."""
        key = self.batch_key(model)
        locked = [row[0] for row in self.execute(model.select(key).where(condition).order_by(key).for_update())]
        if not locked:
            return 0
        return model.update(values() if callable(values) else values).where(key.in_(locked)).execute()

    def analyze_temporary(self, table: str) -> None:
        self.execute_sql(f'ANALYZE "{table}"')

    def serialise_writes(self) -> None:
        self.execute_sql("SELECT pg_advisory_xact_lock(%s)", (COMPACTION_LOCK_KEY,))

    def changed_rows(self, change, text_columns=None):
        """The statement returns the rows; as TSV text the server writes (COPY)
        where the sink takes `text_columns` as lines and those are plain text
        or integer columns (db.copied_rows)."""
        from nitejarctl.db import changed_rows

        if text_columns:
            from nitejarctl.db import copied_rows

            columns = copied_rows.columns_for(self, change, text_columns)
            if columns is not None:
                return copied_rows.CopiedText(self, change, columns)
        return changed_rows.Returning(self, change)

    def live_column_types(self, table: str) -> dict[str, str]:
        """{column: its type as PostgreSQL writes it} of a table of the current schema."""
        rows = self.execute_sql(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute AS a "
            "JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid "
            "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace "
            "AND a.attnum > 0 AND NOT a.attisdropped", (table,)).fetchall()
        return dict(rows)

    def batching(self):
        """Batches of about 0.5 s, the first a small one (some changes do 2,500
        rows a second), each next one as large as the last one's time says, up
        to three times as large: PostgreSQL's row locks stall only a writer
        touching one of the batch's rows, for that long, with room for a batch
        that takes longer than the last one did (a denser range, a busier
        server) well within 2 s; and each commit of a large change waits for
        its WAL to reach the disk (tens of milliseconds), so the size gets to
        its aim in a few batches."""
        from nitejarctl.db.batches import Batching

        return Batching(first=5_000, smallest=1_000, largest=200_000, seconds=0.5, growth=3.0, few=10_000)

    def batch_ranges(self, change, batching):
        if not self.by_pages:
            return Database.batch_ranges(self, change, batching)
        from nitejarctl.db.ranges import PageRanges

        return PageRanges(self, change, batching)

    # ----------------------------------------------------------- the server

    def version_text(self) -> str:
        return self.execute_sql("SHOW server_version").fetchone()[0]

    def file_info(self) -> dict | None:
        return None

    def index_names(self) -> dict[str, str]:
        rows = self.execute_sql(
            "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema()").fetchall()
        return dict(rows)

    def storage(self) -> dict:
        """The database's bytes (the server's WAL and free space are not one
        database's to report)."""
        size = self.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0]
        return {"bytes": size, "wal_bytes": None, "reclaimable_bytes": None}

    def table_bytes(self) -> dict[str, int]:
        """Bytes of each table of the current schema with its indexes and TOAST, largest first."""
        rows = self.execute_sql(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 2 DESC, 1").fetchall()
        return dict(rows)

    # ------------------------------------------------------------ lifecycle

    vacuum_locks_writers = False  # VACUUM (not FULL) lets every write go on

    def backups(self):
        """Backups by pg_dump and pg_restore (db.pg_tools)."""
        from nitejarctl.db.pg_tools import PgBackups

        return PgBackups(self)

    def vacuum_steps(self) -> list[tuple[str, str]]:
        tables = self.execute_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1").fetchall()
        return [(t, 'VACUUM (ANALYZE) "' + t.replace('"', '""') + '"') for (t,) in tables]

    def after_vacuum(self) -> bool:
        return True

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
