"""`nitejarctl work-items` and `nitejarctl jobs`: inspection."""

import json
import sqlite3

import pytest
from freezegun import freeze_time

from nitejarctl.repositories.messages import message_text
from tests import factories as f
from tests.conftest import Run

T0 = 1790000000
FROZEN = "2026-09-21 15:13:20"  # T0 + 1h
HOSTILE = "[bold]x[/] :smile: \"q\" 'q' %s '; DROP TABLE jobs; --"


@pytest.fixture
def data(db):
    """Two work items (one with two jobs of two agents, one with one job)."""
    f.agent("alpha", id="a-1")
    f.agent("beta", id="a-2")
    f.work_item("tg:1", id="w-1", source="telegram", source_ref="r1", title="first",
                payload={"chat": {"id": 1}}, created_at=T0)
    f.work_item("gh:9", id="w-2", source="github", source_ref="r2", status="DONE", title=HOSTILE,
                created_at=T0 + 10)
    f.job("w-1", "a-1", id="j-1", created_at=T0)
    f.job("w-1", "a-2", id="j-2", status="FAILED", error_text="boom", created_at=T0 + 1)
    f.job("w-2", "a-1", id="j-3", status="RUNNING", created_at=T0 + 20)
    f.message("j-1", "user", "hi", id="m-1", created_at=T0)
    f.message("j-1", "assistant", id="m-2", content={"content": "hello [bold]there[/]"}, created_at=T0)
    f.message("j-1", "tool", id="m-3", content="plain text, not JSON", created_at=T0 + 1)
    f.message("j-1", "system", id="m-4", content={"tool_calls": []}, created_at=T0 + 2)


# ----------------------------------------------------------------- work items


def test_work_items_list_formats(run, data):
    result = run("work-items", "list", "-o", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "id,session_key,source,source_ref,status,title,created_at,updated_at\n"
        f"w-1,tg:1,telegram,r1,NEW,first,{T0},{T0}\n"
        f"w-2,gh:9,github,r2,DONE,\"{HOSTILE.replace(chr(34), chr(34) * 2)}\",{T0 + 10},{T0 + 10}\n")
    assert json.loads(run("work-items", "list", "--source", "github", "-o", "json").stdout) == [
        {"id": "w-2", "session_key": "gh:9", "source": "github", "source_ref": "r2", "status": "DONE",
         "title": HOSTILE, "created_at": T0 + 10, "updated_at": T0 + 10}]
    assert run("work-items", "list", "--status", "NEW", "-o", "ids").stdout == "w-1\n"
    assert run("work-items", "list", "--session-key", "gh:9", "-o", "ids").stdout == "w-2\n"
    assert run("work-items", "list", "--session-key", "none", "-o", "ids").stdout == ""
    table = run("work-items", "list", "-o", "table", "--no-color", env={"COLUMNS": "250"})
    assert HOSTILE in table.stdout and "😄" not in table.stdout


def test_work_items_list_limit_footer(run, data):
    result = run("work-items", "list", "-o", "table", "--limit", "1")
    assert result.exit_code == 0
    assert result.stderr == "… 1 more work items not shown\n"
    assert run("work-items", "list", "-o", "jsonl", "--limit", "1").stdout.count("\n") == 1


def test_work_item_show(run, data):
    result = run("work-items", "show", "w-1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown == {
        "id": "w-1", "integration_id": None, "session_key": "tg:1", "source": "telegram",
        "source_ref": "r1", "status": "NEW", "title": "first", "payload": {"chat": {"id": 1}},
        "created_at": T0, "updated_at": T0,
        "jobs": [
            {"id": "j-1", "agent_id": "a-1", "agent_name": "alpha", "status": "COMPLETED",
             "error_text": None, "started_at": T0, "completed_at": T0, "created_at": T0},
            {"id": "j-2", "agent_id": "a-2", "agent_name": "beta", "status": "FAILED",
             "error_text": "boom", "started_at": T0 + 1, "completed_at": None, "created_at": T0 + 1},
        ]}
    with freeze_time(FROZEN):
        table = run("work-items", "show", "w-1", "-o", "table", "--no-color", env={"COLUMNS": "200"})
    lines = [line.rstrip() for line in table.stdout.splitlines()]
    assert "  payload          {" in lines and '                     "chat": {' in lines
    assert "jobs" in lines
    assert any(line.startswith("  j-2   a-2        beta         FAILED      boom") for line in lines)


def test_work_item_unknown(run, db):
    result = run("work-items", "show", "nope")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "", "Error: no work item with id 'nope'\n")


# ------------------------------------------------------------------------ jobs


def test_jobs_list_and_filters(run, data):
    result = run("jobs", "list", "-o", "tsv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "id\twork_item_id\tagent_id\tagent_name\tstatus\terror_text\tstarted_at\tcompleted_at\t"
        "created_at\tupdated_at\n"
        f"j-1\tw-1\ta-1\talpha\tCOMPLETED\t\t{T0}\t{T0}\t{T0}\t{T0}\n"
        f"j-2\tw-1\ta-2\tbeta\tFAILED\tboom\t{T0 + 1}\t\t{T0 + 1}\t{T0 + 1}\n"
        f"j-3\tw-2\ta-1\talpha\tRUNNING\t\t{T0 + 20}\t\t{T0 + 20}\t{T0 + 20}\n")
    assert run("jobs", "list", "--agent", "alpha", "-o", "ids").stdout == "j-1\nj-3\n"
    assert run("jobs", "list", "--agent", "a-2", "-o", "ids").stdout == "j-2\n"
    assert run("jobs", "list", "--status", "failed", "-o", "ids").stdout == "j-2\n"
    assert run("jobs", "list", "--work-item", "w-1", "--agent", "alpha", "-o", "ids").stdout == "j-1\n"


