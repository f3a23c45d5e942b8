"""doctor / status."""

import json
import sqlite3

from freezegun import freeze_time

from tests import factories as f
from tests.conftest import Run

NOW = 1_790_000_000


def test_healthy_database(run, db, backend):
    result = run("doctor", "-o", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["backend"] == backend
    assert report["nitejar_managed"] is False
    assert report["pending_migrations"] == []
    assert report["drift"]["missing_tables"] == [] and report["drift"]["missing_columns"] == []
    assert report["counts"] == {t: 0 for t in (
        "agents", "integrations", "agent_integrations", "work_items", "jobs", "messages",
        "agent_memories", "session_summaries", "sprite_sessions", "idempotency_keys")}
    if backend == "sqlite":
        assert report["sqlite"]["journal_mode"] == "wal"
        assert report["sqlite"]["integrity"] == "ok"


def test_status_is_an_alias(run, db):
    assert json.loads(run("status", "-o", "json").stdout)["ok"] is True


@freeze_time("2026-09-21 14:13:20")  # NOW
def test_counts_stale_sessions_and_idle_conversations(run, db):
    a = f.agent("ops")
    f.sprite_session(a["id"], last_active_at=NOW - 7200)
    f.sprite_session(a["id"], last_active_at=NOW - 60)
    f.sprite_session(a["id"], status="closed", last_active_at=NOW - 7200)
    f.conversation("k1", a["id"], [("user", "hi"), ("assistant", "yo")], start=NOW - 7200)
    f.conversation("k2", a["id"], [("user", "hi")], start=NOW - 60)
    report = json.loads(run("doctor", "-o", "json").stdout)
    assert report["stale_sessions"] == 1
    assert report["idle_conversations"] == 1
    assert report["counts"]["sprite_sessions"] == 3
    loose = json.loads(run("doctor", "--stale", "30s", "--idle", "30s", "-o", "json").stdout)
    assert loose["stale_sessions"] == 2 and loose["idle_conversations"] == 2


def test_nitejar_managed_database_is_healthy(upstream_url):
    result = Run(upstream_url)("doctor", "-o", "json")
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["nitejar_managed"] is True
    assert report["nitejar_migrations"] == 74
    assert report["problems"] == []
    assert "integrations" not in report["counts"]
    assert "agents.handle" in report["drift"]["extra_columns"]
    text = Run(upstream_url)("doctor", "-o", "table")
    assert "managed by    nitejar's migrator (74 migrations applied)" in text.stdout


def test_empty_database_reports_problems(empty_url, backend):
    if backend == "sqlite":
        sqlite3.connect(empty_url).close()
    result = Run(empty_url)("doctor", "-o", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert len(report["drift"]["missing_tables"]) == 10
    assert "pending migrations: m001_initial_schema" in report["problems"]
    assert result.stderr == ""


def test_drift_detects_missing_index(run, db):
    db.execute_sql('DROP INDEX "idx_sprite_sessions_status"')
    result = run("doctor", "-o", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["problems"] == ["missing index idx_sprite_sessions_status"]
    assert run("migrate").exit_code == 0
    assert run("doctor", "-o", "json").exit_code == 0


def test_table_output_lists_problems(run, db):
    db.execute_sql('DROP INDEX "idx_messages_job"')
    result = run("doctor", "-o", "table", "--no-color")
    assert result.exit_code == 1
    assert "PROBLEM       missing index idx_messages_job" in result.stdout
    assert result.stdout.rstrip().endswith("1 problem(s) found")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.db"
    result = Run(str(path))("doctor")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: database file {path} does not exist (run 'nitejarctl migrate' "
                             "to create it, or pass -d/--database-url)\n")
    assert not path.exists()
