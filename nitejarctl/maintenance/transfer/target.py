"""The PostgreSQL side of a transfer: its catalog, the columns each table
takes, the keys and indexes set aside while the data arrives, and the
progress table that makes a transfer resumable.

Progress lives in the target (`nitejarctl_transfer`): each batch's COPY and
the row that records it commit together, and so does each key, index or
foreign key built afterwards with the row that says it is built, so that a
transfer killed at any moment knows exactly what it has done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nitejarctl.errors import OperationalProblem
from nitejarctl.maintenance.transfer import rows as R
from nitejarctl.maintenance.transfer.rows import quote

PROGRESS = "nitejarctl_transfer"


@dataclass
class Structure:
    """A primary key, unique constraint, index or foreign key: built after the data."""

    table: str
    kind: str  # "key", "index" or "fk"
    name: str
    statement: str


@dataclass
class TargetColumn:
    name: str
    kind: str  # rows.INT, FLOAT, FLOAT4, TEXT, BYTEA
    limit: int | None  # integer bound or varchar length
    type_name: str
    nullable: bool
    has_default: bool


_KINDS = {"smallint": R.INT, "integer": R.INT, "bigint": R.INT, "double precision": R.FLOAT,
          "real": R.FLOAT4, "text": R.TEXT, "character varying": R.TEXT, "bytea": R.BYTEA}


def tables(conn) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {r[0] for r in cur.fetchall()}


def columns(conn, table: str) -> dict[str, TargetColumn]:
    with conn.cursor() as cur:
        cur.execute("SELECT column_name, data_type, character_maximum_length, is_nullable, "
                    "column_default IS NOT NULL OR is_identity = 'YES' FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
                    (table,))
        out = {}
        for name, type_name, length, nullable, has_default in cur.fetchall():
            kind = _KINDS.get(type_name)
            limit = R.INT_RANGES.get(type_name) if kind == R.INT else length
            out[name] = TargetColumn(name, kind, limit, type_name, nullable == "YES", has_default)
        return out


def has_rows(conn, table: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM {quote(table)})")
        return cur.fetchone()[0]


_COMPATIBLE = {"integer": {R.INT, R.FLOAT, R.FLOAT4}, "real": {R.FLOAT, R.FLOAT4},
               "text": {R.TEXT}, "blob": {R.BYTEA}}


def check_columns(source_table, target_columns: dict[str, TargetColumn]) -> list[str]:
    """Why the target's table cannot take the source's rows (empty: it can)."""
    problems = []
    for column in source_table.columns:
        found = target_columns.get(column.name)
        if found is None:
            problems.append(f"{source_table.name}.{column.name} is missing in the target")
        elif found.kind is None:
            problems.append(f"{source_table.name}.{column.name} is {found.type_name} in the target, "
                            "which transfer does not fill")
        elif found.kind not in _COMPATIBLE.get(column.affinity, set()):
            problems.append(f"{source_table.name}.{column.name} is {found.type_name} in the target but "
                            f"{column.declared or 'untyped'} in the source")
    names = {c.name for c in source_table.columns}
    for name, found in target_columns.items():
        if name not in names and not found.nullable and not found.has_default:
            problems.append(f"{source_table.name}.{name} (NOT NULL, no default) has no source column")
    return problems


# ------------------------------------------------ keys and indexes, set aside


def catalog_structures(conn, names) -> list[Structure]:
    """The keys, indexes and foreign keys of (or pointing at) these tables, as
    the target has them."""
    names = list(names)
    out = []
    with conn.cursor() as cur:
        cur.execute("""
            SELECT c.relname, k.contype, k.conname, pg_get_constraintdef(k.oid)
            FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
            LEFT JOIN pg_class p ON p.oid = k.confrelid
            WHERE c.relnamespace = current_schema()::regnamespace AND k.contype IN ('p', 'u', 'f')
              AND (c.relname = ANY(%s) OR (k.contype = 'f' AND p.relname = ANY(%s)))
            ORDER BY k.contype = 'f', c.relname, k.conname""", (names, names))
        for table, kind, name, definition in cur.fetchall():
            out.append(Structure(table, "fk" if kind == "f" else "key", name,
                                 f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}"))
        cur.execute("""
            SELECT t.relname, i.relname, pg_get_indexdef(i.oid)
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY(%s)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid
                              AND k.contype IN ('p', 'u', 'x'))
            ORDER BY t.relname, i.relname""", (names,))
        for table, name, definition in cur.fetchall():
            out.append(Structure(table, "index", name, definition))
    return out


def drop_sql(structure: Structure) -> str:
    if structure.kind == "index":
        return f"DROP INDEX {quote(structure.name)}"
    return f"ALTER TABLE {quote(structure.table)} DROP CONSTRAINT {quote(structure.name)}"


# ------------------------------------------------------------ the progress


def create_progress(cur) -> None:
    cur.execute(f"""CREATE TABLE {PROGRESS} (
        item text PRIMARY KEY, table_name text, kind text NOT NULL, statement text,
        last_rowid bigint, rows bigint NOT NULL DEFAULT 0, checksum numeric NOT NULL DEFAULT 0,
        rejected text NOT NULL DEFAULT '', state text NOT NULL DEFAULT 'pending')""")


def record_plan(cur, about: dict, table_names, structures) -> None:
    cur.execute(f"INSERT INTO {PROGRESS} (item, kind, statement) VALUES ('transfer', 'transfer', %s)",
                (json.dumps(about),))
    for name in table_names:
        cur.execute(f"INSERT INTO {PROGRESS} (item, table_name, kind) VALUES (%s, %s, 'table')",
                    ("table:" + name, name))
    for i, s in enumerate(structures):
        cur.execute(f"INSERT INTO {PROGRESS} (item, table_name, kind, statement) VALUES (%s, %s, %s, %s)",
                    (f"{s.kind}:{i:05d}:{s.name}", s.table, s.kind, s.statement))


@dataclass
class TableState:
    name: str
    last_rowid: int | None
    rows: int
    checksum: int
    rejected: list[int]
    state: str


def load_progress(conn):
    """(about, {table: TableState}, [(item, Structure, done)]) of an earlier transfer."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT item, table_name, kind, statement, last_rowid, rows, checksum, rejected, state "
                    f"FROM {PROGRESS} ORDER BY item")
        about, states, pending = {}, {}, []
        for item, table, kind, statement, last, n, checksum, rejected, state in cur.fetchall():
            if kind == "transfer":
                about = json.loads(statement)
            elif kind == "table":
                states[table] = TableState(table, last, n, int(checksum),
                                           [int(x) for x in rejected.split(",") if x], state)
            else:
                pending.append((item, Structure(table, kind, item.split(":", 2)[2], statement),
                                state == "done"))
        return about, states, pending


