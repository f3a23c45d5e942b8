"""Ordered, named migrations, recorded in nitejarctl's own table.

Each migration is a function of the dialect returning its statements, so that
`migrate --sql` can print them without a connection. After the recorded
migrations, `migrate` reconciles older databases with the models: columns and
indexes the models have and the database lacks are added.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from nitejarctl import models, schema
from nitejarctl.db import now
from nitejarctl.errors import OperationalProblem

MIGRATIONS_TABLE = "nitejarctl_migrations"
NITEJAR_TABLE = "kysely_migration"
DEFAULT_LOCK_WAIT = 600.0


def m001_initial_schema(dialect) -> list[str]:
    return schema.schema_statements(dialect)


MIGRATIONS = [
    ("m001_initial_schema", m001_initial_schema),
]


def offline_sql(backend: str) -> str:
    """The DDL of every migration, for printing (`migrate --sql`)."""
    from nitejarctl.db.dialects import BACKENDS

    out = [f"-- nitejarctl schema for {backend}"]
    for name, fn in MIGRATIONS:
        out.append(f"-- migration {name}")
        out += [stmt + ";" for stmt in fn(BACKENDS[backend])]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------- inspecting


@dataclass
class Status:
    managed: bool
    nitejar_migrations: int
    applied: dict[str, int]  # name -> applied_at
    pending: list[str]
    missing_tables: list[str] = field(default_factory=list)
    missing_columns: list[tuple[str, str]] = field(default_factory=list)
    missing_indexes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        if self.managed:
            return True
        return not (self.pending or self.missing_tables or self.missing_columns
                    or self.missing_indexes)


def nitejar_migration_count(db) -> int | None:
    """Number of nitejar (Kysely) migrations applied, or None when not nitejar-managed."""
    if NITEJAR_TABLE not in db.tables():
        return None
    return db.execute_sql(f'SELECT count(*) FROM "{NITEJAR_TABLE}"').fetchone()[0]


def applied_migrations(db) -> dict[str, int]:
    if MIGRATIONS_TABLE not in db.tables():
        return {}
    rows = db.execute_sql(f'SELECT name, applied_at FROM "{MIGRATIONS_TABLE}"').fetchall()
    return {name: applied_at for name, applied_at in rows}


def status(db) -> Status:
    count = nitejar_migration_count(db)
    applied = applied_migrations(db)
    pending = [name for name, _ in MIGRATIONS if name not in applied]
    result = Status(managed=count is not None, nitejar_migrations=count or 0,
                    applied=applied, pending=pending)
    if not pending and not result.managed:
        d = schema.drift(db, managed=False, internal_tables=(MIGRATIONS_TABLE,))
        result.missing_tables = d.missing_tables
        result.missing_columns = d.missing_columns
        result.missing_indexes = d.missing_indexes
    return result


def managed_refusal(count: int) -> OperationalProblem:
    return OperationalProblem(
        f"this database is managed by nitejar's migrator ({count} of its migrations applied); "
        "nitejarctl migrate does not alter its schema"
    )


# --------------------------------------------------------------------- applying


@dataclass
class Result:
    applied: list[str] = field(default_factory=list)
    added_tables: list[str] = field(default_factory=list)
    added_columns: list[tuple[str, str]] = field(default_factory=list)
    added_indexes: list[tuple[str, str]] = field(default_factory=list)
    backup: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.added_tables or self.added_columns or self.added_indexes)


def migrate(db, *, fresh_file: bool = False, backup_path: str | None = None,
            lock_wait: float = DEFAULT_LOCK_WAIT) -> Result:
    """Apply pending migrations, then reconcile columns and indexes.

    Serialised across processes: SQLite by BEGIN IMMEDIATE, PostgreSQL by an
    advisory lock held on this connection (waiting at most `lock_wait` seconds).
    """
    if fresh_file:
        db.prepare_new()
    with db.migration_lock(lock_wait):
        return _migrate_locked(db, backup_path)


def _migrate_locked(db, backup_path: str | None) -> Result:
    result = Result()
    db.forget_schema()
    count = nitejar_migration_count(db)
    if count is not None:
        raise managed_refusal(count)
    pending = [(n, fn) for n, fn in MIGRATIONS if n not in applied_migrations(db)]
    if backup_path and (pending or _drifted(db)):
        # Before any change: a migration, or only a missing index, column or table.
        result.backup = backup_sqlite(db, backup_path)
    for migration_name, fn in pending:
        with db.atomic():
            db.execute_sql(
                f'CREATE TABLE IF NOT EXISTS "{MIGRATIONS_TABLE}" '
                '("name" text primary key, "applied_at" integer not null)'
            )
            placeholder = db.param
            already = db.execute_sql(
                f'SELECT 1 FROM "{MIGRATIONS_TABLE}" WHERE name = {placeholder}', (migration_name,)
            ).fetchone()
            if already:  # another process applied it while we waited for the lock
                continue
            for stmt in fn(type(db)):
                db.execute_sql(stmt)
            db.execute_sql(
                f'INSERT INTO "{MIGRATIONS_TABLE}" (name, applied_at) VALUES ({placeholder}, {placeholder})',
                (migration_name, now()),
            )
        result.applied.append(migration_name)
        db.forget_schema()
    _reconcile(db, result)
    return result


def _drifted(db) -> bool:
    d = schema.drift(db, managed=False, internal_tables=(MIGRATIONS_TABLE,))
    return bool(d.missing_tables or d.missing_columns or d.missing_indexes)


def _reconcile(db, result: Result) -> None:
    """Add the columns and indexes that an older database lacks."""
    name = type(db)
    with db.atomic():
        db.forget_schema()
        d = schema.drift(db, managed=False, internal_tables=(MIGRATIONS_TABLE,))
        by_table = {m._meta.table_name: m for m in models.MODELS}
        for table in d.missing_tables:
            model = by_table[table]
            db.execute_sql(schema.create_table_sql(model, name))
            for index, cols in model._meta.named_indexes:
                db.execute_sql(schema.create_index_sql(model, index, cols))
            result.added_tables.append(table)
        for table, column in d.missing_columns:
            f = by_table[table]._meta.columns[column]
            db.execute_sql(f"ALTER TABLE {schema.q(table)} ADD COLUMN "
                           + schema.column_sql(f, name, for_add=True))
            result.added_columns.append((table, column))
        for table, index in d.missing_indexes:
            model = by_table[table]
            cols = dict(model._meta.named_indexes)[index]
            db.execute_sql(schema.create_index_sql(model, index, cols))
            result.added_indexes.append((table, index))
    db.forget_schema()


def backup_sqlite(db, backup_path: str) -> str:
    """Online copy of the live SQLite database (sqlite3's backup API) into a
    new file (db.files: created exclusively, never through a symbolic link,
    with the database's read and write bits and owner)."""
    import sqlite3
    from urllib.parse import quote

    from nitejarctl.db.files import create_copy_file, same_file

    fd = create_copy_file(backup_path, db.file_path(), what="backup file")
    try:
        # mode=rw: SQLite opens the file just created and never creates one.
        target = sqlite3.connect(f"file:{quote(os.path.abspath(backup_path))}?mode=rw", uri=True)
        try:
            target.execute("PRAGMA schema_version").fetchone()  # the file is open now
            if not same_file(fd, backup_path):
                raise OperationalProblem(f"backup file {backup_path} was replaced while it was being "
                                         "written: refusing to write it")
            db.connection().backup(target)
        finally:
            target.close()
    except BaseException:
        if same_file(fd, backup_path):
            os.unlink(backup_path)
        raise
    finally:
        os.close(fd)
    return backup_path
