"""`nitejarctl transfer`: SQLite into PostgreSQL, on nitejarctl's schema and on
nitejar's own (the fixture, one row in every table), bad values, resuming
after SIGKILL, and a nitejar writer beside it. A transfer always reads SQLite
and writes PostgreSQL, so these tests need the PostgreSQL server."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import PG_PASSWORD, PG_PASSWORD_USER, Run
from tests.helpers.generated import generator

ROOT = Path(__file__).resolve().parents[1]
_databases = iter(range(10**6))
KILLS = int(os.environ.get("NITEJARCTL_RELIABILITY_KILLS", "6"))


@pytest.fixture
def pg(pg_server):
    if pg_server is None:
        pytest.skip("PostgreSQL server binaries (initdb) not found on this machine")
    return pg_server


def empty_pg(pg) -> str:
    return pg.create_database(f"transfer_{os.getpid()}_{next(_databases)}")


def query(url: str, sql: str, *params) -> list:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
    finally:
        conn.close()


def transfer(source: str, target: str, *extra):
    return Run(source)("transfer", "--to", target, "-o", "json", *extra)


# ------------------------------------------------------- nitejarctl's schema

HOSTILE = ["tab\there", "new\nline\r\n", "back\\slash \\N", "[bold]x[/] %s ' \" ;DROP TABLE x;--", "émoji 🎉",
           "x" * 5000, "", "\\.",
           "\x01\x02\x03 the bytes a batch built by SQLite separates values with"]


# what PostgreSQL prints of some of these is not Python's repr (3.0000000000000008e+16)
FLOATS = [0.6552252021702392, -0.0, 3.000000000000001e+16, 1e-7, 123456.789, 1e15, -2.5e-300, 0.1]


def fill_nitejarctl(path: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO agents (id, name, config, created_at, updated_at) VALUES "
                 "('a1', 'ops', '{\"k\": 1}', 1790000000, 1790000000)")
    for i, text in enumerate(HOSTILE):
        conn.execute("INSERT INTO agent_memories (id, agent_id, content, embedding, strength, created_at, "
                     "updated_at) VALUES (?, 'a1', ?, ?, ?, 1, 2)",
                     (f"m{i}", text, bytes(range(i * 7 % 256)) or None, FLOATS[i % len(FLOATS)]))
        conn.execute("INSERT INTO sprite_sessions (id, sprite_name, session_id, session_key, agent_id, "
                     "created_at, last_active_at) VALUES (?, ?, 's', 'k', 'a1', 1, 2)", (f"s{i}", text))
    conn.commit()
    conn.close()


def test_nitejarctl_database_arrives_exactly(sqlite_url, pg):
    fill_nitejarctl(sqlite_url)
    url = empty_pg(pg)
    result = transfer(sqlite_url, url)
    assert result.exit_code == 0, result.output
    report = {r["table"]: r for r in json.loads(result.stdout)}
    assert report["agent_memories"]["rows"] == len(HOSTILE) and report["agent_memories"]["verified"]
    assert all(r["verified"] for r in report.values())
    assert "nitejarctl_migrations" not in report  # the target's own migrate recorded it
    src = sqlite3.connect(sqlite_url)
    for table, key in (("agent_memories", "id"), ("sprite_sessions", "id"), ("agents", "id")):
        expected = src.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
        assert query(url, f"SELECT * FROM {table} ORDER BY {key} COLLATE \"C\"") == expected
    # the schema is nitejarctl's own: migrate sees nothing to do, doctor is happy
    assert Run(url)("migrate", "status", "--check").exit_code == 0
    assert query(url, "SELECT data_type FROM information_schema.columns WHERE table_name = 'agent_memories' "
                      "AND column_name = 'strength'") == [("double precision",)]
    assert Run(url)("doctor").exit_code == 0
    assert query(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'nitejarctl_transfer'") == [(0,)]
    # a second transfer into it is refused: it has rows now
    again = transfer(sqlite_url, url)
    assert again.exit_code == 1 and "has rows" in again.stderr


def test_dry_run_changes_nothing(sqlite_url, pg):
    fill_nitejarctl(sqlite_url)
    url = empty_pg(pg)
    result = transfer(sqlite_url, url, "--dry-run")
    assert result.exit_code == 0, result.output
    assert {r["table"]: r["rows"] for r in json.loads(result.stdout)}["agent_memories"] == len(HOSTILE)
    assert query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_verify_only_names_the_table_that_differs(sqlite_url, pg):
    fill_nitejarctl(sqlite_url)
    url = empty_pg(pg)
    assert transfer(sqlite_url, url).exit_code == 0
    assert transfer(sqlite_url, url, "--verify-only").exit_code == 0
    query(url, "UPDATE sprite_sessions SET sprite_name = 'changed' WHERE id = 's3'")
    result = transfer(sqlite_url, url, "--verify-only")
    assert result.exit_code == 1
    assert "sprite_sessions: the same number of rows, but their values differ" in result.stderr
    query(url, "DELETE FROM agents")
    result = transfer(sqlite_url, url, "--verify-only")
    assert "agents: 1 rows in the source, 0 in the target" in result.stderr


def test_usage_errors(sqlite_url, pg, tmp_path):
    url = empty_pg(pg)
    assert transfer(sqlite_url, str(tmp_path / "x.db")).exit_code == 2
    assert Run(url)("transfer", "--to", url).exit_code == 2
    result = transfer(sqlite_url, url, "--only", "nope")
    assert result.exit_code == 2 and "no table 'nope'" in result.stderr
    result = transfer(sqlite_url, url, "--resume", "--verify-only")
    assert result.exit_code == 2


def test_password_is_never_printed(sqlite_url, pg):
    url = pg.url("postgres", PG_PASSWORD_USER, "wrong-" + PG_PASSWORD)
    result = transfer(sqlite_url, url)
    assert result.exit_code == 1
    assert "wrong-" + PG_PASSWORD not in result.output and "***" in result.stderr


# ---------------------------------------------------------- nitejar's schema


def one_row_everywhere(path: str) -> dict:
    """One row in every table of nitejar's schema, foreign keys pointing at
    the referenced tables' rows; returns {table: rows before}."""
    conn = sqlite3.connect(path)
    before = {}
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "AND name NOT LIKE 'sqlite_%'")]
    for table in tables:
        before[table] = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        if table.startswith("kysely_migration"):
            continue
        fks = {row[3]: (row[2], row[4]) for row in conn.execute(f'PRAGMA foreign_key_list("{table}")')}
        values = {}
        for _, name, declared, _, _, pk in conn.execute(f'PRAGMA table_info("{table}")'):
            declared = declared.upper()
            if name in fks:
                parent, column = fks[name]
                parent_type = [r[2].upper() for r in conn.execute(f'PRAGMA table_info("{parent}")')
                               if r[1] == (column or "id")][0]
                values[name] = 1 if "INT" in parent_type else f"{parent}-{column or 'id'}"
            elif "INT" in declared:
                values[name] = 1 if pk else 1_790_000_000
            elif "REAL" in declared:
                values[name] = 0.6552252021702392
            elif "BLOB" in declared:
                values[name] = b"\x00\x01\xfe\xff"
            else:
                values[name] = f"{table}-{name}"
        names = ", ".join(f'"{n}"' for n in values)
        conn.execute(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" for _ in values)})',
                     list(values.values()))
    conn.commit()
    conn.close()
    return before