def record_batch(cur, table: str, last_rowid: int, n: int, checksum: int, rejected=()) -> None:
    extra = "".join(f"{r}," for r in rejected)
    cur.execute(f"UPDATE {PROGRESS} SET last_rowid = %s, rows = rows + %s, checksum = checksum + %s, "
                f"rejected = rejected || %s WHERE item = %s", (last_rowid, n, checksum, extra, "table:" + table))


def set_state(cur, item: str, state: str) -> None:
    cur.execute(f"UPDATE {PROGRESS} SET state = %s WHERE item = %s", (state, item))


def drop_progress(conn) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {PROGRESS}")
    conn.commit()


# ---------------------------------------------------------------- the end


def unvalidated_foreign_keys(conn, names) -> list[tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute("""SELECT c.relname, k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                       WHERE k.contype = 'f' AND NOT k.convalidated AND c.relname = ANY(%s)
                         AND c.relnamespace = current_schema()::regnamespace""", (list(names),))
        return cur.fetchall()


def reset_sequences(conn, table: str, floor: int) -> None:
    """Each sequence owned by the table's columns continues after its largest
    value (and after `floor`, SQLite's AUTOINCREMENT high-water mark)."""
    with conn.cursor() as cur:
        cur.execute("SELECT a.attname, pg_get_serial_sequence(%s, a.attname) FROM pg_attribute a "
                    "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                    (quote(table), quote(table)))
        for column, sequence in cur.fetchall():
            if sequence is None:
                continue
            cur.execute(f"SELECT max({quote(column)}) FROM {quote(table)}")
            top = max(cur.fetchone()[0] or 0, floor)
            if top > 0:
                cur.execute("SELECT setval(%s, %s, true)", (sequence, top))
    conn.commit()


def server_encoding(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SHOW server_encoding")
        return cur.fetchone()[0]


def require_utf8(conn) -> None:
    if server_encoding(conn).upper() not in ("UTF8", "UTF-8"):
        raise OperationalProblem("the target database is not UTF8-encoded (SQLite text is UTF-8): "
                                 "create it with ENCODING 'UTF8'")
