"""migrate, migrate status, migrate --sql / --backup: the schema on both backends,
compared with the live catalogue (not with the models)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from nitejarctl.db import open_database, parse_url
from tests.conftest import Run

EXPECTED_COLUMNS = {
    "agents": [("id", "text", False), ("name", "text", True), ("sprite_id", "text", False),
               ("config", "text", False), ("status", "text", True), ("created_at", "integer", True),
               ("updated_at", "integer", True)],
    "integrations": [("id", "text", False), ("type", "text", True), ("name", "text", True),
                     ("config", "text", False), ("scope", "text", True), ("enabled", "integer", True),
                     ("created_at", "integer", True), ("updated_at", "integer", True)],
    "agent_integrations": [("agent_id", "text", True), ("integration_id", "text", True),
                           ("created_at", "integer", True)],
    "work_items": [("id", "text", False), ("integration_id", "text", False),
                   ("session_key", "text", True), ("source", "text", True),
                   ("source_ref", "text", True), ("status", "text", True), ("title", "text", True),
                   ("payload", "text", False), ("created_at", "integer", True),
                   ("updated_at", "integer", True)],
    "jobs": [("id", "text", False), ("work_item_id", "text", True), ("agent_id", "text", True),
             ("status", "text", True), ("error_text", "text", False), ("started_at", "integer", False),
             ("completed_at", "integer", False), ("created_at", "integer", True),
             ("updated_at", "integer", True)],
    "messages": [("id", "text", False), ("job_id", "text", True), ("role", "text", True),
                 ("content", "text", False), ("embedding", "blob", False),
                 ("created_at", "integer", True)],
    "agent_memories": [("id", "text", False), ("agent_id", "text", True), ("content", "text", True),
                       ("embedding", "blob", False), ("strength", "real", True),
                       ("access_count", "integer", True), ("permanent", "integer", True),
                       ("last_accessed_at", "integer", False), ("created_at", "integer", True),
                       ("updated_at", "integer", True)],
    "session_summaries": [("id", "text", False), ("session_key", "text", True),
                          ("agent_id", "text", True), ("summary", "text", True),
                          ("turn_count", "integer", True), ("start_time", "integer", True),
                          ("end_time", "integer", True), ("embedding", "blob", False),
                          ("compacted_at", "integer", True)],
    "sprite_sessions": [("id", "text", False), ("sprite_name", "text", True),
                        ("session_id", "text", True), ("session_key", "text", True),
                        ("agent_id", "text", True), ("status", "text", True),
                        ("created_at", "integer", True), ("last_active_at", "integer", True)],
    "idempotency_keys": [("key", "text", False), ("work_item_id", "text", False),
                         ("created_at", "integer", True)],
}

EXPECTED_INDEXES = {
    "idx_work_items_integration": ("work_items", ["integration_id"]),
    "idx_work_items_status": ("work_items", ["status"]),
    "idx_work_items_session_key": ("work_items", ["session_key"]),
    "idx_jobs_work_item": ("jobs", ["work_item_id"]),
    "idx_jobs_agent": ("jobs", ["agent_id"]),
    "idx_messages_job": ("messages", ["job_id"]),
    "idx_agent_memories_agent": ("agent_memories", ["agent_id"]),
    "idx_agent_memories_strength": ("agent_memories", ["agent_id", "strength"]),
    "idx_session_summaries_session_key": ("session_summaries", ["session_key"]),
    "idx_session_summaries_agent": ("session_summaries", ["agent_id"]),
    "idx_sprite_sessions_session_key_agent": ("sprite_sessions", ["session_key", "agent_id"]),
    "idx_sprite_sessions_status": ("sprite_sessions", ["status"]),
    "idx_sprite_sessions_sprite_name": ("sprite_sessions", ["sprite_name"]),
}

EXPECTED_FKS = {
    ("agent_integrations", "agent_id", "agents", "CASCADE"),
    ("agent_integrations", "integration_id", "integrations", "CASCADE"),
    ("work_items", "integration_id", "integrations", "NO ACTION"),
    ("jobs", "work_item_id", "work_items", "CASCADE"),
    ("jobs", "agent_id", "agents", "CASCADE"),
    ("messages", "job_id", "jobs", "CASCADE"),
    ("agent_memories", "agent_id", "agents", "CASCADE"),
    ("session_summaries", "agent_id", "agents", "CASCADE"),
    ("idempotency_keys", "work_item_id", "work_items", "CASCADE"),
}

PG_TYPES = {"text": "text", "integer": "integer", "real": "double precision", "blob": "bytea"}

# Column defaults, as each backend's catalogue spells them.
SQLITE_DEFAULTS = {("agents", "status"): "'idle'", ("integrations", "scope"): "'global'",
                   ("integrations", "enabled"): "1", ("work_items", "status"): "'NEW'",
                   ("jobs", "status"): "'PENDING'", ("agent_memories", "strength"): "1.0",
                   ("agent_memories", "access_count"): "0", ("agent_memories", "permanent"): "0",
                   ("sprite_sessions", "status"): "'active'"}
NOW_COLUMNS = {("agents", "created_at"), ("agents", "updated_at"), ("integrations", "created_at"),
               ("integrations", "updated_at"), ("agent_integrations", "created_at"),
               ("work_items", "created_at"), ("work_items", "updated_at"), ("jobs", "created_at"),
               ("jobs", "updated_at"), ("messages", "created_at"), ("agent_memories", "created_at"),
               ("agent_memories", "updated_at"), ("session_summaries", "compacted_at"),
               ("sprite_sessions", "created_at"), ("sprite_sessions", "last_active_at"),
               ("idempotency_keys", "created_at")}


def sqlite_catalogue(path):
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    columns, defaults, fks, pks = {}, {}, set(), {}
    for table in EXPECTED_COLUMNS:
        info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        columns[table] = [(r[1], r[2].lower(), bool(r[3])) for r in info]
        pks[table] = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
        for r in info:
            if r[4] is not None:
                defaults[(table, r[1])] = r[4]
        for fk in conn.execute(f'PRAGMA foreign_key_list("{table}")'):
            fks.add((table, fk[3], fk[2], fk[6]))
    indexes = {}
    for name, table in conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type='index' "
                                    "AND name LIKE 'idx_%'"):
        indexes[name] = (table, [r[2] for r in conn.execute(f'PRAGMA index_info("{name}")')])
    unique_name = any(
        row[2] and [c[2] for c in conn.execute(f'PRAGMA index_info("{row[1]}")')] == ["name"]
        for row in conn.execute('PRAGMA index_list("agents")'))
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    return dict(tables=tables, columns=columns, defaults=defaults, fks=fks, pks=pks,
                indexes=indexes, unique_name=unique_name, journal=journal)


def pg_catalogue(url):
    import psycopg2

    conn = psycopg2.connect(url)
    cur = conn.cursor()
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    tables = {r[0] for r in cur.fetchall()}
    columns, defaults = {}, {}
    for table in EXPECTED_COLUMNS:
        cur.execute("SELECT column_name, data_type, is_nullable, column_default FROM "
                    "information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                    (table,))
        rows = cur.fetchall()
        columns[table] = [(r[0], r[1], r[2] == "NO") for r in rows]
        for r in rows:
            if r[3] is not None:
                defaults[(table, r[0])] = r[3]
    cur.execute("""
        SELECT tc.table_name, kcu.column_name, ccu.table_name, rc.delete_rule
        FROM information_schema.table_constraints tc
        JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name
        JOIN information_schema.constraint_column_usage ccu ON tc.constraint_name = ccu.constraint_name
        JOIN information_schema.referential_constraints rc ON tc.constraint_name = rc.constraint_name
        WHERE tc.constraint_type = 'FOREIGN KEY'""")
    fks = set(cur.fetchall())
    cur.execute("""
        SELECT i.relname, t.relname, array_agg(a.attname ORDER BY k.ord)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
        WHERE i.relname LIKE 'idx_%' GROUP BY i.relname, t.relname""")
    indexes = {r[0]: (r[1], list(r[2])) for r in cur.fetchall()}
    cur.execute("""SELECT a.attname FROM pg_index x JOIN pg_attribute a
                   ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey)
                   WHERE x.indrelid = 'agent_integrations'::regclass AND x.indisprimary""")
    pk = sorted(r[0] for r in cur.fetchall())
    cur.execute("""SELECT count(*) FROM pg_index x WHERE x.indrelid = 'agents'::regclass
                   AND x.indisunique AND NOT x.indisprimary""")
    unique_name = cur.fetchone()[0] == 1
    conn.close()
    return dict(tables=tables, columns=columns, defaults=defaults, fks=fks, pk=pk,
                indexes=indexes, unique_name=unique_name)


def assert_exact_schema(backend, url):
    if backend == "sqlite":
        cat = sqlite_catalogue(url)
        assert cat["journal"] == "wal"
        for table, cols in EXPECTED_COLUMNS.items():
            # SQLite reports a text primary key as nullable (a historical quirk).
            assert cat["columns"][table] == cols, table
        for (table, column), default in SQLITE_DEFAULTS.items():
            assert cat["defaults"][(table, column)] == default
        for key in NOW_COLUMNS:
            assert cat["defaults"][key] == "unixepoch()"
        assert cat["pks"]["agent_integrations"] == ["agent_id", "integration_id"]
        assert all(cat["pks"][t] == [cols[0][0]] for t, cols in EXPECTED_COLUMNS.items()
                   if t != "agent_integrations")
    else:
        cat = pg_catalogue(url)
        for table, cols in EXPECTED_COLUMNS.items():
            pk = {"agent_integrations": ()}.get(table, (cols[0][0],))
            expected = [(n, PG_TYPES[t], nn or n in pk or table == "agent_integrations")
                        for n, t, nn in cols]
            assert cat["columns"][table] == expected, table
        for (table, column), default in SQLITE_DEFAULTS.items():
            assert cat["defaults"][(table, column)].split("::")[0] in (default, default + "::text")
        for key in NOW_COLUMNS:
            assert "EXTRACT(epoch FROM now())" in cat["defaults"][key], key
        assert cat["pk"] == ["agent_id", "integration_id"]
    assert set(EXPECTED_COLUMNS) <= cat["tables"]
    assert cat["tables"] - set(EXPECTED_COLUMNS) == {"nitejarctl_migrations"}
    assert cat["indexes"] == EXPECTED_INDEXES
    assert cat["fks"] == EXPECTED_FKS
    assert cat["unique_name"]


def test_migrate_creates_exact_schema_and_is_idempotent(backend, empty_url):
    run = Run(empty_url)
    first = run("migrate")
    assert first.exit_code == 0, first.stderr
    assert "applied m001_initial_schema" in first.stderr
    assert_exact_schema(backend, empty_url)
    second = run("migrate")
    assert second.exit_code == 0
    assert "applied" not in second.stderr
    assert second.stderr.strip().endswith("schema is up to date; nothing to do")
    assert_exact_schema(backend, empty_url)


def test_migrate_json_report(empty_url):
    result = Run(empty_url)("migrate", "-o", "json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["applied"] == ["m001_initial_schema"]
    assert report["changed"] is True
    again = json.loads(Run(empty_url)("migrate", "-o", "json", "-q").stdout)
    assert again["applied"] == [] and again["changed"] is False


def test_migrate_status_and_check(empty_url, backend):
    run = Run(empty_url)
    if backend == "sqlite":
        # An empty SQLite file: not missing, but nothing applied yet.
        sqlite3.connect(empty_url).close()
    pending = run("migrate", "status", "--check", "-o", "json")
    assert pending.exit_code == 1
    assert json.loads(pending.stdout)["pending"] == ["m001_initial_schema"]
    assert pending.stderr == "Error: 1 pending change(s): run 'nitejarctl migrate'\n"
    assert run("migrate").exit_code == 0
    done = run("migrate", "status", "--check", "-o", "tsv")
    assert done.exit_code == 0
    name, state, applied_at = done.stdout.splitlines()[1].split("\t")
    assert (name, state) == ("m001_initial_schema", "applied") and int(applied_at) > 0


def test_migrate_adds_missing_columns_and_indexes(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE agents ("id" text primary key, "name" text not null unique,
            "config" text, "status" text default 'idle' not null,
            "created_at" integer default (unixepoch()) not null);
        INSERT INTO agents (id, name) VALUES ('a1', 'old-agent');
    """)
    conn.close()
    result = Run(str(path))("migrate")
    assert result.exit_code == 0, result.stderr
    assert "added column agents.sprite_id" in result.stderr
    assert "added column agents.updated_at" in result.stderr
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(agents)")]
    assert cols == ["id", "name", "config", "status", "created_at", "sprite_id", "updated_at"]
    row = sqlite3.connect(path).execute("SELECT name, updated_at FROM agents").fetchone()
    assert row == ("old-agent", 0)
    status = Run(str(path))("migrate", "status", "--check")
    assert status.exit_code == 0


