"""What every listing shows: the table's columns in priority order, agents by
name, -o wide, --columns (every format), --sort (by the database), and
which column a narrow terminal drops (through a real pseudo-terminal)."""

import csv
import io
import json
import os
import subprocess
import time

import pytest

from tests import factories as f

NOW = int(time.time())
HOUR = 3600


@pytest.fixture
def fleet(db):
    f.agent("ops", id="agent-ops")
    f.agent("dev", id="agent-dev")
    for i, (sid, agent, sprite, last, created) in enumerate([
        ("s-1", "agent-ops", "sprite-c", NOW - 3 * HOUR, NOW - 9 * HOUR),
        ("s-2", "agent-dev", "sprite-a", NOW - 2 * HOUR, NOW - 5 * HOUR),
        ("s-3", "agent-gone", "sprite-b", NOW - 5 * HOUR, NOW - 7 * HOUR),  # an agent nitejar no longer has
    ]):
        f.sprite_session(agent, f"tg:chat-{i}", sprite_name=sprite, session_id=f"api-{sid}",
                         last_active_at=last, created_at=created, id=sid)


def test_columns_choose_and_order_the_fields_of_every_format(fleet, run):
    args = ("sessions", "list", "--columns", "sprite_name,agent,id")
    tsv = run(*args, "-o", "tsv")
    assert tsv.exit_code == 0, tsv.stderr
    assert tsv.stdout == ("sprite_name\tagent\tid\n"
                          "sprite-b\tagent-gone\ts-3\nsprite-c\tops\ts-1\nsprite-a\tdev\ts-2\n")
    assert list(csv.reader(io.StringIO(run(*args, "-o", "csv").stdout)))[0] == ["sprite_name", "agent", "id"]
    assert json.loads(run(*args, "-o", "json").stdout)[1] == {"sprite_name": "sprite-c", "agent": "ops",
                                                              "id": "s-1"}
    assert json.loads(run(*args, "-o", "jsonl").stdout.splitlines()[2]) == {
        "sprite_name": "sprite-a", "agent": "dev", "id": "s-2"}
    table = run(*args, "-o", "table", env={"COLUMNS": "100"})
    assert table.stdout.splitlines()[1].split() == ["sprite_name", "agent", "id"]
    assert run(*args, "-o", "ids").stdout == "s-3\ns-1\ns-2\n"


def test_machine_formats_keep_every_field_and_the_agent_id(fleet, run):
    rows = json.loads(run("sessions", "list", "-o", "json").stdout)
    assert list(rows[0]) == ["id", "sprite_name", "session_id", "session_key", "agent_id", "status",
                             "created_at", "last_active_at"]
    assert rows[0]["agent_id"] == "agent-gone"


