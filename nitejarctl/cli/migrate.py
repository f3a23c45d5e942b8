"""`nitejarctl migrate`: apply, inspect and print the schema's migrations."""

from __future__ import annotations

import os

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import group
from nitejarctl.errors import CheckFailed, UsageProblem


@group(invoke_without_command=True, no_args_is_help=False)
@click.option("--sql", "print_sql", is_flag=True,
              help="Print the DDL for the target backend; connect to nothing, change nothing.")
@click.option("--backup", is_flag=True,
              help="SQLite: make an online backup copy next to the file before changing it.")
@click.pass_context
@pass_settings
def migrate(settings, ctx, print_sql, backup):
    """Create the schema, or bring an older database up to date.

    Idempotent: a second run changes nothing. Refuses to alter a database
    that nitejar's own migrator manages.

    \b
    Examples:
      nitejarctl migrate
      nitejarctl -d postgresql://ops@db/nitejar migrate --backup
      nitejarctl migrate --sql -d postgresql://db/nitejar > schema.sql
      nitejarctl migrate status --check
    """
    if ctx.invoked_subcommand is not None:
        return
    from nitejarctl import migrations

    target = settings.target
    if print_sql:
        click.echo(migrations.offline_sql(target.backend), nl=False)
        return
    if backup and not target.is_sqlite:
        raise UsageProblem("--backup is for SQLite databases (use pg_dump for PostgreSQL)")
    fresh = target.is_sqlite and (target.is_memory or not os.path.exists(target.path)
                                  or os.path.getsize(target.path) == 0)
    db = settings.database(create=True)
    backup_path = None
    if backup:
        if fresh or target.is_memory:
            settings.info("new database: no backup needed")
        else:
            from nitejarctl.maintenance.backup import safety_path

            backup_path = safety_path(db)
    result = migrations.migrate(db, fresh_file=fresh, backup_path=backup_path, lock_wait=settings.lock_wait)
    report = {
        "database": target.display,
        "applied": result.applied,
        "added_tables": result.added_tables,
        "added_columns": [f"{t}.{c}" for t, c in result.added_columns],
        "added_indexes": [i for _, i in result.added_indexes],
        "backup": result.backup,
        "changed": result.changed,
    }
    if result.backup:
        settings.info(f"backup written to {result.backup}")
    for name in result.applied:
        settings.info(f"applied {name}")
    for table in result.added_tables:
        settings.info(f"created missing table {table}")
    for table, column in result.added_columns:
        settings.info(f"added column {table}.{column}")
    for table, index in result.added_indexes:
        settings.info(f"added index {index} on {table}")
    if not result.changed:
        settings.info(f"{target.display}: schema is up to date; nothing to do")
    if settings.fmt in ("json", "jsonl"):
        settings.emit_report(report)


@migrate.command(name="status")
@click.option("--check", is_flag=True, help="Exit 1 when a migration is pending (deploy gates).")
@pass_settings
def migrate_status(settings, check):
    """Show each migration, applied (when) or pending.

    \b
    Examples:
      nitejarctl migrate status
      nitejarctl migrate status --check && deploy
      nitejarctl migrate status -o json
    """
    from nitejarctl import migrations

    db = settings.database()
    st = migrations.status(db)
    rows = [{"name": name, "state": "applied" if name in st.applied else "pending",
             "applied_at": st.applied.get(name)} for name, _ in migrations.MIGRATIONS]
    missing = ([f"table {t}" for t in st.missing_tables]
               + [f"column {t}.{c}" for t, c in st.missing_columns]
               + [f"index {i}" for _, i in st.missing_indexes])
    if settings.fmt in ("json", "jsonl"):
        settings.emit_report({
            "database": settings.target.display,
            "nitejar_managed": st.managed,
            "nitejar_migrations": st.nitejar_migrations,
            "migrations": rows,
            "pending": [] if st.managed else st.pending,
            "missing": missing,
            "up_to_date": st.up_to_date,
        })
    elif st.managed:
        settings.info(f"{settings.target.display}: managed by nitejar's migrator "
                      f"({st.nitejar_migrations} of its migrations applied); "
                      "nitejarctl does not migrate it")
    else:
        from nitejarctl.output import Column

        settings.emit(rows, ["name", "state", Column("applied_at", "time")], id_field="name")
        for item in missing:
            settings.info(f"missing {item} (run 'nitejarctl migrate')")
        if st.up_to_date:
            settings.info("schema is up to date")
    if check and not st.up_to_date:
        raise CheckFailed(f"{len(st.pending) + len(missing)} pending change(s): run 'nitejarctl migrate'")
