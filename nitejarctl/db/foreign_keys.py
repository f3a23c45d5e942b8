"""The foreign keys a database declares, read from its own catalogue (SQLite's
`pragma foreign_key_list`, PostgreSQL's `pg_constraint`), and the SQL both
backends share over them: the references of a key that point nowhere, and the
temporary lists of row keys a change over many tables walks in batches.

nitejar writes SQLite without `foreign_keys = ON`, so its databases hold rows
whose parent is gone, and keys the database never enforced. nitejarctl
reads the keys as declared and does what they say itself (maintenance.cascade).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import peewee as pw
from peewee import SQL

CASCADE, SET_NULL = "CASCADE", "SET NULL"
# What a key says when its parent goes, as both catalogues spell it.
PG_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": CASCADE, "n": SET_NULL, "d": "SET DEFAULT"}


@dataclass(frozen=True)
class ForeignKey:
    """child(child_columns) REFERENCES parent(parent_columns) ON DELETE on_delete."""

    child: str
    child_columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    on_delete: str  # CASCADE, SET NULL, SET DEFAULT, RESTRICT or NO ACTION
    ident: object = None  # the catalogue's own name for it (SQLite's id, PostgreSQL's conname)

    @property
    def name(self) -> str:
        """`jobs.agent_id` (`table.a,b` for a key of several columns)."""
        return f"{self.child}.{','.join(self.child_columns)}"

    @property
    def cascades(self) -> bool:
        return self.on_delete == CASCADE

    @property
    def sets_null(self) -> bool:
        return self.on_delete == SET_NULL

    @property
    def restricts(self) -> bool:
        """Neither CASCADE nor SET NULL: the database refuses to delete a parent
        that such a key still references (SET DEFAULT is taken as refusing
        too: the default may well point nowhere either)."""
        return not (self.cascades or self.sets_null)


def table(db, name: str, alias: str | None = None) -> pw.Table:
    """Table `name` of the live schema, bound to `db` (its columns as `t.c.name`)."""
    t = pw.Table(name, alias=alias)
    return t.bind(db)


def _columns(t: pw.Table, names) -> list:
    return [getattr(t.c, n) for n in names]


def key_of(t: pw.Table, names):
    """The column, or the row value of the columns, `names` of `t`."""
    columns = _columns(t, names)
    return columns[0] if len(columns) == 1 else pw.Tuple(*columns)


def references(fk: ForeignKey, child: pw.Table, parents) -> pw.Expression:
    """The rows of `child` whose key `fk` points at one of `parents` (a query
    of the parent's rows)."""
    return key_of(child, fk.child_columns).in_(parents)


def dangling(db, fk: ForeignKey, child: pw.Table) -> pw.Expression:
    """The rows of `child` whose key `fk` holds a value (no part of it NULL, as
    SQLite's `foreign_key_check` counts them) that no parent row has."""
    parent = table(db, fk.parent, alias="nitejarctl_parent")
    present = None
    for column in _columns(child, fk.child_columns):
        present = column.is_null(False) if present is None else present & column.is_null(False)
    match = None
    for p, c in zip(_columns(parent, fk.parent_columns), _columns(child, fk.child_columns)):
        match = (p == c) if match is None else match & (p == c)
    return present & ~fn_exists(parent.select(SQL("1")).where(match))


def fn_exists(query) -> pw.Node:
    return pw.fn.EXISTS(query)


def count(db, t: pw.Table, condition) -> int:
    return t.select(pw.fn.COUNT(SQL("*"))).where(condition).scalar() or 0


@dataclass
class Listed:
    """The keys of some rows of a table, listed in a temporary table once, in
    key order: a change walks the list in key-range batches (`model` is what
    the batches are cut from), so that its work grows with the rows it lists,
    not with the table, and no batch rescans what the others did.
    `within(target, batch)` selects the listed rows of a batch (all of them
    for None) of `target`, an instance of the table (db.foreign_keys.table)."""

    model: type
    count: int
    within: Callable
    drop: Callable[[], None]


def temporary_model(db, name: str, key: pw.Field, columns=()) -> type:
    """A model of nitejarctl's temporary table `name`: the batch key `k`, and
    the `columns` (bare) that hold a listed row's key."""
    meta = type("Meta", (), {"database": db, "table_name": name, "schema": db.temp_schema})
    attrs = {"k": key, "Meta": meta, "__module__": __name__}
    attrs.update({c: pw.BareField(column_name=c) for c in columns})
    return type(f"Listed_{name}", (pw.Model,), attrs)


def drop_temporary(db, name: str) -> Callable[[], None]:
    def drop() -> None:
        try:
            db.execute_sql(f'DROP TABLE IF EXISTS {db.temp_schema}."{name}"')
        except pw.PeeweeException:  # the connection is gone: the table went with it
            pass

    return drop
