"""`nitejarctl query SQL`: an operator's own read-only SQL (db.read_only)."""

from __future__ import annotations

import itertools
import sys

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import NitejarCommand, limit_option, table_limit


@click.command(cls=NitejarCommand)
@click.argument("sql")
@click.option("-p", "--param", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="The value of :NAME in the query, bound, never pasted into the SQL (PostgreSQL "
                   "infers its type; SQLite takes a plain number as a number). Repeatable.")
@limit_option
@click.option("--show-secrets", is_flag=True, help="Show secrets as stored instead of masked.")
@pass_settings
def query(settings, sql, params, limit, show_secrets):
    """Run one read-only SQL statement (SELECT, WITH or EXPLAIN) and list its rows.

    The database itself refuses every write: SQLite is opened read-only
    (mode=ro) with PRAGMA query_only, PostgreSQL runs the statement in a READ
    ONLY transaction that is rolled back. A statement that would write exits 1
    and changes nothing. SQL '-' reads the statement from stdin. Parameters are
    written :name and given with -p name value. Rows stream in every format;
    secrets are masked as listings mask them (columns named like token,
    secret, password, api_key; such keys in JSON text; enc:… values) unless
    --show-secrets.

    \b
    Examples:
      nitejarctl query "SELECT status, count(*) AS n FROM sprite_sessions GROUP BY status"
      nitejarctl query "SELECT id, content FROM agent_memories WHERE strength < :s" -p s 0.2 -o json
      nitejarctl query "EXPLAIN QUERY PLAN SELECT * FROM sprite_sessions WHERE status = 'active'"
      nitejarctl query - -o csv < report.sql > report.csv
    """
    from nitejarctl.db import read_only

    if sql == "-":
        sql = sys.stdin.read()
    statement = read_only.parse(sql)
    values = dict(params)
    read_only.bind(statement, values)  # a missing value is refused before connecting
    db = settings.database(readonly=True)
    if show_secrets and settings.stdout_is_terminal():
        settings.warn("secrets are shown as stored: mind who can see this terminal")
    stream = read_only.rows(db, statement, values)
    names = _unique(next(stream))
    shown_limit = table_limit(settings, limit)
    rows = stream if shown_limit is None else itertools.islice(stream, shown_limit)
    if not show_secrets:
        rows = _masked(names, rows)
    n = settings.emit((dict(zip(names, row)) for row in rows), names, id_field=names[0] if names else "id")
    if shown_limit is not None and n == shown_limit:
        more = sum(1 for _ in stream)  # still streamed: counted, never held
        if more:
            hint = " (use --limit or -o json)" if limit is None else ""
            settings.info(f"… {more:,} more rows not shown{hint}")
    elif n == 0 and settings.fmt == "table":
        settings.info("no rows")


def _unique(names) -> list[str]:
    """Column names as a listing needs them: `SELECT 1, 1` gives "1" and "1_2"."""
    seen, out = set(), []
    for name in names:
        name, base, k = str(name), str(name), 1
        while name in seen:
            k += 1
            name = f"{base}_{k}"
        seen.add(name)
        out.append(name)
    return out


def _masked(names, rows):
    from nitejarctl.secrets import is_secret_column, mask_cell

    secret = [is_secret_column(name) for name in names]
    for row in rows:
        yield tuple(mask_cell(value, secret=s) for s, value in zip(secret, row))
