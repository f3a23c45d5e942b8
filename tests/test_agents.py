"""`nitejarctl agents`: list, show, create, update, delete, link, unlink."""

import json
import sqlite3
import uuid

import pytest
from freezegun import freeze_time

from nitejarctl import models
from nitejarctl.output import format_time
from tests import factories as f
from tests.conftest import Run

T0 = 1790000000  # 2026-09-21 14:13:20 UTC
NOW = T0 + 3600
FROZEN = "2026-09-21 15:13:20"  # NOW


def agent_row(agent_id):
    return (models.Agent.select(models.Agent.name, models.Agent.status, models.Agent.sprite_id,
                                models.Agent.config, models.Agent.updated_at)
            .where(models.Agent.id == agent_id).dicts().first())


def count(model, where=None):
    query = model.select()
    if where is not None:
        query = query.where(where)
    return query.count()


# ------------------------------------------------------------------------ list


@pytest.fixture
def two_agents(db):
    f.agent("alpha", id="a-1", sprite_id="sp-1", created_at=T0)
    f.agent("beta [bold]", id="a-2", status="busy", created_at=T0)
    models.Agent.update(updated_at=NOW).where(models.Agent.id == "a-2").execute()


@freeze_time(FROZEN)
def test_list_json(run, two_agents):
    result = run("agents", "list", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "[\n"
        '{"id":"a-1","name":"alpha","status":"idle","sprite_id":"sp-1",'
        f'"created_at":{T0},"updated_at":{T0}}},\n'
        '{"id":"a-2","name":"beta [bold]","status":"busy","sprite_id":null,'
        f'"created_at":{T0},"updated_at":{NOW}}}\n'
        "]\n")
    assert result.stderr == ""


@freeze_time(FROZEN)
def test_list_jsonl_csv_tsv_ids(run, two_agents):
    assert run("agents", "list", "-o", "jsonl").stdout == (
        f'{{"id":"a-1","name":"alpha","status":"idle","sprite_id":"sp-1","created_at":{T0},'
        f'"updated_at":{T0}}}\n'
        f'{{"id":"a-2","name":"beta [bold]","status":"busy","sprite_id":null,"created_at":{T0},'
        f'"updated_at":{NOW}}}\n')
    assert run("agents", "list", "-o", "csv").stdout == (
        "id,name,status,sprite_id,created_at,updated_at\n"
        f"a-1,alpha,idle,sp-1,{T0},{T0}\n"
        f"a-2,beta [bold],busy,,{T0},{NOW}\n")
    assert run("agents", "list", "-o", "tsv").stdout == (
        "id\tname\tstatus\tsprite_id\tcreated_at\tupdated_at\n"
        f"a-1\talpha\tidle\tsp-1\t{T0}\t{T0}\n"
        f"a-2\tbeta [bold]\tbusy\t\t{T0}\t{NOW}\n")
    assert run("agents", "list", "-o", "ids").stdout == "a-1\na-2\n"
    # the default in a pipe is tsv
    assert run("agents", "list").stdout == run("agents", "list", "-o", "tsv").stdout


@freeze_time(FROZEN)
def test_list_table(run, two_agents):
    result = run("agents", "list", "-o", "table", "--no-color", env={"COLUMNS": "120"})
    assert result.exit_code == 0
    t0, t1 = format_time(T0, NOW), format_time(NOW, NOW)
    assert t0.endswith("(1h ago)") and t1.endswith("(0s ago)")
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    # Name first, the id last, sprite_id only with -o wide.
    assert lines[1].split() == ["name", "status", "created_at", "updated_at", "id"]
    assert set(lines[2].strip()) == {"─"}
    assert lines[3] == f"  alpha         idle     {t0}   {t0}   a-1"
    assert lines[4] == f"  beta [bold]   busy     {t0}   {t1}   a-2"
    assert result.stderr == ""


