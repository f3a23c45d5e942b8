"""DDL generated from the models, and drift between the models and a live database."""

from __future__ import annotations

from dataclasses import dataclass, field

import peewee as pw

from nitejarctl import models


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


def _default_sql(value, dialect) -> str:
    if value == models.NOW:
        return dialect.now_sql
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_sql(f: pw.Field, dialect, *, for_add: bool = False) -> str:
    """One column definition, in the style of nitejar's own migrations, for
    `dialect` (a db.dialects class)."""
    parts = [q(f.column_name), dialect.column_types[_kind(f)]]
    if f.primary_key and not isinstance(f.model._meta.primary_key, pw.CompositeKey):
        parts.append("primary key")
    default = getattr(f, "server_default", None)
    if default is not None:
        if for_add:
            default = dialect.add_column_default(default)
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


def create_table_sql(model, dialect) -> str:
    meta = model._meta
    defs = [column_sql(f, dialect) for f in meta.sorted_fields]
    if isinstance(meta.primary_key, pw.CompositeKey):
        cols = ", ".join(q(meta.fields[n].column_name) for n in meta.primary_key.field_names)
        defs.append(f"constraint {q(meta.table_name + '_pk')} primary key ({cols})")
    return f"CREATE TABLE IF NOT EXISTS {q(meta.table_name)} ({', '.join(defs)})"


def create_index_sql(model, name: str, columns) -> str:
    cols = ", ".join(q(c) for c in columns)
    return f"CREATE INDEX IF NOT EXISTS {q(name)} on {q(model._meta.table_name)} ({cols})"


def schema_statements(dialect, model_list=models.MODELS) -> list[str]:
    """Every CREATE TABLE, then every CREATE INDEX, for a fresh database."""
    tables = [create_table_sql(m, dialect) for m in model_list]
    indexes = [create_index_sql(m, name, cols)
               for m in model_list for name, cols in m._meta.named_indexes]
    return tables + indexes


# ----------------------------------------------------------------------- drift


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
    expected, ignored = expected_schema(managed)
    result = Drift()
    live_tables = db.tables()
    indexes = db.index_names()
    known = {m._meta.table_name for m in models.MODELS}
    for model in expected:
        table = model._meta.table_name
        if table not in live_tables:
            result.missing_tables.append(table)
            continue
        live = db.columns(table)
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
