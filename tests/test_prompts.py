"""Prompts, footers and counts an operator reads, and a mistyped --agent."""

from __future__ import annotations

import json

import pytest

from nitejarctl.cli.context import Settings
from nitejarctl.db.batches import Batching
from tests import factories as f
from tests.helpers.terminal import on_terminal

MANY = 2415
NOW_SQL = "1790000000"


def _many_memories(db, agent_id: str, n: int = MANY, strength: float = 0.05) -> None:
    """n weak memories in one statement (both backends)."""
    db.execute_sql(
        f"WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < {n}) "
        "INSERT INTO agent_memories (id, agent_id, content, strength, access_count, permanent, "
        f"created_at, updated_at) SELECT 'm-' || v, '{agent_id}', 'fact', {strength!r}, 0, 0, "
        f"{NOW_SQL}, {NOW_SQL} FROM s")


def _count(db, table: str) -> int:
    return db.execute_sql(f"SELECT count(*) FROM {table}").fetchone()[0]


# ------------------------------------------------------- a mistyped --agent


@pytest.mark.parametrize("command", [
    ["sessions", "list"],
    ["sessions", "list", "--stale", "1h"],
    ["sessions", "close", "--conversation", "tg:chat-1", "--dry-run"],
    ["sessions", "history", "tg:chat-1"],
    ["jobs", "list"],
    ["memories", "list"],
    ["memories", "stats"],
    ["memories", "decay", "--dry-run"],
    ["memories", "prune", "--dry-run"],
    ["compaction", "idle"],
    ["compaction", "run", "--dry-run"],
    ["compaction", "summaries"],
])
def test_an_agent_that_does_not_exist_exits_3_everywhere(run, db, command):
    f.agent("ops", id="a-1")
    f.sprite_session("a-1", session_key="tg:chat-1")
    db.close()
    result = run(*command, "--agent", "opz")
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == "Error: no agent with id or name 'opz'\n"


def test_a_session_owner_nitejarctl_does_not_know_is_accepted_as_an_id(run, db, db_url):
    f.sprite_session("owner-from-elsewhere", session_key="tg:chat-1", id="s-1")
    db.close()
    listed = run("sessions", "list", "--agent", "owner-from-elsewhere", "-o", "ids")
    assert (listed.exit_code, listed.stdout) == (0, "s-1\n")
    closed = run("sessions", "close", "--conversation", "tg:chat-1", "--agent", "owner-from-elsewhere",
                 "-o", "ids")
    assert (closed.exit_code, closed.stdout) == (0, "s-1\n")
    assert run("sessions", "close", "--conversation", "tg:chat-1", "--agent", "owner-from-elsewher").exit_code == 3


def test_a_mistyped_agent_on_a_terminal(db, db_url):
    f.agent("ops", id="a-1")
    db.close()
    screen = on_terminal("-d", db_url, "sessions", "list", "--agent", "opz")
    assert (screen.code, screen.text) == (3, "Error: no agent with id or name 'opz'\n")


# ------------------------------------------------------------------ prompts


def test_prune_asks_with_its_criteria_and_no_is_not_an_error(db, db_url):
    f.agent("ops", id="a-1")
    _many_memories(db, "a-1")
    db.close()
    question = f"Delete {MANY:,} memories weaker than 0.1 or beyond 200 per agent (unpinned)? [y/N]: "
    declined = on_terminal("-d", db_url, "memories", "prune", answer="n\n")
    assert declined.code == 1
    # The terminal echoes the answer where it is typed: before or after the question.
    assert question in declined.text and declined.text.endswith("nothing deleted\n")
    assert "Error" not in declined.text
    from tests.conftest import Run

    assert json.loads(Run(db_url)("query", "SELECT count(*) AS n FROM agent_memories", "-o", "json").stdout) == [
        {"n": MANY}]
    agreed = on_terminal("-d", db_url, "memories", "prune", "-o", "ids", answer="y\n")
    assert agreed.code == 0
    assert question in agreed.text
    assert agreed.text.rstrip("\n").endswith(f"pruned {MANY:,} memories")


