"""`nitejarctl version` (and -V/--version): the versions of nitejarctl and
what it runs on, and — when the database can be reached — its server and
the state of its schema. Without a database it still answers (exit 0)."""

from __future__ import annotations

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import NitejarCommand

# A short wait for a locked SQLite file: a version is not worth waiting for.
BUSY_TIMEOUT = 1.0


@click.command(cls=NitejarCommand)
@pass_settings
def version(settings):
    """Versions of nitejarctl, Python, the SQLite library, and the database.

    When the database (-d, NITEJAR_DATABASE_URL, DATABASE_URL, or
    ./data/nitejar.db) can be opened, its server version and the state of
    its schema too; when it cannot, the reason, and the exit code is still 0.
    The database is opened read-only and never created.

    \b
    Examples:
      nitejarctl version
      nitejarctl -V
      nitejarctl -d postgresql://ops@db/nitejar version -o json
    """
    show(settings)


def show_option(ctx, param, value):
    """-V/--version on the root: what `nitejarctl version` prints. Not eager,
    so that -d and -o are known wherever they stand before it."""
    if not value or ctx.resilient_parsing:
        return
    from nitejarctl.cli.context import Settings

    show(ctx.find_object(Settings))
    ctx.exit(0)


def show(settings) -> None:
    report = versions(settings)
    settings.emit_report(report, lines=_lines(report))


def versions(settings) -> dict:
    import platform
    import sqlite3

    from nitejarctl import __version__

    return {"nitejarctl": __version__, "python": platform.python_version(),
            "sqlite_library": sqlite3.sqlite_version, "database": _database(settings)}


def _database(settings) -> dict:
    from nitejarctl.db import mask_secrets
    from nitejarctl.errors import NitejarError

    info: dict = {}
    try:
        target = settings.target
        info.update(url=target.display, source=settings.url_source)
        from nitejarctl.db import open_database

        db = open_database(target, readonly=True, busy_timeout=min(settings.busy_timeout, BUSY_TIMEOUT))
        try:
            info.update(reachable=True, **_server(db))
        finally:
            db.close()
    except NitejarError as exc:
        info.update(reachable=False, error=exc.message)
    except Exception as exc:  # a driver error: reported, a version is still shown
        info.update(reachable=False, error=" ".join(mask_secrets(str(exc)).split()) or type(exc).__name__)
    return info


def _server(db) -> dict:
    from nitejarctl import migrations
    from nitejarctl.repositories import health

    info = health.server_info(db)
    st = migrations.status(db)
    if st.managed:
        schema = f"managed by nitejar's migrator ({st.nitejar_migrations:,} migrations applied)"
    elif not st.applied:
        schema = "no nitejarctl schema (run 'nitejarctl migrate')"
    elif st.pending:
        schema = f"{len(st.pending):,} migrations pending (run 'nitejarctl migrate')"
    elif not st.up_to_date:
        schema = "drifted: missing tables, columns or indexes (see 'nitejarctl doctor')"
    else:
        schema = "up to date"
    info.update(schema=schema, schema_up_to_date=st.up_to_date, nitejar_managed=st.managed,
                applied_migrations=len(st.applied), pending_migrations=[] if st.managed else st.pending)
    return info


def _lines(r: dict) -> list[str]:
    lines = [f"nitejarctl      {r['nitejarctl']}", f"Python          {r['python']}",
             f"SQLite library  {r['sqlite_library']}"]
    d = r["database"]
    if "url" in d:
        lines.append(f"database        {d['url']}  (from {d['source']})")
    if d.get("reachable"):
        lines.append(f"server          {d['backend']} {d['server_version']}")
        lines.append(f"schema          {d['schema']}")
    else:
        lines.append(f"                not reachable: {d['error']}")
    return lines
