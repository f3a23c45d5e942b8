"""A full, comparable dump of a database: its schema and every row of every table.

SQLite: `iterdump()` (schema and rows). PostgreSQL: the columns, indexes and
constraints of the public schema, then every table's rows (as row literals,
sorted). Used to prove that a command changed nothing.

    with Dumper(url) as dumper:   # one connection for many dumps
        before = dumper.dump()
"""

from __future__ import annotations

import os
import sqlite3

PG_CATALOGUE = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
       || ' ' || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
ORDER BY 1, 2
"""


class Dumper:
    def __init__(self, url: str):
        from nitejarctl.db import parse_url

        self.target = parse_url(url)
        self.conn = None
        if not self.target.is_sqlite:
            import psycopg2

            self.conn = psycopg2.connect(**self.target.params)
            self.conn.autocommit = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def dump(self) -> list:
        if self.target.is_sqlite:
            return dump_sqlite(self.target.path)
        cur = self.conn.cursor()
        cur.execute(PG_CATALOGUE)
        out = cur.fetchall()
        cur.execute("SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' ORDER BY table_name")
        tables = [r[0] for r in cur.fetchall()]
        if tables:
            cur.execute(" UNION ALL ".join(
                f"SELECT '{t}', (SELECT coalesce(array_agg(x::text ORDER BY x::text), '{{}}') "
                f'FROM "{t}" x)' for t in tables))
            out += [(table, tuple(rows)) for table, rows in cur.fetchall()]
        return out


def dump(url: str) -> list:
    with Dumper(url) as dumper:
        return dumper.dump()


def dump_sqlite(path: str) -> list:
    if not os.path.exists(path):
        return ["<no such file>"]
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def tables(url: str) -> set[str]:
    """The names of the database's tables."""
    from nitejarctl.db import parse_url

    target = parse_url(url)
    if target.is_sqlite:
        conn = sqlite3.connect(target.path)
        try:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    import psycopg2

    conn = psycopg2.connect(**target.params)
    try:
        cur = conn.cursor()
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()
