"""Dynamic shell completion: ids, agent names and session keys from the database.

Completion re-runs the program on every Tab, so this path stays light: the
standard library's sqlite3 (read-only, short busy timeout) instead of Peewee,
psycopg2 only for a PostgreSQL URL, at most MAX_CANDIDATES candidates, and
silence — no candidates rather than an error — when no database is reachable.
"""

from __future__ import annotations

import os

from click.shell_completion import CompletionItem

MAX_CANDIDATES = 50
BUSY_TIMEOUT = 0.2


def _target(ctx):
    from nitejarctl.cli.context import Settings
    from nitejarctl.db import parse_url, resolve_url

    settings = ctx.find_object(Settings)
    url, _ = resolve_url(settings.database_url if settings else None)
    return parse_url(url)


def _rows(ctx, table: str, column: str, incomplete: str, extra_where: str = "") -> list[str]:
    """Distinct values of table.column starting with `incomplete` (a range scan on
    SQLite, so an index on the column is used)."""
    try:
        target = _target(ctx)
        if target.is_sqlite:
            return _sqlite_rows(target.path, table, column, incomplete, extra_where)
        return _pg_rows(target.params, table, column, incomplete, extra_where)
    except Exception:  # completion must never fail loudly
        return []


def _sqlite_rows(path, table, column, incomplete, extra_where):
    import sqlite3
    from urllib.parse import quote

    if path == ":memory:" or not os.path.isfile(path):
        return []
    conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True,
                           timeout=BUSY_TIMEOUT)
    try:
        sql = (f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" >= ? AND "{column}" < ? '
               f'{extra_where} ORDER BY "{column}" LIMIT {MAX_CANDIDATES}')
        return [r[0] for r in conn.execute(sql, (incomplete, incomplete + "\U0010ffff"))]
    finally:
        conn.close()


def _pg_rows(params, table, column, incomplete, extra_where):
    import psycopg2

    params = dict(params)
    params["connect_timeout"] = 2
    params["options"] = "-c default_transaction_read_only=on -c statement_timeout=1000"
    conn = psycopg2.connect(**params)
    try:
        with conn.cursor() as cur:
            cur.execute(f'SELECT DISTINCT "{column}" FROM "{table}" WHERE left("{column}", %s) = %s '
                        f'{extra_where} ORDER BY "{column}" LIMIT {MAX_CANDIDATES}',
                        (len(incomplete), incomplete))
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def _items(values, help_text=None):
    return [CompletionItem(v, help=help_text) for v in values]


def _column(table: str, column: str):
    """A shell_complete callback offering the values of table.column."""
    def complete(ctx, param, incomplete):
        return _items(_rows(ctx, table, column, incomplete))

    return complete


session_ids = _column("sprite_sessions", "id")
session_keys = _column("work_items", "session_key")
sprite_session_keys = _column("sprite_sessions", "session_key")
memory_ids = _column("agent_memories", "id")
integration_ids = _column("integrations", "id")
summary_ids = _column("session_summaries", "id")
work_item_ids = _column("work_items", "id")
job_ids = _column("jobs", "id")


def agents(ctx, param, incomplete):
    names = _rows(ctx, "agents", "name", incomplete)
    ids = _rows(ctx, "agents", "id", incomplete) if len(names) < MAX_CANDIDATES else []
    return _items((names + ids)[:MAX_CANDIDATES])