def test_nitejar_database_every_table_arrives(upstream_url, pg):
    before = one_row_everywhere(upstream_url)
    url = empty_pg(pg)
    result = transfer(upstream_url, url)
    assert result.exit_code == 0, result.output
    report = {r["table"]: r for r in json.loads(result.stdout)}
    assert set(report) == set(before)  # every table, kysely_migration too
    assert all(r["verified"] for r in report.values())
    assert "foreign key" not in result.stderr  # every foreign key validated
    src = sqlite3.connect(upstream_url)
    for table in before:
        count = src.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        assert query(url, f'SELECT count(*) FROM "{table}"') == [(count,)], table
    assert len(query(url, "SELECT name FROM kysely_migration")) == before["kysely_migration"] > 0
    types = dict(((t, c), d) for t, c, d in query(
        url, "SELECT table_name, column_name, data_type FROM information_schema.columns "
             "WHERE table_schema = 'public'"))
    assert types[("agent_memories", "strength")] == "double precision"
    assert types[("agent_memories", "embedding")] == "bytea"
    assert types[("agents", "created_at")] == "integer"
    assert types[("kysely_migration", "name")] == "character varying"
    default = query(url, "SELECT column_default FROM information_schema.columns WHERE table_name = 'agents' "
                         "AND column_name = 'created_at'")[0][0]
    assert "extract(epoch from now())" in default.lower()
    assert query(url, "SELECT strength FROM agent_memories") == [(0.6552252021702392,)]
    assert query(url, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated") == [(0,)]
    nsqlite = src.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    named = {r[0] for r in query(url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    explicit = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    assert explicit <= named and len(explicit) == nsqlite.fetchone()[0]
    assert "WHERE (role = 'lead'::text)" in query(url, "SELECT indexdef FROM pg_indexes "
                                                       "WHERE indexname = 'idx_team_one_lead'")[0][0]
    # identity columns continue after the copied ids
    query(url, "INSERT INTO model_catalog (external_id, name, source) VALUES ('x', 'y', 'z')")
    assert query(url, "SELECT max(id) FROM model_catalog") == [(2,)]
    doctor = Run(url)("doctor")
    assert doctor.exit_code == 0 and "nitejar" in doctor.output


def test_orphans_are_copied_and_reported(upstream_url, pg):
    conn = sqlite3.connect(upstream_url)
    conn.execute("INSERT INTO messages (id, job_id, role, created_at) VALUES ('m1', 'no-such-job', 'user', 1)")
    conn.commit()
    conn.close()
    url = empty_pg(pg)
    result = transfer(upstream_url, url)
    assert result.exit_code == 0, result.output
    assert "foreign key" in result.stderr and "messages" in result.stderr and "NOT VALID" in result.stderr
    assert query(url, "SELECT id, job_id FROM messages") == [("m1", "no-such-job")]


# ---------------------------------------------------------------- bad values


def test_bad_values_are_reported_and_never_changed(sqlite_url, pg, tmp_path):
    fill_nitejarctl(sqlite_url)
    conn = sqlite3.connect(sqlite_url)
    conn.execute("INSERT INTO sprite_sessions VALUES ('bad-int', 'x', 's', 'k', 'a1', 'active', 'soon', 2)")
    conn.execute("INSERT INTO sprite_sessions VALUES ('bad-nul', ?, 's', 'k', 'a1', 'active', 1, 2)", ("a\x00b",))
    conn.execute("INSERT INTO sprite_sessions VALUES ('bad-utf8', CAST(X'66FF6F' AS TEXT), 's', 'k', 'a1', "
                 "'active', 1, 2)")
    conn.execute("INSERT INTO sprite_sessions VALUES ('bad-blob', X'6869', 's', 'k', 'a1', 'active', 1, 2)")
    conn.execute("INSERT INTO sprite_sessions VALUES ('good', 'x', 's', 'k', 'a1', 'active', 1, 2)")
    conn.commit()
    conn.close()
    url = empty_pg(pg)
    rejects = tmp_path / "rejects.tsv"
    result = transfer(sqlite_url, url, "--reject-file", rejects)
    assert result.exit_code == 1
    assert f"4 rows of sprite_sessions have values PostgreSQL cannot take (each listed in {rejects})" in result.stderr
    lines = rejects.read_text().splitlines()
    assert lines[0] == "table\tkey\tcolumn\tproblem\tvalue"
    found = {json.loads(line.split("\t")[1])["id"]: line.split("\t")[2:4] for line in lines[1:]}
    assert found == {"bad-int": ["created_at", "text in an integer column"],
                     "bad-nul": ["sprite_name", "NUL character in text"],
                     "bad-utf8": ["sprite_name", "invalid UTF-8 (byte 1)"],
                     "bad-blob": ["sprite_name", "blob in a text column"]}
    assert oct(rejects.stat().st_mode & 0o777) == "0o600"
    # the operator chooses to leave them out: the rest arrives, verified
    result = transfer(sqlite_url, url, "--resume", "--on-bad-value", "reject", "--reject-file", rejects)
    assert result.exit_code == 0, result.output
    assert "4 rows left out for bad values" in result.stderr
    ids = {r[0] for r in query(url, "SELECT id FROM sprite_sessions")}
    assert "good" in ids and not ids & {"bad-int", "bad-nul", "bad-utf8", "bad-blob"}
    assert len(ids) == len(HOSTILE) + 1


def test_values_an_integer_column_does_not_take_are_caught(sqlite_url, pg, tmp_path):
    """Blobs of digits, alone in their batch: sent as their text, PostgreSQL
    would take them, so they must be caught on the SQLite side."""
    fill_nitejarctl(sqlite_url)
    conn = sqlite3.connect(sqlite_url)
    for key, value in [("blob", b"1"), ("blob2", b"42")]:
        conn.execute("INSERT INTO sprite_sessions VALUES (?, 'x', 's', 'k', 'a1', 'active', ?, 2)", (key, value))
    conn.commit()
    conn.close()
    rejects = tmp_path / "rejects.tsv"
    result = transfer(sqlite_url, empty_pg(pg), "--reject-file", rejects)
    assert result.exit_code == 1
    found = {json.loads(line.split("\t")[1])["id"]: line.split("\t")[2:4]
             for line in rejects.read_text().splitlines()[1:]}
    assert found == {"blob": ["created_at", "blob in an integer column"],
                     "blob2": ["created_at", "blob in an integer column"]}


# ------------------------------------------------- resumable, and beside nitejar


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("transfer") / "small.db"
    generator().generate(str(path), "small", 1)
    return path


def nitejarctl() -> list[str]:
    exe = shutil.which("nitejarctl")
    return [exe] if exe else [sys.executable, "-m", "nitejarctl"]


def dump(url: str, tables) -> dict:
    return {t: sorted(query(url, f'SELECT * FROM "{t}"'), key=repr) for t in tables}


def schema(url: str) -> list:
    """Every index and constraint, as PostgreSQL defines them."""
    return sorted(query(url, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'")) + sorted(query(
        url, "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
             "WHERE connamespace = 'public'::regnamespace"))


def test_sigkill_at_random_moments_then_resume(generated, pg, tmp_path):
    """Each round: a transfer killed at a random moment, resumed and killed
    again until one run ends by itself; the target then holds exactly what an
    uninterrupted transfer writes."""
    source = str(tmp_path / "src.db")
    shutil.copyfile(generated, source)
    reference = empty_pg(pg)
    started = time.monotonic()
    subprocess.run([*nitejarctl(), "-d", source, "-q", "transfer", "--to", reference], check=True,
                   stdout=subprocess.DEVNULL)
    duration = time.monotonic() - started  # kills fall anywhere in a run: start, schema, copy, keys, end
    tables = [r[0] for r in query(reference, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                             "AND tablename <> 'nitejarctl_migrations'")]
    expected = dump(reference, tables), schema(reference)
    rng = random.Random(int(os.environ.get("NITEJARCTL_RELIABILITY_SEED", "17")))
    kills = 0
    while kills < KILLS:
        url, resume = empty_pg(pg), []
        while True:
            proc = subprocess.Popen([*nitejarctl(), "-d", source, "-q", "transfer", "--to", url, *resume],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                proc.wait(timeout=rng.uniform(0.05, 1.0) * duration)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
            resume = ["--resume"]
            if proc.returncode == 0:
                break
            assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        assert (dump(url, tables), schema(url)) == expected
        assert transfer(source, url, "--verify-only").exit_code == 0


def test_beside_a_nitejar_writer(generated, pg, tmp_path):
    source = str(tmp_path / "src.db")
    shutil.copyfile(generated, source)
    assert sqlite3.connect(source).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    stop, out = tmp_path / "stop", tmp_path / "writer.json"

    def messages() -> int:
        conn = sqlite3.connect(source)
        try:
            return conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        finally:
            conn.close()

    before = messages()
    writer = subprocess.Popen([sys.executable, "-m", "tests.helpers.nitejar_writer", source, "--seconds", "120",
                               "--stop-file", str(stop), "--out", str(out), "--pause", "0.002"], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while messages() == before:  # the writer has committed, however busy the machine
            assert writer.poll() is None and time.monotonic() < deadline, "the writer committed nothing"
            time.sleep(0.05)
        time.sleep(0.5)
        url = empty_pg(pg)
        done = subprocess.run([*nitejarctl(), "-d", source, "transfer", "--to", url, "-o", "json"],
                              capture_output=True, text=True)
        time.sleep(0.3)
    finally:
        stop.write_text("")
        writer.wait(timeout=60)
    written = json.loads(out.read_text())
    assert done.returncode == 0, done.stderr
    assert "writes after this moment are not included" in done.stderr
    assert written["failures"] == [] and written["committed"] > 0
    inserted = set(written["inserted"])
    arrived = {r[0] for r in query(url, "SELECT id FROM messages")}
    assert arrived & inserted and inserted - arrived  # a snapshot: some of the writer's messages, not all
    later = subprocess.run([*nitejarctl(), "-d", source, "transfer", "--to", url, "--verify-only"],
                           capture_output=True, text=True)
    assert later.returncode == 1 and "messages:" in later.stderr


def test_a_target_with_the_schema_is_checked_and_used(sqlite_url, pg_url):
    fill_nitejarctl(sqlite_url)
    query(pg_url, "ALTER TABLE agents ADD COLUMN note text")  # extra nullable columns are fine
    result = transfer(sqlite_url, pg_url)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {r["action"] for r in report} == {"existing"} and all(r["verified"] for r in report)
    assert Run(pg_url)("migrate", "status", "--check").exit_code == 0  # its indexes are back


def test_a_target_whose_columns_do_not_fit_is_refused(sqlite_url, pg, pg_url):
    query(pg_url, "ALTER TABLE agents ALTER COLUMN config TYPE jsonb USING config::jsonb")
    query(pg_url, "ALTER TABLE sprite_sessions DROP COLUMN sprite_name")
    result = transfer(sqlite_url, pg_url)
    assert result.exit_code == 1
    assert "agents.config is jsonb in the target, which transfer does not fill" in result.stderr
    assert "sprite_sessions.sprite_name is missing in the target" in result.stderr
    assert query(pg_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'nitejarctl_transfer'") == [(0,)]


def test_a_progress_bar_per_table_with_its_rate(sqlite_url, pg):
    from nitejarctl.cli.context import Settings

    fill_nitejarctl(sqlite_url)
    url = empty_pg(pg)
    result = Run(sqlite_url)("transfer", "--to", url, "-o", "json",
                             settings=Settings(stderr_terminal=True, progress_delay=0))
    assert result.exit_code == 0, result.output
    assert "rows/s" in result.stderr and "agent_memories" in result.stderr
    assert all(r["verified"] for r in json.loads(result.stdout))  # stdout is the data alone
