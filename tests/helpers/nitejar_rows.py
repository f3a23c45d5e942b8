"""Rows for nitejar's own schema, worked out from the SQLite fixture with the
standard library alone (not with the nitejarctl code under test).

`referencing_rows("agents", "ag-doomed")` gives one row for every table with a
foreign key to `agents`, that key pointing at the agent; the other NOT NULL
columns are filled in, each NOT NULL key pointing at a row of its parent
(the parent's row of this set when it has one, else a row made for it, in
turn), and each nullable key at the parent's row of this set when there is
one (so that rows are reached by several paths, to several depths), else
NULL. The rows come parents first, so that a database enforcing foreign keys
(PostgreSQL) takes them in that order.
"""

from __future__ import annotations

import sqlite3

from tests.conftest import upstream_sql

TIME = 1_790_000_000


class Schema:
    def __init__(self):
        self.conn = sqlite3.connect(":memory:")
        self.conn.executescript(upstream_sql())

    def tables(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]

    def columns(self, table: str) -> list[tuple]:
        """(name, type, notnull, default, pk) of each column."""
        return [(r[1], r[2].lower(), r[3], r[4], r[5]) for r in
                self.conn.execute(f'SELECT * FROM pragma_table_info("{table}")')]

    def keys(self, table: str) -> dict[str, tuple[str, str]]:
        """column -> (parent table, parent column) of its single-column foreign keys."""
        return {r[3]: (r[2], r[4]) for r in self.conn.execute(f'SELECT * FROM pragma_foreign_key_list("{table}")')}

    def referencing(self, parent: str) -> list[str]:
        return [t for t in self.tables() if any(p == parent for p, _ in self.keys(t).values())]


def _value(table: str, name: str, kind: str):
    if "int" in kind:
        return TIME
    if "real" in kind or "double" in kind or "float" in kind:
        return 0.5
    if "blob" in kind:
        return b"\x01"
    if name.endswith("_json") or name in ("payload", "config", "metadata"):
        return "{}"
    return f"{table}:{name}"


def row(schema: Schema, table: str, **values) -> dict:
    """A row of `table`: `values`, and every other NOT NULL column filled in
    as referencing_rows fills them."""
    filled = {}
    for name, kind, notnull, _default, pk in schema.columns(table):
        if name in values:
            filled[name] = values[name]
        elif notnull or pk:
            filled[name] = _value(table, name, kind)
    unknown = set(values) - set(filled)
    if unknown:
        raise KeyError(f"{table} has no {sorted(unknown)}")
    return filled


def referencing_rows(parent: str, parent_id: str, *, schema: Schema | None = None) -> list[tuple[str, dict]]:
    """[(table, row)] as the module says, parents first (the `parent` row itself not included)."""
    schema = schema or Schema()
    chosen = schema.referencing(parent)
    rows: dict[str, dict] = {}
    order: list[str] = []
    making: set[str] = set()

    def row_of(table: str) -> dict:
        if table == parent:
            return {"id": parent_id}
        if table in rows:
            return rows[table]
        if table in making:
            return None  # a cycle of NOT NULL keys: none in nitejar's schema
        making.add(table)
        keys = schema.keys(table)
        row = {}
        for name, kind, notnull, _default, pk in schema.columns(table):
            if name in keys:
                target, column = keys[name]
                if target == parent:
                    row[name] = parent_id
                elif notnull or pk or target in chosen:
                    other = row_of(target) if target != table else None
                    row[name] = None if other is None else other.get(column)
                else:
                    row[name] = None
            elif notnull or pk:
                row[name] = _value(table, name, kind)
        making.discard(table)
        rows[table] = row
        order.append(table)
        return row

    for table in chosen:
        row_of(table)
    # A nullable key to a table of the set made after this row: point it there too.
    for table in order:
        for name, (target, column) in schema.keys(table).items():
            if rows[table].get(name) is None and target in chosen and target != table:
                if order.index(target) < order.index(table):
                    rows[table][name] = rows[target][column]
    return [(t, rows[t]) for t in order]


# ------------------------------------------------------------- what is there


