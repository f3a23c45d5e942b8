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


# ------------------------------------------------------------------ size


def test_size_and_largest_tables(run, db, backend, db_url):
    import os
    import secrets

    a = f.agent("ops")
    for _ in range(100):
        f.memory(a["id"], secrets.token_hex(1500))  # not compressible: PostgreSQL's TOAST keeps its size
    report = json.loads(run("doctor", "-o", "json").stdout)
    size = report["size"]
    largest = report["largest_tables"]
    assert largest[0] == {"table": "agent_memories", "bytes": report["table_bytes"]["agent_memories"]}
    assert largest[0]["bytes"] > 200_000 and len(largest) == 10
    assert [t["bytes"] for t in largest] == sorted((t["bytes"] for t in largest), reverse=True)
    assert report["notices"] == []
    if backend == "sqlite":
        assert size["bytes"] == os.path.getsize(db_url)
        assert size["wal_bytes"] == (os.path.getsize(db_url + "-wal") if os.path.exists(db_url + "-wal") else 0)
        assert size["reclaimable_bytes"] == size["free_pages"] * size["page_size"] == 0
    else:
        assert size["bytes"] > largest[0]["bytes"]
        assert size["wal_bytes"] is None and size["reclaimable_bytes"] is None
    text = run("doctor", "-o", "table").stdout
    assert "bytes         agent_memories" in text and "size          " in text


def test_a_notice_past_a_quarter_reclaimable(sqlite_url):
    f.free_pages(sqlite_url, 1000)
    result = Run(sqlite_url)("doctor", "-o", "json")
    assert result.exit_code == 0  # a notice, not a problem
    report = json.loads(result.stdout)
    share = report["size"]["reclaimable_bytes"] / report["size"]["bytes"]
    assert share > 0.25
    (notice,) = report["notices"]
    assert notice.startswith(f"{share:.0%} of the file (") and "'nitejarctl vacuum' gives them back" in notice
    assert "vacuum --into PATH" in notice
    assert f"notice        {notice}\n" in Run(sqlite_url)("doctor", "-o", "tsv").stdout


# ------------------------------------------------------------- prometheus


def families(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family) -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


@freeze_time("2026-09-21 14:13:20")  # NOW
def test_prometheus_metrics(run, db, backend):
    a = f.agent("ops")
    f.sprite_session(a["id"], last_active_at=NOW - 7200)
    f.sprite_session(a["id"], last_active_at=NOW - 60)
    f.sprite_session(a["id"], status="closed", last_active_at=NOW - 7200)
    f.conversation("k1", a["id"], [("user", "hi"), ("assistant", "yo")], start=NOW - 7200)
    result = run("doctor", "-o", "prometheus")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    found = families(text)
    for name, family in found.items():  # every metric has its HELP and TYPE lines
        assert f"# HELP {name} " in text and f"# TYPE {name} gauge\n" in text and family.documentation
    assert samples(found["nitejar_db_up"]) == {(): 1} and samples(found["nitejar_db_ok"]) == {(): 1}
    assert samples(found["nitejar_db_problems"]) == {(): 0}
    assert samples(found["nitejar_db_rows"])[(("table", "sprite_sessions"),)] == 3
    assert samples(found["nitejar_db_rows"])[(("table", "messages"),)] == 2
    assert len(found["nitejar_db_rows"].samples) == 10
    assert samples(found["nitejar_sprite_sessions"]) == {
        (("status", "active"),): 2, (("status", "closed"),): 1, (("status", "error"),): 0}
    assert samples(found["nitejar_sprite_sessions_stale"]) == {(): 1}
    assert samples(found["nitejar_conversations_idle"]) == {(): 1}
    assert samples(found["nitejar_db_size_bytes"])[()] > 0
    info = found["nitejar_db_info"].samples[0].labels
    assert info["backend"] == backend and info["nitejar_managed"] == "false"
    assert samples(found["nitejar_db_table_bytes"])[(("table", "agents"),)] > 0
    if backend == "sqlite":
        assert samples(found["nitejar_db_reclaimable_bytes"]) == {(): 0}
        assert "nitejar_db_wal_bytes" in found
    else:
        assert "nitejar_db_reclaimable_bytes" not in found and "nitejar_db_wal_bytes" not in found
    assert result.stderr == ""


def test_prometheus_problems_and_odd_table_names(sqlite_url):
    conn = sqlite3.connect(sqlite_url)
    odd = 'we"ird\\name\nwith newline'
    conn.execute('CREATE TABLE "we""ird\\name\nwith newline" (x)')
    conn.execute('DROP INDEX "idx_sprite_sessions_status"')
    conn.execute("INSERT INTO messages (id, job_id, role) VALUES ('m-1', 'gone', 'user')")  # keys not enforced
    conn.commit()
    conn.close()
    result = Run(sqlite_url)("doctor", "-o", "prometheus")
    assert result.exit_code == 1 and result.stderr == ""
    found = families(result.stdout)
    assert samples(found["nitejar_db_ok"]) == {(): 0} and samples(found["nitejar_db_problems"]) == {(): 1}
    assert samples(found["nitejar_db_up"]) == {(): 1}
    assert (("table", odd),) in samples(found["nitejar_db_table_bytes"])
    assert samples(found["nitejar_db_orphans"]) == {(("key", "messages.job_id"),): 1}


def test_prometheus_when_the_database_is_unreachable(tmp_path):
    result = Run(str(tmp_path / "missing.db"))("doctor", "-o", "prometheus")
    assert result.exit_code == 1
    assert samples(families(result.stdout)["nitejar_db_up"]) == {(): 0}
    assert result.stderr.startswith("Error: database file ")
    down = Run("postgresql://nobody@127.0.0.1:1/x")("doctor", "-o", "prometheus")
    assert down.exit_code == 1 and samples(families(down.stdout)["nitejar_db_up"]) == {(): 0}


def test_prometheus_is_for_doctor_alone(run, db):
    before = run("sessions", "list", "-o", "ids").stdout
    for args in (("sessions", "close", "--stale", "1s"), ("agents", "list"), ("migrate", "status")):
        result = run(*args, "-o", "prometheus")
        assert (result.exit_code, result.stderr) == (2, "Error: -o prometheus is only for doctor\n"), args
    assert run("sessions", "list", "-o", "ids").stdout == before
