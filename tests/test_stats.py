"""sessions stats and memories stats."""

import json

from freezegun import freeze_time

from tests import factories as f

NOW = 1_790_000_000
FROZEN = "2026-09-21 14:13:20"  # NOW


@freeze_time(FROZEN)
def test_sessions_stats(run, db):
    a = f.agent("alpha")
    b = f.agent("beta")
    for age in (60, 600, 600, 7200, 8 * 86400):
        f.sprite_session(a["id"], last_active_at=NOW - age)
    f.sprite_session(b["id"], status="closed", last_active_at=NOW - 60)
    f.sprite_session(b["id"], status="error", last_active_at=NOW - 60)
    f.sprite_session("ghost-agent", last_active_at=NOW - 30)
    result = run("sessions", "stats", "-o", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["total"] == 8
    assert report["by_status"] == {"active": 6, "closed": 1, "error": 1}
    assert report["active_age"] == [
        {"age": "< 5m", "count": 2}, {"age": "5m–15m", "count": 2}, {"age": "15m–1h", "count": 0},
        {"age": "1h–4h", "count": 1}, {"age": "4h–24h", "count": 0}, {"age": "1d–7d", "count": 0},
        {"age": "> 7d", "count": 1}]
    assert report["by_agent"] == [
        {"agent_id": a["id"], "agent_name": "alpha", "active": 5, "closed": 0, "error": 0, "total": 5},
        {"agent_id": b["id"], "agent_name": "beta", "active": 0, "closed": 1, "error": 1, "total": 2},
        {"agent_id": "ghost-agent", "agent_name": None, "active": 1, "closed": 0, "error": 0, "total": 1}]


@freeze_time(FROZEN)
def test_sessions_stats_table_draws_bars(run, db):
    for age in (60, 600, 600, 600):
        f.sprite_session(last_active_at=NOW - age)
    result = run("sessions", "stats", "-o", "table", "--no-color")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["5m–15m", "3", "█" * 30] for line in lines)
    assert any(line.split()[:3] == ["<", "5m", "1"] and line.split()[3] == "█" * 10 for line in lines)


def test_sessions_stats_tsv_is_the_status_table(run, db):
    f.sprite_session(status="closed")
    assert run("sessions", "stats").stdout == "status\tcount\nactive\t0\nclosed\t1\nerror\t0\n"


def test_memories_stats(run, db):
    a = f.agent("alpha")
    b = f.agent("beta")
    for strength in (0.05, 0.15, 0.95, 1.0):
        f.memory(a["id"], strength=strength)
    f.memory(a["id"], strength=0.5, permanent=1)
    f.memory(b["id"], strength=0.1)
    report = json.loads(run("memories", "stats", "-o", "json").stdout)
    assert report["total"] == 6 and report["agents"] == 2
    first = report["by_agent"][0]
    assert first["agent_name"] == "alpha" and first["count"] == 5 and first["permanent"] == 1
    assert first["histogram"] == [1, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert first["mean_strength"] == round((0.05 + 0.15 + 0.95 + 1.0 + 0.5) / 5, 4)
    assert report["by_agent"][1]["histogram"] == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    only = json.loads(run("memories", "stats", "--agent", "beta", "-o", "json").stdout)
    assert [x["agent_name"] for x in only["by_agent"]] == ["beta"]
    table = run("memories", "stats", "-o", "table", "--no-color")
    assert "▄▄   ▄   █" in table.stdout


def test_memories_stats_unknown_agent(run, db):
    result = run("memories", "stats", "--agent", "nobody")
    assert result.exit_code == 3
    assert result.stderr == "Error: no agent with id or name 'nobody'\n"
