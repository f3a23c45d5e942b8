"""Quick read-only lookups for shell completion, which re-runs the program on
every Tab: the standard library's sqlite3 (read-only, short busy timeout) or
psycopg2 directly, no Peewee, at most `limit` values."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote

BUSY_TIMEOUT = 0.2


def values(target, table: str, column: str, prefix: str, *, limit: int, where: str = "") -> list[str]:
    """Distinct values of table.column starting with `prefix` (a range scan on
    SQLite, so that an index on the column is used). Raises on any failure."""
    sql = (f'SELECT DISTINCT "{column}" FROM "{table}" WHERE {{match}} {where} '
           f'ORDER BY "{column}" LIMIT {int(limit)}')
    return [r[0] for r in _run(target, sql, f'"{column}"', prefix)]


@dataclass(frozen=True)
class Wanted:
    """What a command can act on, most relevant first: the rows of `table`
    that `where` keeps (constant SQL on the table, aliased t), in `order`
    (then by `column`), described by `status`, the age of `time` and, with
    `agent`, the name of the agent its agent_id names."""

    table: str
    column: str = "id"
    where: str = ""
    order: str = ""
    status: str | None = None
    time: str | None = None
    agent: bool = False


def candidates(target, wanted: Wanted, prefix: str, *, limit: int) -> list[tuple]:
    """(value, status, time, agent name) of the rows `wanted` names whose
    value starts with `prefix`, at most `limit`. Raises on any failure."""
    picked = [f't."{wanted.column}"'] + [f't."{c}"' if c else "NULL" for c in (wanted.status, wanted.time)]
    where = f" AND ({wanted.where})" if wanted.where else ""
    order = f'ORDER BY {wanted.order + ", " if wanted.order else ""}t."{wanted.column}"'
    sql = (f'SELECT {", ".join(picked)}{", t.agent_id" if wanted.agent else ""} FROM "{wanted.table}" t '
           f'WHERE {{match}}{where} {order} LIMIT {int(limit)}')
    if wanted.agent:
        # The agents of the chosen rows alone are looked up, not those of every candidate sorted.
        sql = (f'SELECT t.*, a."name" FROM ({sql}) t LEFT JOIN "agents" a ON a."id" = t."agent_id" '
               f'{order}')
        return [row[:3] + row[4:] for row in _run(target, sql, f't."{wanted.column}"', prefix)]
    return [row + (None,) for row in _run(target, sql, f't."{wanted.column}"', prefix)]


def _run(target, sql: str, column: str, prefix: str) -> list[tuple]:
    """`sql` with {match} a test that `column` starts with `prefix` (on
    SQLite a range its index scans)."""
    if target.is_sqlite:
        return _sqlite(target.path, sql.format(match=f"{column} >= ? AND {column} < ?"),
                       (prefix, prefix + "\U0010ffff"))
    return _postgres(target.params, sql.format(match=f"left({column}, %s) = %s"), (len(prefix), prefix))


def _sqlite(path, sql, args):
    import sqlite3

    if path == ":memory:" or not os.path.isfile(path):
        return []
    conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _postgres(params, sql, args):
    import psycopg2

    params = dict(params)
    params["connect_timeout"] = 2
    params["options"] = "-c default_transaction_read_only=on -c statement_timeout=1000"
    conn = psycopg2.connect("", **params)  # libpq's defaults for what the URL leaves out
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()
