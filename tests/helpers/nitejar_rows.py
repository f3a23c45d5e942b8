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
