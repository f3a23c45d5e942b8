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
    assert "PROBLEM       missing index idx_messages_job — run 'nitejarctl migrate'\n" in result.stdout
    assert result.stdout.rstrip().endswith("\n1 problem found")
    assert "\x1b[" not in result.stdout


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
    assert notice.startswith(f"{share:.0%} of the file (") and notice.endswith(") is free pages")
    (found,) = report["findings"]
    assert found["code"] == "reclaimable" and found["message"] == notice
    assert "'nitejarctl vacuum' gives them back" in found["remedy"] and "vacuum --into PATH" in found["remedy"]
    assert f"notice        {notice} — {found['remedy']}\n" in Run(sqlite_url)("doctor", "-o", "table",
                                                                               env={"COLUMNS": "400"}).stdout
    assert f"notice\treclaimable\t{notice}\t{found['remedy']}\n" in Run(sqlite_url)("doctor", "-o", "tsv").stdout


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


# ------------------------------------------------------- remedies and formats


@freeze_time("2026-09-21 14:13:20")  # NOW
def test_every_finding_carries_its_remedy(run, db):
    a = f.agent("ops")
    for _ in range(3):
        f.sprite_session(a["id"], last_active_at=NOW - 7200)
    f.conversation("k1", a["id"], [("user", "hi"), ("assistant", "yo")], start=NOW - 7200)
    db.execute_sql('DROP INDEX "idx_messages_job"')
    result = run("doctor", "-o", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["findings"] == [
        {"level": "problem", "code": "missing_index", "message": "missing index idx_messages_job",
         "remedy": "run 'nitejarctl migrate'"},
        {"level": "notice", "code": "stale_sessions",
         "message": "3 stale sprite sessions (active, last active over 1h ago)",
         "remedy": "'nitejarctl sessions close --stale 1h' or 'nitejarctl cleanup'"},
        {"level": "notice", "code": "idle_conversations", "message": "1 idle conversation not compacted "
         "(idle over 30m)", "remedy": "'nitejarctl compaction run --idle 30m' or 'nitejarctl cleanup'"}]
    assert report["problems"] == ["missing index idx_messages_job"]
    assert report["notices"] == [x["message"] for x in report["findings"][1:]]
    text = run("doctor", "-o", "table", env={"COLUMNS": "200"}).stdout
    assert ("notice        3 stale sprite sessions (active, last active over 1h ago) — "
            "'nitejarctl sessions close --stale 1h' or 'nitejarctl cleanup'\n") in text
    # The remedy follows the thresholds doctor was given.
    loose = json.loads(run("doctor", "--stale", "90m", "--idle", "2h", "-o", "json").stdout)
    assert [x["remedy"] for x in loose["findings"][1:]] == [
        "'nitejarctl sessions close --stale 1h30m' or 'nitejarctl cleanup --stale 1h30m'"]
    # Once the remedies are applied, nothing is left to say.
    assert run("migrate").exit_code == 0
    assert run("cleanup").exit_code == 0
    healthy = json.loads(run("doctor", "-o", "json").stdout)
    assert (healthy["findings"], healthy["ok"]) == ([], True)


def test_a_nitejar_managed_database_is_not_sent_to_migrate(upstream_url):
    conn = sqlite3.connect(upstream_url)
    conn.execute('DROP INDEX "idx_sprite_sessions_status"')
    conn.commit()
    conn.close()
    result = Run(upstream_url)("doctor", "-o", "json")
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["findings"]
    assert problem["code"] == "missing_index" and "nitejar's migrator" in problem["remedy"]
    assert "nitejarctl migrate" not in problem["remedy"]


def test_machine_formats(run, db, backend):
    import csv
    import io

    db.execute_sql('DROP INDEX "idx_messages_job"')
    f.agent("ops")
    report = json.loads(run("doctor", "-o", "json").stdout)
    tsv = run("doctor", "-o", "tsv")
    assert tsv.exit_code == 1 and tsv.stderr == ""
    lines = tsv.stdout.splitlines()
    assert lines[0] == "kind\tname\tvalue\tremedy"
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == 4 for r in rows)
    by = {(r[0], r[1]): r for r in rows}
    assert by[("database", "url")][2] == report["database"]
    assert by[("backend", backend)][2] == report["server_version"]
    assert {r[1]: int(r[2]) for r in rows if r[0] == "rows"} == report["counts"]
    assert by[("rows", "agents")][2] == "1"
    assert by[("problem", "missing_index")] == ["problem", "missing_index", "missing index idx_messages_job",
                                                "run 'nitejarctl migrate'"]
    assert rows[-1] == ["ok", "problems", "1", ""]
    assert int(by[("size", "bytes")][2]) == report["size"]["bytes"]
    parsed = list(csv.DictReader(io.StringIO(run("doctor", "-o", "csv").stdout)))
    assert [[r["kind"], r["name"], r["value"], r["remedy"]] for r in parsed] == rows
    jsonl = [json.loads(line) for line in run("doctor", "-o", "jsonl").stdout.splitlines()]
    assert [list(r) for r in jsonl] == [["kind", "name", "value", "remedy"]] * len(rows)
    assert {r["name"]: r["value"] for r in jsonl if r["kind"] == "rows"} == report["counts"]
    assert {"kind": "ok", "name": "problems", "value": 1, "remedy": None} == jsonl[-1]
    for fmt in ("tsv", "csv", "jsonl"):  # no text meant for a person in a machine format
        assert "PROBLEM" not in run("doctor", "-o", fmt).stdout


def _on_a_terminal(url, *args, env=None):
    """doctor's stdout through a pseudo-terminal, as an operator sees it."""
    import os
    import shlex
    import shutil
    import subprocess

    import pytest

    from tests.test_reliability import nitejarctl

    if shutil.which("script") is None:
        pytest.skip("script(1) is not installed")
    command = shlex.join([*nitejarctl(), "-d", url, "doctor", *args])
    base = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=120,
                          env={**base, "COLUMNS": "200", "TERM": "xterm-256color", **(env or {})})


def test_problems_stand_out_in_colour_on_a_terminal(run, db, db_url):
    db.execute_sql('DROP INDEX "idx_messages_job"')
    db.close()
    shown = _on_a_terminal(db_url)
    assert shown.returncode == 1, shown.stdout
    red = "\x1b[1;31m"
    assert f"{red}PROBLEM\x1b[0m" in shown.stdout
    assert f"{red}missing index idx_messages_job\x1b[0m — run 'nitejarctl migrate'" in shown.stdout
    assert f"{red}1 problem found\x1b[0m" in shown.stdout
    # No colour with NO_COLOR or --no-color, nor in a pipe (even asked for the table).
    for plain in (_on_a_terminal(db_url, env={"NO_COLOR": "1"}), _on_a_terminal(db_url, "--no-color")):
        assert "\x1b[" not in plain.stdout and "PROBLEM       missing index idx_messages_job" in plain.stdout
    piped = run("doctor", "-o", "table")
    assert "\x1b[" not in piped.stdout and "PROBLEM       missing index" in piped.stdout