def connect(url: str):
    """A DB-API connection and its placeholder."""
    if url.startswith("postgresql://"):
        import psycopg2

        conn = psycopg2.connect(url)
        conn.autocommit = True
        return conn, "%s"
    return sqlite3.connect(url), "?"


def insert(url: str, rows, *, enforce: bool = True) -> None:
    """Insert [(table, row)] in one transaction; `enforce=False` writes as
    nitejar does (SQLite: foreign keys off, its default; PostgreSQL: the
    replication role, under which the server checks no key)."""
    conn, mark = connect(url)
    try:
        cur = conn.cursor()
        if url.startswith("postgresql://"):
            cur.execute("BEGIN")
            if not enforce:
                cur.execute("SET LOCAL session_replication_role = replica")
        for table, row in rows:
            names = ", ".join(f'"{k}"' for k in row)
            cur.execute(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(mark for _ in row)})',
                        list(row.values()))
        conn.commit() if not url.startswith("postgresql://") else cur.execute("COMMIT")
    finally:
        conn.close()


def execute(url: str, *statements: str) -> None:
    conn, _ = connect(url)
    try:
        for statement in statements:
            conn.cursor().execute(statement)
        conn.commit()
    finally:
        conn.close()


def census(url: str, schema: Schema | None = None) -> dict:
    """{table: {row's primary key: {column: value}}} of every table of
    nitejar's schema, for its foreign key columns (and sprite sessions' status)."""
    schema = schema or Schema()
    conn, _ = connect(url)
    try:
        cur = conn.cursor()
        result = {}
        for table in schema.tables():
            columns = schema.columns(table)
            key = [c[0] for c in sorted((c for c in columns if c[4]), key=lambda c: c[4])]
            key = key or [c[0] for c in columns]
            watched = list(schema.keys(table)) + (["status"] if table == "sprite_sessions" else [])
            names = ", ".join(f'"{c}"' for c in key + watched)
            cur.execute(f'SELECT {names} FROM "{table}"')
            result[table] = {tuple(row[:len(key)]): dict(zip(watched, row[len(key):])) for row in cur.fetchall()}
        return result
    finally:
        conn.close()


def diff(before: dict, after: dict) -> dict:
    """What changed from `before` to `after` (census): {"deletes": {table:
    rows gone}, "nulls": {"table.column": values set to NULL in rows that
    stayed}, "closes": {"sprite_sessions": sessions closed}, "inserts":
    {table: rows added}, "other": {"table.column": other values changed}}."""
    result = {"deletes": {}, "nulls": {}, "closes": {}, "inserts": {}, "other": {}}
    for table, rows in before.items():
        now = after[table]
        gone = len(rows.keys() - now.keys())
        if gone:
            result["deletes"][table] = gone
        added = len(now.keys() - rows.keys())
        if added:
            result["inserts"][table] = added
        for key in rows.keys() & now.keys():
            for column, value in rows[key].items():
                new = now[key][column]
                if new == value:
                    continue
                if table == "sprite_sessions" and column == "status" and new == "closed":
                    where, name = result["closes"], "sprite_sessions"
                elif new is None:
                    where, name = result["nulls"], f"{table}.{column}"
                else:
                    where, name = result["other"], f"{table}.{column}"
                where[name] = where.get(name, 0) + 1
    return result


def dangling(url: str, schema: Schema | None = None) -> dict:
    """{"table.column": rows whose key points nowhere}, by an anti-join over
    every key the fixture's schema declares."""
    schema = schema or Schema()
    conn, _ = connect(url)
    try:
        cur = conn.cursor()
        found = {}
        for table in schema.tables():
            for column, (parent, key) in schema.keys(table).items():
                cur.execute(f'SELECT count(*) FROM "{table}" AS c WHERE c."{column}" IS NOT NULL AND NOT EXISTS '
                            f'(SELECT 1 FROM "{parent}" AS p WHERE p."{key}" = c."{column}")')
                n = cur.fetchone()[0]
                if n:
                    found[f"{table}.{column}"] = n
        return found
    finally:
        conn.close()