def test_list_status_filter_limit_and_empty(run, two_agents):
    assert run("agents", "list", "--status", "busy", "-o", "ids").stdout == "a-2\n"
    limited = run("agents", "list", "-o", "table", "--limit", "1")
    assert limited.stderr == "… 1 more agents not shown\n"
    assert "alpha" in limited.stdout and "beta" not in limited.stdout
    empty = run("agents", "list", "--status", "offline", "-o", "table")
    assert (empty.exit_code, empty.stdout, empty.stderr) == (0, "", "no agents\n")
    assert run("agents", "list", "--status", "offline", "-o", "json").stdout == "[]\n"


# ------------------------------------------------------------------------ show


@pytest.fixture
def busy_agent(db):
    """An agent with 2 jobs (3 messages), 2 memories, 1 summary, 2 active and
    1 closed sprite sessions, 1 integration link; and another agent."""
    a = f.agent("worker", id="a-1", config={"memorySettings": {"decayRate": 0.2}}, created_at=T0)
    other = f.agent("other", id="a-2", created_at=T0)
    integ = f.integration("telegram", "tg-main", id="i-1")
    models.AgentIntegration.insert(agent_id="a-1", integration_id="i-1", created_at=T0).execute()
    models.AgentIntegration.insert(agent_id="a-2", integration_id="i-1", created_at=T0).execute()
    wi = f.work_item("tg:1", created_at=T0)
    j1 = f.job(wi["id"], "a-1", created_at=T0)
    j2 = f.job(wi["id"], "a-1", status="FAILED", created_at=T0)
    j3 = f.job(wi["id"], "a-2", created_at=T0)
    for job_id in (j1["id"], j1["id"], j2["id"], j3["id"]):
        f.message(job_id, created_at=T0)
    f.memory("a-1"), f.memory("a-1"), f.memory("a-2")
    f.summary("tg:1", "a-1")
    f.sprite_session("a-1"), f.sprite_session("a-1")
    f.sprite_session("a-1", status="closed"), f.sprite_session("a-2")
    return a, other, integ


@freeze_time(FROZEN)
def test_show_json(run, busy_agent):
    result = run("agents", "show", "worker", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "id": "a-1", "name": "worker", "sprite_id": None,
        "config": {"memorySettings": {"decayRate": 0.2}}, "status": "idle",
        "created_at": T0, "updated_at": T0,
        "job_count": 2, "memory_count": 2, "summary_count": 1, "active_session_count": 2,
        "integrations": [{"id": "i-1", "type": "telegram", "name": "tg-main", "scope": "global",
                          "enabled": 1, "linked_at": T0}],
    }
    assert run("agents", "show", "a-1", "-o", "json").stdout == result.stdout
    assert run("agents", "show", "a-1", "-o", "ids").stdout == "a-1\n"


@freeze_time(FROZEN)
def test_show_table_pretty_prints_config(run, busy_agent):
    result = run("agents", "show", "worker", "-o", "table", "--no-color", env={"COLUMNS": "120"})
    assert result.exit_code == 0
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    start = lines.index("  config                 {")
    assert lines[start:start + 5] == [
        "  config                 {",
        '                           "memorySettings": {',
        '                             "decayRate": 0.2',
        "                           }",
        "                         }",
    ]
    assert "  active_session_count   2" in lines
    assert "integrations" in lines
    assert any(line.startswith("  i-1   telegram   tg-main   global   yes") for line in lines)


def test_show_unknown_agent(run, db):
    result = run("agents", "show", "nobody")
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == "Error: no agent with id or name 'nobody'\n"


def test_show_stored_config_that_is_not_json(run, db):
    f.agent("raw", config="not json [bold]")
    assert json.loads(run("agents", "show", "raw", "-o", "json").stdout)["config"] == "not json [bold]"


