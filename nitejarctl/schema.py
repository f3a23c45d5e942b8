"""DDL generated from the models, and drift between the models and a live database."""

from __future__ import annotations

from dataclasses import dataclass, field

import peewee as pw

from nitejarctl import models

_TYPES = {
    "sqlite": {"text": "text", "integer": "integer", "real": "real", "blob": "blob"},
    "postgresql": {"text": "text", "integer": "integer", "real": "double precision",
                   "blob": "bytea"},
}
_NOW = {"sqlite": "(unixepoch())", "postgresql": "(extract(epoch from now())::integer)"}


def _kind(f: pw.Field) -> str:
    if isinstance(f, pw.ForeignKeyField):
        return _kind(f.rel_field)
    if isinstance(f, pw.FloatField):
        return "real"
    if isinstance(f, pw.IntegerField):
        return "integer"
    if isinstance(f, pw.BlobField):
        return "blob"
    return "text"


def _default_sql(value, dialect: str) -> str:
    if value == models.NOW:
        return _NOW[dialect]
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_sql(f: pw.Field, dialect: str, *, for_add: bool = False) -> str:
    """One column definition, in the style of nitejar's own migrations."""
    parts = [q(f.column_name), _TYPES[dialect][_kind(f)]]
    if f.primary_key and not isinstance(f.model._meta.primary_key, pw.CompositeKey):
        parts.append("primary key")
    default = getattr(f, "server_default", None)
    if default is not None:
        if for_add and dialect == "sqlite" and default == models.NOW:
            # SQLite cannot add a column with a non-constant default.
            default = 0
        parts.append("default " + _default_sql(default, dialect))
    if not f.null and not f.primary_key:
        parts.append("not null")
    if f.unique:
        parts.append("unique")
    if isinstance(f, pw.ForeignKeyField):
        parts.append(f"references {q(f.rel_model._meta.table_name)} ({q(f.rel_field.column_name)})")
        if f.on_delete:
            parts.append("on delete " + f.on_delete.lower())
    return " ".join(parts)


def create_table_sql(model, dialect: str) -> str:
    meta = model._meta
    defs = [column_sql(f, dialect) for f in meta.sorted_fields]
    if isinstance(meta.primary_key, pw.CompositeKey):
        cols = ", ".join(q(meta.fields[n].column_name) for n in meta.primary_key.field_names)
        defs.append(f"constraint {q(meta.table_name + '_pk')} primary key ({cols})")
    return f"CREATE TABLE IF NOT EXISTS {q(meta.table_name)} ({', '.join(defs)})"


def create_index_sql(model, name: str, columns) -> str:
    cols = ", ".join(q(c) for c in columns)
    return f"CREATE INDEX IF NOT EXISTS {q(name)} on {q(model._meta.table_name)} ({cols})"


def schema_statements(dialect: str, model_list=models.MODELS) -> list[str]:
    """Every CREATE TABLE, then every CREATE INDEX, for a fresh database."""
    tables = [create_table_sql(m, dialect) for m in model_list]
    indexes = [create_index_sql(m, name, cols)
               for m in model_list for name, cols in m._meta.named_indexes]
    return tables + indexes


# ----------------------------------------------------------------------- drift


def live_indexes(db) -> dict[str, str]:
    """Index name -> table, for every table in the database."""
    if isinstance(db, pw.PostgresqlDatabase):
        rows = db.execute_sql(
            "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema()"
        ).fetchall()
    else:
        rows = db.execute_sql(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"
        ).fetchall()
    return {name: table for name, table in rows}


@dataclass
class Drift:
    missing_tables: list[str] = field(default_factory=list)
    missing_columns: list[tuple[str, str]] = field(default_factory=list)
    missing_indexes: list[tuple[str, str]] = field(default_factory=list)
    extra_tables: list[str] = field(default_factory=list)
    extra_columns: list[tuple[str, str]] = field(default_factory=list)

    @property
    def problems(self) -> bool:
        return bool(self.missing_tables or self.missing_columns or self.missing_indexes)


def expected_schema(managed: bool):
    """(models, ignored columns) nitejarctl maintains. On a nitejar-managed database
    integrations live in nitejar's plugin tables, so their link columns are not ours."""
    if not managed:
        return models.MODELS, set()
    return models.NITEJAR_MAINTAINED, {("work_items", "integration_id")}


def drift(db, *, managed: bool, internal_tables=()) -> Drift:
    from nitejarctl.db import table_columns, table_names

    expected, ignored = expected_schema(managed)
    result = Drift()
    live_tables = table_names(db)
    indexes = live_indexes(db)
    known = {m._meta.table_name for m in models.MODELS}
    for model in expected:
        table = model._meta.table_name
        if table not in live_tables:
            result.missing_tables.append(table)
            continue
        live = table_columns(db, table)
        wanted = [f.column_name for f in model._meta.sorted_fields]
        result.missing_columns += [(table, c) for c in wanted
                                   if c not in live and (table, c) not in ignored]
        result.extra_columns += [(table, c) for c in live if c not in wanted]
        for name, cols in model._meta.named_indexes:
            if name not in indexes and not any((table, c) in ignored for c in cols):
                result.missing_indexes.append((table, name))
    result.extra_tables = sorted(t for t in live_tables - known - set(internal_tables)
                                 if not t.startswith("sqlite_"))
    return result