def test_prune_names_each_agents_own_limits(run, db):
    f.agent("ops", id="a-1")
    f.agent("strict", id="a-2", config={"memorySettings": {"minStrength": 0.3, "maxStoredMemories": 1500}})
    _many_memories(db, "a-1")
    db.close()
    result = run("memories", "prune", input="n\n", settings=Settings(interactive=True))
    assert result.exit_code == 1
    assert result.stderr == ("Delete 2,415 memories weaker than each agent's minStrength (0.1, 0.3) or "
                             "beyond each agent's maxStoredMemories (200, 1,500) per agent (unpinned)? "
                             "[y/N]: n\nnothing deleted\n")
    agent = run("memories", "prune", "--agent", "ops", "--below", "0.07", input="n\n",
                settings=Settings(interactive=True))
    assert agent.stderr.startswith("Delete 2,415 memories weaker than 0.07 or beyond 200 per agent (unpinned)?")


def test_idempotency_prune_asks_with_its_age(run, db):
    db.execute_sql("WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 1200) "
                   "INSERT INTO idempotency_keys (key, created_at) SELECT 'k-' || v, 1000 FROM s")
    db.close()
    result = run("idempotency", "prune", "--older-than", "30d", input="n\n", settings=Settings(interactive=True))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "Delete 1,200 idempotency keys older than 4w2d? [y/N]: n\nnothing deleted\n"


def test_purge_asks_with_its_age(run, db):
    f.sprite_session("a-1", status="closed", last_active_at=1000, id="c-1")
    db.close()
    result = run("sessions", "purge", "--older-than", "1d", input="n\n", settings=Settings(interactive=True))
    assert result.exit_code == 1
    assert result.stderr == ("Delete 1 closed or error session last active more than 1d ago? [y/N]: n\n"
                             "nothing deleted\n")


# ------------------------------------------------------- footers and counts


def test_a_table_cut_at_its_default_limit_says_how_to_see_the_rest(run, db):
    f.agent("ops", id="a-1")
    _many_memories(db, "a-1", n=130)
    db.close()
    table = run("memories", "list", "-o", "table", env={"COLUMNS": "150"})
    assert table.stderr == "… 30 more memories not shown (use --limit or -o json)\n"
    given = run("memories", "list", "-o", "table", "--limit", "100", env={"COLUMNS": "150"})
    assert given.stderr == "… 30 more memories not shown\n"
    both = run("memories", "list", "-o", "json", "--limit", "100")
    assert both.stderr == "… 30 more memories not shown\n" and len(json.loads(both.stdout)) == 100


def test_a_bulk_change_gives_no_advice_to_see_rows_that_are_gone(run, db):
    f.agent("ops", id="a-1")
    _many_memories(db, "a-1", n=130)
    db.close()
    preview = run("memories", "prune", "--dry-run", "-o", "table", env={"COLUMNS": "150"})
    assert preview.stderr == "… 30 more not shown (-o tsv or -o json shows all)\nwould prune 130 memories (dry run)\n"
    done = run("memories", "prune", "--yes", "-o", "table", env={"COLUMNS": "150"})
    assert done.stderr == "… 30 more not shown\npruned 130 memories\n"


def test_progress_bars_count_with_thousands_separators(run, db):
    f.agent("ops", id="a-1")
    _many_memories(db, "a-1")
    db.close()
    terminal = Settings(stderr_terminal=True, progress_delay=0.0,
                        batching=Batching(first=1000, smallest=1000, largest=1000))
    result = run("memories", "prune", "--yes", "-o", "ids", settings=terminal)
    assert result.exit_code == 0
    assert "/2,415" in result.stderr and "\x1b[" in result.stderr  # drawn, with separators
    assert "2415" not in result.stderr
    assert result.stderr.rstrip("\n").endswith("pruned 2,415 memories")