def test_migrate_sql_prints_ddl_and_touches_nothing(tmp_path):
    path = tmp_path / "never.db"
    result = Run(str(path))("migrate", "--sql")
    assert result.exit_code == 0
    assert result.stdout.count("CREATE TABLE") == 10
    assert result.stdout.count("CREATE INDEX") == 13
    assert "(unixepoch())" in result.stdout
    assert not path.exists() and not path.parent.joinpath("data").exists()
    pg = Run("postgresql://ops:hunter2@db.invalid:5432/nitejar")("migrate", "--sql")
    assert pg.exit_code == 0
    assert "extract(epoch from now())::integer" in pg.stdout and "bytea" in pg.stdout
    assert "double precision" in pg.stdout


def test_migrate_backup(tmp_path):
    path = tmp_path / "b.db"
    sqlite3.connect(path).execute("CREATE TABLE keepme (x)").connection.commit()
    result = Run(str(path))("migrate", "--backup")
    assert result.exit_code == 0, result.stderr
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("b.db.") and p.name.endswith(".bak")]
    assert len(backups) == 1
    tables = {r[0] for r in sqlite3.connect(backups[0]).execute("SELECT name FROM sqlite_master")}
    assert tables == {"keepme"}
    assert f"backup written to {backups[0]}" in result.stderr