@pytest.mark.parametrize("args, code, error", [
    (["--agent", "ghost"], 3, "Error: no agent with id or name 'ghost'\n"),
    (["--work-item", "nope"], 3, "Error: no work item with id 'nope'\n"),
    (["--status", "DONE"], 2, "Error: Invalid value for '--status': 'DONE' is not one of PENDING, "
                              "RUNNING, COMPLETED, FAILED, CANCELLED. "
                              "(see 'nitejarctl jobs list --help')\n"),
])
def test_jobs_list_bad_filters(run, data, args, code, error):
    result = run("jobs", "list", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (code, "", error)


def test_job_show_messages(run, data):
    result = run("jobs", "show", "j-1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "id": "j-1", "work_item_id": "w-1", "agent_id": "a-1", "status": "COMPLETED",
        "error_text": None, "started_at": T0, "completed_at": T0, "created_at": T0, "updated_at": T0,
        "agent_name": "alpha",
        "messages": [
            {"id": "m-1", "role": "user", "created_at": T0, "text": "hi", "content": {"text": "hi"}},
            {"id": "m-2", "role": "assistant", "created_at": T0, "text": "hello [bold]there[/]",
             "content": {"content": "hello [bold]there[/]"}},
            {"id": "m-3", "role": "tool", "created_at": T0 + 1, "text": "plain text, not JSON",
             "content": "plain text, not JSON"},
            {"id": "m-4", "role": "system", "created_at": T0 + 2, "text": "",
             "content": {"tool_calls": []}},
        ]}
    with freeze_time(FROZEN):
        table = run("jobs", "show", "j-1", "-o", "table", "--no-color", env={"COLUMNS": "200"})
    lines = [line.rstrip() for line in table.stdout.splitlines()]
    assert "messages" in lines
    assert any(line.startswith("  m-2   assistant") and line.endswith("hello [bold]there[/]")
               for line in lines)
    assert not any("tool_calls" in line for line in lines)
    missing = run("jobs", "show", "nope")
    assert (missing.exit_code, missing.stderr) == (3, "Error: no job with id 'nope'\n")


def test_job_show_hostile_and_long_text(run, data):
    long_text = HOSTILE + " :smile: " + "é" * 100_000
    f.message("j-3", "user", long_text, id="m-9", created_at=T0 + 30)
    shown = json.loads(run("jobs", "show", "j-3", "-o", "json").stdout)
    assert shown["messages"][0]["text"] == long_text
    assert shown["messages"][0]["content"] == {"text": long_text}
    table = run("jobs", "show", "j-3", "-o", "table", "--no-color", env={"COLUMNS": "300"})
    assert table.exit_code == 0
    assert HOSTILE in table.stdout and "😄" not in table.stdout
    # a table shows what fits in eight lines of the terminal, and says how much more there is
    shown = 300 * 8
    assert table.stdout.count("é") == shown - len(HOSTILE + " :smile: ")
    note = f"… {len(long_text) - shown:,} more characters; -o json shows all"
    assert "".join(note.split()) in "".join(table.stdout.split())


# --------------------------------------------------------- nitejar's database


def test_reads_on_a_nitejar_database(upstream_url):
    conn = sqlite3.connect(upstream_url)
    conn.executescript(f"""
        INSERT INTO agents (id, name, handle, created_at, updated_at)
            VALUES ('a-1', 'bot', 'bot', {T0}, {T0});
        INSERT INTO plugin_instances (id, plugin_id, name) VALUES ('p-1', 'telegram', 'tg');
        INSERT INTO work_items (id, plugin_instance_id, session_key, source, source_ref, title,
                                payload, created_at, updated_at)
            VALUES ('w-1', 'p-1', 'tg:1', 'telegram', 'r', 't', '{{"a": 1}}', {T0}, {T0});
        INSERT INTO jobs (id, work_item_id, agent_id, status, final_response, created_at, updated_at)
            VALUES ('j-1', 'w-1', 'a-1', 'COMPLETED', 'done', {T0}, {T0});
        INSERT INTO messages (id, job_id, role, content, created_at)
            VALUES ('m-1', 'j-1', 'user', '{{"text": "hi"}}', {T0});
    """)
    conn.close()
    run = Run(upstream_url)
    assert run("work-items", "list", "-o", "ids").stdout == "w-1\n"
    shown = run("work-items", "show", "w-1", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    item = json.loads(shown.stdout)
    assert "integration_id" not in item and item["payload"] == {"a": 1}
    assert [j["id"] for j in item["jobs"]] == ["j-1"]
    assert run("work-items", "show", "w-1", "-o", "table").exit_code == 0
    assert run("jobs", "list", "--agent", "bot", "-o", "ids").stdout == "j-1\n"
    job = json.loads(run("jobs", "show", "j-1", "-o", "json").stdout)
    assert [m["text"] for m in job["messages"]] == ["hi"]
    assert run("jobs", "show", "j-1", "-o", "table").exit_code == 0


# ------------------------------------------------------------ message text


@pytest.mark.parametrize("content, text", [
    ('{"text": "hi"}', "hi"),
    ('{"text": "a", "content": "b"}', "a"),
    ('{"content": "b"}', "b"),
    ('{"text": null, "content": "b"}', "b"),
    ('{"tool_calls": [1]}', ""),
    ('{"content": [{"type": "text", "text": "x"}]}', ""),
    ("not JSON [bold]", "not JSON [bold]"),
    ('"a JSON string"', "a JSON string"),
    ("42", "42"),
    ("[1, 2]", ""),
    ("", ""),
    (None, ""),
    (b'{"text": "bytes"}', "bytes"),
])
def test_message_text(content, text):
    assert message_text(content) == text