def test_an_unknown_column_is_a_usage_error(fleet, run):
    result = run("sessions", "list", "--columns", "id,nope")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: no column 'nope' in this listing (columns: id, sprite_name,")
    assert run("sessions", "list", "--columns", "id,,status").exit_code == 2


def test_tables_name_agents_and_wide_adds_every_id(fleet, run):
    table = run("sessions", "list", "-o", "table", env={"COLUMNS": "300"}).stdout.splitlines()
    assert table[1].split() == ["sprite_name", "status", "last_active_at", "agent", "session_key",
                                "created_at", "id"]
    assert "  ops  " in table[4] and "agent-ops" not in "".join(table)
    assert "agent-gone" in table[3]  # no such agent: its id is what there is to show
    wide = run("sessions", "list", "-o", "wide", env={"COLUMNS": "80"})
    lines = wide.stdout.splitlines()
    assert lines[1].split() == ["sprite_name", "status", "last_active_at", "agent", "session_key",
                                "created_at", "id", "session_id", "agent_id"]
    assert "agent-ops" in lines[4] and "api-s-1" in lines[4]
    assert "…" not in wide.stdout  # nothing cut, though wider than the terminal


@pytest.mark.parametrize("sort, expected", [
    ("created_at", "s-1\ns-3\ns-2\n"),
    ("-created_at", "s-2\ns-3\ns-1\n"),
    ("sprite_name", "s-2\ns-3\ns-1\n"),
    ("-last_active_at", "s-2\ns-1\ns-3\n"),
])
def test_sort_is_done_by_the_database(fleet, run, sort, expected):
    result = run("sessions", "list", "--sort", sort, "-o", "ids")
    assert (result.exit_code, result.stdout) == (0, expected), result.stderr
    # --limit takes the first rows of that order.
    assert run("sessions", "list", "--sort", sort, "--limit", "1", "-o", "ids").stdout == expected.split("\n")[0] + "\n"


def test_sort_puts_nulls_last_and_keeps_the_listing_order_for_ties(db, run):
    wi = f.work_item(title="t")
    agent = f.agent("a")
    for jid, error in (("j-1", None), ("j-2", "boom"), ("j-3", None), ("j-4", "alas")):
        f.job(wi["id"], agent["id"], id=jid, error_text=error, created_at=NOW)
    assert run("jobs", "list", "--sort", "error_text", "-o", "ids").stdout == "j-4\nj-2\nj-1\nj-3\n"
    assert run("jobs", "list", "--sort", "-error_text", "-o", "ids").stdout == "j-2\nj-4\nj-1\nj-3\n"
    # A joined, aliased field sorts too.
    assert run("jobs", "list", "--sort", "-agent_name", "-o", "ids").exit_code == 0


def test_sort_on_every_kind_of_listing(db, run):
    f.integration("telegram", "zeta", id="i-1")
    f.integration("github", "alpha", id="i-2")
    assert run("integrations", "list", "--sort", "name", "-o", "ids").stdout == "i-2\ni-1\n"
    agent = f.agent("ops")
    f.conversation("tg:a", agent["id"], [("user", "hi")], start=NOW - 3 * HOUR)
    f.conversation("tg:b", agent["id"], [("user", "hi"), ("assistant", "hello")], start=NOW - 2 * HOUR)
    idle = run("compaction", "idle", "--sort", "-message_count", "-o", "ids")
    assert (idle.exit_code, idle.stdout) == (0, "tg:b\ntg:a\n"), idle.stderr
    for args in (("agents", "list"), ("memories", "list"), ("work-items", "list"), ("idempotency", "list"),
                 ("compaction", "summaries"), ("sessions", "history", "tg:a")):
        assert run(*args, "--sort", "-created_at" if args[0] != "compaction" else "-id").exit_code == 0, args


def test_an_unknown_sort_field_is_a_usage_error(fleet, run):
    result = run("sessions", "list", "--sort", "-agent")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == ("Error: cannot sort by 'agent' (fields: id, sprite_name, session_id, session_key, "
                             "agent_id, status, created_at, last_active_at)\n")
    assert run("sessions", "list", "--sort", "-").exit_code == 2


def _on_a_terminal(db_url, columns: int, *args) -> tuple[str, str]:
    """stdout and stderr of nitejarctl on a pseudo-terminal `columns` wide."""
    import shlex

    command = " ".join(shlex.quote(a) for a in ("nitejarctl", "-d", db_url, "--no-color", *args))
    done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": str(columns), "LINES": "50"})
    assert done.returncode == 0, done.stdout
    return done.stdout.replace("\r\n", "\n"), ""


def test_a_narrow_terminal_drops_the_lowest_priority_columns_never_the_sorted_time(fleet, db, db_url):
    db.close()
    wide, _ = _on_a_terminal(db_url, 160, "sessions", "list", "--stale", "1h")
    assert wide.splitlines()[1].split() == ["sprite_name", "status", "last_active_at", "agent", "session_key",
                                            "created_at", "id"]
    narrow, _ = _on_a_terminal(db_url, 80, "sessions", "list", "--stale", "1h")
    assert narrow.splitlines()[1].split() == ["sprite_name", "status", "last_active_at", "agent"]
    assert "(not shown at this width: session_key, created_at, id; -o wide shows every column)" in narrow
    by_creation, _ = _on_a_terminal(db_url, 80, "sessions", "list", "--stale", "1h", "--sort", "created_at")
    header = by_creation.splitlines()[1].split()
    assert "created_at" in header and header[:2] == ["sprite_name", "status"]
    assert "… more" not in by_creation


def test_the_sorted_column_is_shown_even_when_the_table_has_it_not(fleet, db, db_url):
    db.close()
    by_session, _ = _on_a_terminal(db_url, 80, "sessions", "list", "--sort", "-session_id")
    lines = by_session.splitlines()
    assert lines[1].split() == ["sprite_name", "status", "last_active_at", "session_id"]
    assert [line.split()[-1] for line in lines[3:6]] == ["api-s-3", "api-s-2", "api-s-1"]
    assert "(not shown at this width: agent, session_key, created_at, id;" in by_session
    assert max(len(line) for line in lines if not line.startswith("(")) <= 80  # the table fits
    # At 60 columns the sorted time outlasts every column but the first.
    narrow, _ = _on_a_terminal(db_url, 60, "sessions", "list", "--sort", "created_at")
    assert narrow.splitlines()[1].split() == ["sprite_name", "status", "created_at"]
    # Machine formats are unchanged by it.
    tsv = subprocess.run(["nitejarctl", "-d", db_url, "sessions", "list", "--sort", "-session_id", "-o", "tsv"],
                         capture_output=True, text=True, timeout=60)
    assert tsv.stdout.splitlines()[0].split("\t") == ["id", "sprite_name", "session_id", "session_key",
                                                      "agent_id", "status", "created_at", "last_active_at"]


def test_sort_orders_every_listing_both_ways(db, run):
    """Two rows each, the older with the greater id: both directions of --sort
    come out as the field says, whatever each listing's own order is."""
    old, new = NOW - 2 * HOUR, NOW - HOUR
    f.agent("z-old", id="a-2", created_at=old)
    f.agent("a-new", id="a-1", created_at=new)
    f.memory("a-1", "old", id="m-2", created_at=old)
    f.memory("a-1", "new", id="m-1", created_at=new)
    f.work_item(id="w-2", created_at=old)
    f.work_item(id="w-1", created_at=new)
    f.job("w-1", "a-1", id="j-2", created_at=old)
    f.job("w-1", "a-1", id="j-1", created_at=new)
    f.idempotency_key("k-2", created_at=old)
    f.idempotency_key("k-1", created_at=new)
    f.summary("tg:1", "a-1", id="s-2", compacted_at=old)
    f.summary("tg:2", "a-1", id="s-1", compacted_at=new)
    for args, field, older, newer in (
            (("agents", "list"), "created_at", "a-2", "a-1"),
            (("memories", "list"), "created_at", "m-2", "m-1"),
            (("work-items", "list"), "created_at", "w-2", "w-1"),
            (("jobs", "list"), "created_at", "j-2", "j-1"),
            (("idempotency", "list"), "created_at", "k-2", "k-1"),
            (("compaction", "summaries"), "compacted_at", "s-2", "s-1")):
        up = run(*args, "--sort", field, "-o", "ids")
        down = run(*args, "--sort", f"-{field}", "-o", "ids")
        assert (up.exit_code, up.stdout, down.stdout) == (0, f"{older}\n{newer}\n", f"{newer}\n{older}\n"), args


def test_wide_on_a_narrow_terminal_drops_nothing(fleet, db, db_url):
    db.close()
    wide, _ = _on_a_terminal(db_url, 80, "sessions", "list", "-o", "wide")
    assert wide.splitlines()[1].split() == ["sprite_name", "status", "last_active_at", "agent", "session_key",
                                            "created_at", "id", "session_id", "agent_id"]
    assert "not shown" not in wide and "…" not in wide
    assert all("api-s-" in line for line in wide.splitlines()[3:6])  # each row whole, on one line
