"""The SQLite side of a transfer: one consistent snapshot and its schema.

The snapshot is a read transaction held on a read-only connection for the
whole transfer. In WAL mode (nitejar's) it takes no lock that a writer waits
for: nitejar goes on writing, and what it writes after the start is simply
not in the snapshot.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field

from nitejarctl.errors import OperationalProblem

# Tables never copied as data: SQLite's own, and the migration record of the
# schema nitejarctl creates itself on the target.
INTERNAL = re.compile(r"^sqlite_")
MIGRATION_TABLES = ("kysely_migration", "kysely_migration_lock", "nitejarctl_migrations")
MIN_ROWID = -(2**63)


@dataclass
class Column:
    name: str
    declared: str  # the declared type, as written
    notnull: bool
    default: str | None  # SQL text
    pk: int  # position in the primary key (0: not in it)

    @property
    def affinity(self) -> str:
        """SQLite's type affinity of the declared type (its rules, in order)."""
        t = self.declared.upper()
        if "INT" in t:
            return "integer"
        if any(w in t for w in ("CHAR", "CLOB", "TEXT")):
            return "text"
        if "BLOB" in t or not t:
            return "blob"
        if any(w in t for w in ("REAL", "FLOA", "DOUB")):
            return "real"
        return "numeric"


@dataclass
class Index:
    name: str
    unique: bool
    columns: list[str]  # with " DESC" where descending; None entries are expressions
    where: str | None
    sql: str | None


@dataclass
class ForeignKey:
    columns: list[str]
    table: str
    references: list[str | None]
    on_delete: str
    on_update: str


@dataclass
class Table:
    name: str
    sql: str
    columns: list[Column]
    indexes: list[Index] = field(default_factory=list)  # the explicit ones (CREATE INDEX)
    uniques: list[list[str]] = field(default_factory=list)  # UNIQUE constraints
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    autoincrement: bool = False
    without_rowid: bool = False

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in sorted((c for c in self.columns if c.pk), key=lambda c: c.pk)]

    @property
    def key_columns(self) -> list[str]:
        """What names a row in a report: its primary key, else its rowid."""
        return self.primary_key or ["rowid"]


class Snapshot:
    """A read transaction on the source file, and what is read through it."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
        conn.execute("BEGIN")
        # The snapshot starts with the first read, and holds until the end.
        self.tables = self._tables()
        self.sequences = self._sequences()

    def close(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def execute(self, sql: str, params=()):
        return self.conn.execute(sql, params)

    def _tables(self) -> dict[str, Table]:
        rows = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY rowid").fetchall()
        tables = {}
        for name, sql in rows:
            if INTERNAL.match(name) or sql is None or sql.upper().startswith("CREATE VIRTUAL"):
                continue
            tables[name] = self._table(name, sql)
        return tables

    def _table(self, name: str, sql: str) -> Table:
        q = _quote(name)
        columns = [Column(r[1], r[2] or "", bool(r[3]), r[4], r[5])
                   for r in self.conn.execute(f"PRAGMA table_xinfo({q})") if not r[6]]
        if any(r[6] for r in self.conn.execute(f"PRAGMA table_xinfo({q})")):
            raise OperationalProblem(f"table {name!r} has generated columns, which transfer does not copy")
        table = Table(name, sql, columns,
                      autoincrement=bool(re.search(r"(?i)\bautoincrement\b", sql)),
                      without_rowid=bool(re.search(r"(?i)\)\s*without\s+rowid\s*;?\s*$", sql)))
        for _, index, unique, origin, partial in self.conn.execute(f"PRAGMA index_list({q})").fetchall():
            cols = [(r[2] if r[1] >= 0 else None, r[3]) for r in
                    self.conn.execute(f"PRAGMA index_xinfo({_quote(index)})") if r[5]]
            if origin == "u":
                table.uniques.append([c for c, _ in cols])
            elif origin == "c":
                sql_text = self.conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (index,)).fetchone()[0]
                where = re.search(r"(?is)\bwhere\b(.*)$", sql_text) if partial else None
                table.indexes.append(Index(index, bool(unique),
                                           [None if c is None else c + (" DESC" if desc else "")
                                            for c, desc in cols],
                                           where.group(1).strip().rstrip(";") if where else None, sql_text))
        keys: dict[int, ForeignKey] = {}
        for fid, _, parent, child, parent_col, on_update, on_delete, _ in self.conn.execute(
                f"PRAGMA foreign_key_list({q})"):
            fk = keys.setdefault(fid, ForeignKey([], parent, [], on_delete, on_update))
            fk.columns.append(child)
            fk.references.append(parent_col)
        table.foreign_keys = [keys[k] for k in sorted(keys)][::-1]  # SQLite lists the last first
        return table

    def _sequences(self) -> dict[str, int]:
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
            return {}
        return dict(self.conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())

    # ------------------------------------------------------------- reading

    def count(self, table: str) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0]

    def integer_ranges(self, table: Table) -> dict[str, tuple]:
        """(min, max) of the integer values of each integer-affinity column."""
        cols = [c.name for c in table.columns if c.affinity == "integer"]
        if not cols:
            return {}
        parts = ", ".join(f"min(CASE WHEN typeof({_quote(c)}) = 'integer' THEN {_quote(c)} END), "
                          f"max(CASE WHEN typeof({_quote(c)}) = 'integer' THEN {_quote(c)} END)"
                          for c in cols)
        row = self.conn.execute(f"SELECT {parts} FROM {_quote(table.name)}").fetchone()
        return {c: (row[2 * i], row[2 * i + 1]) for i, c in enumerate(cols)}

    def batch_sql(self, table: str, columns) -> str:
        cols = ", ".join(_quote(c) for c in columns)
        return f"SELECT rowid, {cols} FROM {_quote(table)} WHERE rowid > ? ORDER BY rowid LIMIT ?"

    def raw_rows(self, table: str, columns, after, upper: int | None, limit: int | None):
        """Rows after `after` (up to `upper`, or `limit` of them) as stored: text
        as bytes (cast in SQL, so that no other reader's types change), with
        each value's storage class — what bad values are told apart by."""
        cols = ", ".join(f"CASE WHEN typeof({_quote(c)}) = 'text' THEN CAST({_quote(c)} AS BLOB) "
                         f"ELSE {_quote(c)} END, typeof({_quote(c)})" for c in columns)
        bound = "" if upper is None else " AND rowid <= ?"
        params = (after,) if upper is None else (after, upper)
        limit_sql = "" if limit is None else f" LIMIT {int(limit)}"
        return self.conn.execute(f"SELECT rowid, {cols} FROM {_quote(table)} WHERE rowid > ?{bound} "
                                 f"ORDER BY rowid{limit_sql}", params).fetchall()

    def keys_of(self, table: Table, rowid: int) -> dict:
        if table.key_columns == ["rowid"]:
            return {"rowid": rowid}
        cols = ", ".join(f"CASE WHEN typeof({_quote(c)}) = 'text' THEN CAST({_quote(c)} AS BLOB) "
                         f"ELSE {_quote(c)} END" for c in table.key_columns)
        row = self.conn.execute(f"SELECT {cols} FROM {_quote(table.name)} WHERE rowid = ?", (rowid,)).fetchone()
        return {c: v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v
                for c, v in zip(table.key_columns, row)}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