def test_show_on_a_nitejar_database(upstream_url):
    conn = sqlite3.connect(upstream_url)
    conn.executescript("""
        INSERT INTO agents (id, name, config, handle, created_at, updated_at)
            VALUES ('a-1', 'bot', '{"x": 1}', 'bot', 1790000000, 1790000000);
        INSERT INTO plugin_instances (id, plugin_id, name) VALUES ('p-1', 'telegram', 'tg');
        INSERT INTO agent_plugin_instances (agent_id, plugin_instance_id, created_at)
            VALUES ('a-1', 'p-1', 1790000000);
    """)
    conn.close()
    run = Run(upstream_url)
    result = run("agents", "show", "bot", "-o", "json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["config"] == {"x": 1} and shown["job_count"] == 0
    assert shown["plugin_instances"] == [{"id": "p-1", "plugin_id": "telegram", "name": "tg",
                                          "scope": "global", "enabled": 1, "linked_at": T0}]
    assert run("agents", "show", "bot", "-o", "table").exit_code == 0
    assert run("agents", "list", "-o", "ids").stdout == "a-1\n"


# ---------------------------------------------------------------------- create


@freeze_time(FROZEN)
def test_create(run, db):
    result = run("agents", "create", "helper", "--config", '{"a": {"b": 1}}', "--sprite-id", "sp-9",
                 "-o", "json")
    assert result.exit_code == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert uuid.UUID(row["id"]).version == 4
    assert row == {"id": row["id"], "name": "helper", "status": "idle", "sprite_id": "sp-9",
                   "created_at": NOW, "updated_at": NOW}
    assert result.stderr == f"created agent 'helper' ({row['id']})\n"
    assert agent_row(row["id"]) == {"name": "helper", "status": "idle", "sprite_id": "sp-9",
                                    "config": '{"a":{"b":1}}', "updated_at": NOW}
    other = run("agents", "create", "second", "--status", "busy", "-o", "ids", "-q")
    assert (other.exit_code, other.stderr) == (0, "")
    assert agent_row(other.stdout.strip())["status"] == "busy"


def test_create_config_from_file(run, db, tmp_path):
    path = tmp_path / "agent.json"
    path.write_text('{\n  "soul": "be kind"\n}\n')
    result = run("agents", "create", "filed", "--config", f"@{path}", "-o", "ids")
    assert agent_row(result.stdout.strip())["config"] == '{"soul":"be kind"}'


def test_create_duplicate_name(run, db):
    f.agent("taken")
    result = run("agents", "create", "taken")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "Error: an agent named 'taken' already exists\n"
    assert count(models.Agent) == 1


@pytest.mark.parametrize("args, error", [
    (["--config", '{"mode": 1 "x"}'],
     "Error: invalid JSON in --config: Expecting ',' delimiter (line 1, column 12)\n"),
    (["--config", '{"a": 1}\n{"b": 2}'], "Error: invalid JSON in --config: Extra data (line 2, column 1)\n"),
    (["--config", "[1, 2]"], "Error: --config must be a JSON object ({…}), not an array\n"),
    (["--config", '"text"'], "Error: --config must be a JSON object ({…}), not a string\n"),
])
def test_create_bad_config(run, db, args, error):
    result = run("agents", "create", "x", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", error)
    assert count(models.Agent) == 0


def test_create_bad_config_file_reports_line_and_column(run, db, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b": tru\n}\n')
    result = run("agents", "create", "x", "--config", f"@{path}")
    assert result.exit_code == 2
    assert result.stderr == f"Error: invalid JSON in --config file {path}: Expecting value (line 3, column 8)\n"


@pytest.mark.parametrize("name", ["", "   "])
def test_create_empty_name_is_usage_error(run, db, name):
    result = run("agents", "create", name)
    assert (result.exit_code, result.stderr) == (2, "Error: the agent name must not be empty\n")
    assert count(models.Agent) == 0


# ---------------------------------------------------------------------- update


def test_update_set_and_unset_nested_keys(run, db):
    f.agent("bot", id="a-1", created_at=T0, config={
        "memorySettings": {"decayRate": 0.1, "maxStoredMemories": 50},
        "sessionSettings": {"compaction": {"enabled": True, "idle": 30}}, "keep": "me"})
    with freeze_time(FROZEN):
        result = run("agents", "update", "bot",
                     "--set", "memorySettings.decayRate=0.25",
                     "--set", "sessionSettings.compaction.enabled=false",
                     "--set", "new.deep.list=[1, 2]",
                     "--set", "note=hello world",
                     "--set", 'quoted="42"',
                     "--unset", "memorySettings.maxStoredMemories",
                     "--unset", "sessionSettings.compaction.idle",
                     "--unset", "absent.key", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"id": "a-1", "name": "bot", "status": "idle", "sprite_id": None,
                                          "created_at": T0, "updated_at": NOW}]
    assert result.stderr == ("Warning: absent.key was not set in the config of agent 'bot'\n"
                             "updated agent 'bot' (a-1)\n")
    stored = agent_row("a-1")
    assert stored["updated_at"] == NOW
    assert json.loads(stored["config"]) == {
        "memorySettings": {"decayRate": 0.25},
        "sessionSettings": {"compaction": {"enabled": False}},
        "keep": "me", "new": {"deep": {"list": [1, 2]}}, "note": "hello world", "quoted": "42"}


def test_update_config_replaces_then_set_edits(run, db):
    f.agent("bot", id="a-1", config={"old": 1})
    result = run("agents", "update", "a-1", "--config", '{"fresh": {"x": 1}}', "--set", "fresh.y=2",
                 "--name", "renamed", "--status", "busy", "--sprite-id", "sp-2")
    assert result.exit_code == 0, result.stderr
    assert agent_row("a-1") | {"updated_at": 0} == {
        "name": "renamed", "status": "busy", "sprite_id": "sp-2",
        "config": '{"fresh":{"x":1,"y":2}}', "updated_at": 0}
    assert run("agents", "update", "renamed", "--sprite-id", "").exit_code == 0
    assert agent_row("a-1")["sprite_id"] is None


def test_update_null_config_starts_empty(run, db):
    f.agent("bot", id="a-1")
    assert run("agents", "update", "bot", "--set", "a.b=1").exit_code == 0
    assert agent_row("a-1")["config"] == '{"a":{"b":1}}'


@pytest.mark.parametrize("args, error", [
    ([], "Error: nothing to update: give --name, --status, --sprite-id, --config, --set or --unset\n"),
    (["--set", "=1"], "Error: --set expects dotted.key=value, got '=1' (the key is empty)\n"),
    (["--set", "novalue"], "Error: --set expects dotted.key=value, got 'novalue'\n"),
    (["--set", "a..b=1"], "Error: --set needs a dotted key such as memorySettings.decayRate, got 'a..b'\n"),
    (["--unset", ""], "Error: --unset needs a dotted key such as memorySettings.decayRate, got ''\n"),
    (["--set", "n.deeper=1"], "Error: cannot set n.deeper: n is a number, not an object\n"),
    (["--config", '{\n"a": }'], "Error: invalid JSON in --config: Expecting value (line 2, column 6)\n"),
    (["--name", ""], "Error: the agent name must not be empty\n"),
])
def test_update_usage_errors_change_nothing(run, db, args, error):
    f.agent("bot", id="a-1", config={"n": 3}, created_at=T0)
    before = agent_row("a-1")
    result = run("agents", "update", "bot", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", error)
    assert agent_row("a-1") == before


def test_update_duplicate_name_and_unknown_agent(run, db):
    f.agent("bot", id="a-1", created_at=T0)
    f.agent("other", id="a-2", created_at=T0)
    result = run("agents", "update", "bot", "--name", "other")
    assert (result.exit_code, result.stderr) == (1, "Error: an agent named 'other' already exists\n")
    assert agent_row("a-1")["name"] == "bot"
    missing = run("agents", "update", "ghost", "--status", "busy")
    assert (missing.exit_code, missing.stderr) == (3, "Error: no agent with id or name 'ghost'\n")


def test_update_set_on_a_config_that_is_not_an_object(run, db):
    f.agent("bot", id="a-1", config="[1, 2]")
    result = run("agents", "update", "bot", "--set", "a=1")
    assert result.exit_code == 1
    assert result.stderr == ("Error: the stored config of agent 'bot' is not a JSON object; "
                             "replace it with --config\n")
    assert agent_row("a-1")["config"] == "[1, 2]"


# ---------------------------------------------------------------------- delete


PREVIEW = {"agent": {"id": "a-1", "name": "worker", "status": "idle", "sprite_id": None,
                     "created_at": T0, "updated_at": T0},
           "deletes": {"agent_integrations": 1, "agent_memories": 2, "messages": 3, "session_summaries": 1,
                       "jobs": 2, "agents": 1},
           "nulls": {}, "closes": {"sprite_sessions": 2}}
WORDS = ("agent 'worker' (a-1) and 9 rows in 5 other tables")


def test_delete_dry_run_deletes_nothing(run, busy_agent):
    before = {m: count(m) for m in models.MODELS}
    result = run("agents", "delete", "worker", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == PREVIEW
    assert result.stderr == f"would delete {WORDS}, close 2 sprite sessions (dry run: nothing changed)\n"
    csv = run("agents", "delete", "worker", "--dry-run", "-o", "csv")
    assert csv.stdout == ("change,table,rows\n"
                          "delete,agent_integrations,1\ndelete,agent_memories,2\ndelete,messages,3\n"
                          "delete,session_summaries,1\ndelete,jobs,2\ndelete,agents,1\n"
                          "close,sprite_sessions,2\n")
    assert {m: count(m) for m in models.MODELS} == before


@freeze_time(FROZEN)
def test_delete_cascades_and_closes_the_sprite_sessions(run, busy_agent):
    result = run("agents", "delete", "worker", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == PREVIEW
    assert result.stderr == f"deleted {WORDS}, 2 sprite sessions closed\n"
    assert [a.id for a in models.Agent.select()] == ["a-2"]
    assert count(models.Job) == 1 and count(models.Message) == 1
    assert count(models.AgentMemory) == 1 and count(models.SessionSummary) == 0
    assert count(models.AgentIntegration) == 1 and count(models.Integration) == 1
    # sprite sessions refer to the agent by no foreign key: its active ones are closed, none deleted
    S = models.SpriteSession
    assert count(S) == 4
    assert sorted((s.agent_id, s.status) for s in S.select()) == [
        ("a-1", "closed"), ("a-1", "closed"), ("a-1", "closed"), ("a-2", "active")]
    assert count(S, (S.agent_id == "a-1") & (S.last_active_at == NOW)) == 2


def test_delete_in_batches(run, busy_agent):
    from nitejarctl.cli.context import Settings
    from nitejarctl.db.batches import Batching

    for _ in range(7):
        f.message(models.Job.select(models.Job.id).where(models.Job.agent_id == "a-1").scalar())
    settings = Settings(batching=Batching(first=2, smallest=2, largest=2))
    result = run("agents", "delete", "worker", "--yes", "-o", "json", settings=settings)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["deletes"]["messages"] == 10
    assert count(models.Message) == 1 and count(models.Agent) == 1


def test_delete_refuses_without_terminal_or_yes(run, busy_agent):
    result = run("agents", "delete", "worker")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: refusing to delete without --yes when not on a terminal\n"
    assert count(models.Agent) == 2


def test_delete_asks_on_a_terminal(run, busy_agent):
    from nitejarctl.cli.context import Settings

    declined = run("agents", "delete", "worker", input="n\n", settings=Settings(interactive=True))
    assert declined.exit_code == 1
    assert declined.stderr == (
        "Delete agent 'worker' (a-1) and 9 rows in 5 other tables (agent_integrations 1, agent_memories 2, "
        "messages 3, session_summaries 1, jobs 2), close 2 sprite sessions? [y/N]: n\n"
        "nothing deleted\n")
    assert count(models.Agent) == 2
    accepted = run("agents", "delete", "worker", "-o", "ids", input="y\n", settings=Settings(interactive=True))
    assert (accepted.exit_code, accepted.stdout) == (0, "a-1\n")
    assert count(models.Agent) == 1


def test_delete_unknown_agent(run, db):
    result = run("agents", "delete", "ghost", "--yes")
    assert (result.exit_code, result.stderr) == (3, "Error: no agent with id or name 'ghost'\n")
    ignored = run("agents", "delete", "ghost", "--yes", "--ignore-missing")
    assert (ignored.exit_code, ignored.stdout) == (0, "")
    assert ignored.stderr == "Warning: no agent with id or name 'ghost'\n"


# ----------------------------------------------------------------------- links


def test_link_and_unlink(run, db):
    f.agent("bot", id="a-1")
    f.integration("telegram", "tg", id="i-1")
    with freeze_time(FROZEN):
        linked = run("agents", "link", "bot", "tg", "-o", "csv")
    assert linked.exit_code == 0, linked.stderr
    assert linked.stdout == ("agent_id,agent_name,integration_id,integration_name,created_at\n"
                             f"a-1,bot,i-1,tg,{NOW}\n")
    assert linked.stderr == "linked agent 'bot' to integration 'tg'\n"
    again = run("agents", "link", "a-1", "i-1", "-o", "csv")
    assert (again.exit_code, again.stdout) == (0, linked.stdout)
    assert again.stderr == "already linked: agent 'bot' to integration 'tg'\n"
    assert count(models.AgentIntegration) == 1
    shown = json.loads(run("agents", "show", "bot", "-o", "json").stdout)
    assert [i["id"] for i in shown["integrations"]] == ["i-1"]

    unlinked = run("agents", "unlink", "bot", "tg", "-o", "ids")
    assert (unlinked.exit_code, unlinked.stdout) == (0, "a-1\n")
    assert unlinked.stderr == "unlinked agent 'bot' from integration 'tg'\n"
    assert count(models.AgentIntegration) == 0
    noop = run("agents", "unlink", "bot", "tg")
    assert (noop.exit_code, noop.stdout) == (0, "")
    assert noop.stderr == "not linked, nothing to do: agent 'bot' from integration 'tg'\n"


def test_link_unknown_or_ambiguous(run, db):
    f.agent("bot")
    f.integration("telegram", "same", id="i-1")
    f.integration("github", "same", id="i-2")
    missing = run("agents", "link", "bot", "nope")
    assert (missing.exit_code, missing.stderr) == (3, "Error: no integration with id or name 'nope'\n")
    missing_agent = run("agents", "link", "ghost", "i-1")
    assert (missing_agent.exit_code, missing_agent.stderr) == (3, "Error: no agent with id or name 'ghost'\n")
    ambiguous = run("agents", "link", "bot", "same")
    assert (ambiguous.exit_code, ambiguous.stderr) == (
        2, "Error: several integrations are named 'same': give the id\n")
    assert count(models.AgentIntegration) == 0


# -------------------------------------------------------------- hostile values


HOSTILE = "[bold]x[/] :smile: \"q\" 'q' %s %(x)s '; DROP TABLE agents; --"


def test_hostile_values_round_trip_and_render_literally(run, db):
    long_text = "[/]" + "ä" * 100_000
    config = json.dumps({"soul": long_text, "note": HOSTILE})
    created = run("agents", "create", HOSTILE, "--config", config, "--status", "[red]busy", "-o", "ids")
    assert created.exit_code == 0, created.stderr
    agent_id = created.stdout.strip()
    shown = json.loads(run("agents", "show", agent_id, "-o", "json").stdout)
    assert shown["name"] == HOSTILE and shown["status"] == "[red]busy"
    assert shown["config"] == {"soul": long_text, "note": HOSTILE}
    table = run("agents", "list", "-o", "table", "--no-color", env={"COLUMNS": "300"})
    assert HOSTILE in table.stdout and "[red]busy" in table.stdout and "😄" not in table.stdout
    detail = run("agents", "show", HOSTILE, "-o", "table", "--no-color", env={"COLUMNS": "300"})
    assert detail.exit_code == 0
    assert HOSTILE in detail.stdout and '"soul":' in detail.stdout and '"[/]ää' in detail.stdout
    assert run("agents", "update", HOSTILE, "--set", f"x={HOSTILE}").exit_code == 0
    assert json.loads(agent_row(agent_id)["config"])["x"] == HOSTILE
