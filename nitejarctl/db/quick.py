"""Quick read-only lookups for shell completion, which re-runs the program on
every Tab: the standard library's sqlite3 (read-only, short busy timeout) or
psycopg2 directly, no Peewee, at most `limit` values."""

from __future__ import annotations

import os
from urllib.parse import quote

BUSY_TIMEOUT = 0.2


def values(target, table: str, column: str, prefix: str, *, limit: int, where: str = "") -> list[str]:
    """Distinct values of table.column starting with `prefix` (a range scan on
    SQLite, so that an index on the column is used). Raises on any failure."""
    if target.is_sqlite:
        return _sqlite(target.path, table, column, prefix, limit, where)
    return _postgres(target.params, table, column, prefix, limit, where)


def _sqlite(path, table, column, prefix, limit, where):
    import sqlite3

    if path == ":memory:" or not os.path.isfile(path):
        return []
    conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
    try:
        sql = (f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" >= ? AND "{column}" < ? '
               f'{where} ORDER BY "{column}" LIMIT {int(limit)}')
        return [r[0] for r in conn.execute(sql, (prefix, prefix + "\U0010ffff"))]
    finally:
        conn.close()


def _postgres(params, table, column, prefix, limit, where):
    import psycopg2

    params = dict(params)
    params["connect_timeout"] = 2
    params["options"] = "-c default_transaction_read_only=on -c statement_timeout=1000"
    conn = psycopg2.connect("", **params)  # libpq's defaults for what the URL leaves out
    try:
        with conn.cursor() as cur:
            cur.execute(f'SELECT DISTINCT "{column}" FROM "{table}" WHERE left("{column}", %s) = %s '
                        f'{where} ORDER BY "{column}" LIMIT {int(limit)}', (len(prefix), prefix))
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
