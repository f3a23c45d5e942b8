"""vacuum: SQLite's VACUUM (asked for: it holds the write lock) and VACUUM INTO;
PostgreSQL's VACUUM (ANALYZE) table by table."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from nitejarctl.cli.context import Settings
from tests import factories as f
from tests.conftest import Run


@pytest.fixture
def bloated(sqlite_url):
    """A SQLite database with many free pages (rows written, then deleted)."""
    free = f.free_pages(sqlite_url, keep="a-7")
    assert free > 2_000_000
    return sqlite_url, free


def storage(path: str) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        return os.path.getsize(path), conn.execute("PRAGMA freelist_count").fetchone()[0]
    finally:
        conn.close()


def test_vacuum_reports_then_reclaims(bloated):
    path, free = bloated
    size_before = os.path.getsize(path)
    result = Run(path)("vacuum", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["before"]["reclaimable_bytes"] == free and report["before"]["bytes"] == size_before
    assert report["after"]["reclaimable_bytes"] == 0 and report["checkpointed"] is True
    assert report["after"]["bytes"] == os.path.getsize(path) < size_before - free + 100_000
    assert report["reclaimed_bytes"] == size_before - report["after"]["bytes"]
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}: ") and "is free pages that VACUUM reclaims" in lines[0]
    assert lines[1] == "vacuuming: the write lock is held until it ends"
    assert lines[2].startswith(f"vacuumed {path} in ") and "reclaimed)" in lines[2]
    assert storage(path)[1] == 0
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT id FROM agents").fetchall() == [("a-7",)]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_vacuum_asks_on_a_terminal_and_refuses_elsewhere(bloated):
    path, _ = bloated
    before = storage(path)
    refused = Run(path)("vacuum")
    assert (refused.exit_code, refused.stderr) == (2, "Error: refusing to vacuum without --yes when not on a "
                                                      "terminal\n")
    declined = Run(path)("vacuum", input="n\n", settings=Settings(interactive=True))
    assert declined.exit_code == 1 and declined.stderr.endswith("nothing vacuumed\n")
    assert "VACUUM holds the database's write lock for its whole run" in declined.stderr
    assert storage(path) == before
    accepted = Run(path)("vacuum", input="y\n", settings=Settings(interactive=True))
    assert accepted.exit_code == 0, accepted.stderr
    assert storage(path)[1] == 0


def test_vacuum_into_writes_a_compact_copy(bloated, tmp_path):
    path, free = bloated
    before = storage(path)
    copy = tmp_path / "compact.db"
    result = Run(path)("vacuum", "--into", str(copy), "-o", "json")  # no write lock: no question
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["into"] == str(copy) and report["bytes"] == os.path.getsize(copy)
    assert report["integrity"] == "ok" and report["rows"]["agents"] == 1
    assert report["reclaimed_bytes"] == report["before"]["bytes"] - report["bytes"] >= free - 100_000
    assert storage(path) == before  # the database itself is as it was
    assert storage(str(copy))[1] == 0
    again = Run(path)("vacuum", "--into", str(copy))
    assert again.exit_code == 2 and "already exists: refusing to overwrite it (use --force" in again.stderr
    assert Run(path)("vacuum", "--into", str(copy), "--force").exit_code == 0


def test_vacuum_with_a_reader_on_the_wal(bloated):
    """A reader holding an old snapshot keeps the WAL from being folded in for now."""
    path, _ = bloated
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM agents").fetchone()
    try:
        result = Run(path)("vacuum", "--yes", "--busy-timeout", "0.3", "-o", "json")
    finally:
        reader.close()
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["checkpointed"] is False
    assert "a reader kept part of the WAL: the file shrinks at the next checkpoint" in result.stderr


def _never_analyzed(url: str) -> list[str]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.reltuples < 0 ORDER BY 1")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def test_vacuum_on_postgresql(pg_url):
    run = Run(pg_url)
    assert len(_never_analyzed(pg_url)) == 11  # the schema's ten tables and nitejarctl's migrations
    result = run("vacuum", "-o", "json")  # no write lock is held: no question, no --yes needed
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["statements"] == 11
    assert report["before"]["bytes"] > 0 and report["before"]["reclaimable_bytes"] is None
    assert _never_analyzed(pg_url) == []  # VACUUM (ANALYZE) went through every table
    into = run("vacuum", "--into", "/tmp/x.db")
    assert (into.exit_code, into.stderr) == (2, "Error: --into is for SQLite databases (for a copy of a "
                                                "PostgreSQL database: nitejarctl backup PATH)\n")


def test_vacuum_on_postgresql_shows_its_progress_table_by_table(pg_url):
    import re

    result = Run(pg_url)("vacuum", settings=Settings(stderr_terminal=True, progress_delay=0))
    assert result.exit_code == 0, result.stderr
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stderr)
    assert "vacuuming" in plain and " 1/11 " in plain and "11/11" in plain
    assert re.search(r"vacuumed \S+ in [0-9.]+s: [0-9.]+ \w+ before, [0-9.]+ \w+ after", plain)