def test_migrate_backup_refused_on_postgres():
    result = Run("postgresql://u@127.0.0.1:1/x")("migrate", "--backup")
    assert result.exit_code == 2
    assert result.stderr == "Error: --backup is for SQLite databases (use pg_dump for PostgreSQL)\n"


def test_migrate_refuses_nitejar_managed_database(upstream_url):
    before = _dump(upstream_url)
    result = Run(upstream_url)("migrate")
    assert result.exit_code == 1
    assert result.stderr == ("Error: this database is managed by nitejar's migrator (74 of its "
                             "migrations applied); nitejarctl migrate does not alter its schema\n")
    assert _dump(upstream_url) == before
    status = Run(upstream_url)("migrate", "status", "--check", "-o", "json")
    assert status.exit_code == 0
    report = json.loads(status.stdout)
    assert report["nitejar_managed"] is True and report["nitejar_migrations"] == 74


def _dump(path):
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def _migrate_proc(url):
    return subprocess.Popen([sys.executable, "-m", "nitejarctl", "migrate", "-d", url, "-o", "json", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_migrate_applies_once(backend, empty_url):
    procs = [_migrate_proc(empty_url) for _ in range(4)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    applied = [json.loads(out)["applied"] for _, out, _ in results]
    assert sorted(applied, key=len) == [[], [], [], ["m001_initial_schema"]]
    db = open_database(parse_url(empty_url))
    try:
        rows = db.execute_sql("SELECT name FROM nitejarctl_migrations").fetchall()
    finally:
        db.close()
    assert rows == [("m001_initial_schema",)]
    assert_exact_schema(backend, empty_url)


def test_migrate_creates_parent_directory(tmp_path):
    path = tmp_path / "deep" / "er" / "nitejar.db"
    assert Run(str(path))("migrate").exit_code == 0
    assert path.exists()


@pytest.mark.parametrize("url_form", ["sqlite:///{rel}", "{abs}", "sqlite:///{abs}"])
def test_sqlite_url_forms(tmp_path, url_form, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = url_form.format(rel="rel/x.db", abs=str(tmp_path / "abs.db"))
    assert Run(url)("migrate").exit_code == 0
    expected = tmp_path / ("rel/x.db" if "{rel}" in url_form else "abs.db")
    assert expected.exists()


def test_default_path_and_env_resolution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NITEJAR_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    run = Run(None)
    assert run("migrate").exit_code == 0
    assert (tmp_path / "data" / "nitejar.db").exists()
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "from-database-url.db"))
    assert run("migrate").exit_code == 0
    assert (tmp_path / "from-database-url.db").exists()
    monkeypatch.setenv("NITEJAR_DATABASE_URL", str(tmp_path / "from-nitejar.db"))
    assert run("migrate").exit_code == 0
    assert (tmp_path / "from-nitejar.db").exists()
    assert run("migrate", "-d", str(tmp_path / "from-option.db")).exit_code == 0
    assert (tmp_path / "from-option.db").exists()
    assert os.path.getsize(tmp_path / "from-option.db") > 0
