"""memories: list, show, add, edit, delete, pin/unpin, decay, prune."""

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time

from nitejarctl.models import AgentMemory
from tests import factories as f
from tests.conftest import Run

NOW = 1_790_000_000
DAY = 86400
WEEK = 7 * DAY
WIDE = {"COLUMNS": "400"}
HOSTILE = "[bold]loud[/] :smile: 'single' \"double\" 100% a_b \\ [/]"


def at(ts: int):
    return freeze_time(datetime.fromtimestamp(ts, UTC))


def strengths(ids=None) -> dict:
    query = AgentMemory.select(AgentMemory.id, AgentMemory.strength)
    if ids is not None:
        query = query.where(AgentMemory.id.in_(list(ids)))
    return dict(query.tuples())


def row(memory_id: str) -> dict:
    return AgentMemory.select().where(AgentMemory.id == memory_id).dicts().get()


def ids_of(result) -> list:
    return result.stdout.split()


# --------------------------------------------------------------------- listing


@pytest.fixture
def listed(db):
    with at(NOW):
        ops = f.agent("ops", id="agent-ops")
        dev = f.agent("dev", id="agent-dev")
        a = f.memory(ops["id"], HOSTILE, strength=0.75, id="m-a", access_count=2,
                     last_accessed_at=NOW - 60, created_at=NOW - DAY)
        b = f.memory(ops["id"], "plain fact", strength=0.5, id="m-b", created_at=NOW - DAY)
        c = f.memory(dev["id"], "pinned, with a comma", permanent=1, id="m-c", created_at=NOW - DAY)
    AgentMemory.update(embedding=b"\x00\x01\x02\x03" * 4).execute()
    return a, b, c


LISTED = [
    {"id": "m-a", "agent_id": "agent-ops", "strength": 0.75, "permanent": 0, "access_count": 2,
     "last_accessed_at": NOW - 60, "created_at": NOW - DAY, "updated_at": NOW - DAY,
     "content": HOSTILE},
    {"id": "m-b", "agent_id": "agent-ops", "strength": 0.5, "permanent": 0, "access_count": 0,
     "last_accessed_at": None, "created_at": NOW - DAY, "updated_at": NOW - DAY,
     "content": "plain fact"},
    {"id": "m-c", "agent_id": "agent-dev", "strength": 1.0, "permanent": 1, "access_count": 0,
     "last_accessed_at": None, "created_at": NOW - DAY, "updated_at": NOW - DAY,
     "content": "pinned, with a comma"},
]
# Listing order: by agent id, strongest first.
ORDER = [LISTED[2], LISTED[0], LISTED[1]]
FIELDS = list(LISTED[0])


def test_list_json(run, listed):
    result = run("memories", "list", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == ORDER
    assert "embedding" not in result.stdout


def test_list_jsonl(run, listed):
    result = run("memories", "list", "-o", "jsonl")
    assert [json.loads(line) for line in result.stdout.splitlines()] == ORDER


def test_list_csv(run, listed):
    result = run("memories", "list", "-o", "csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == FIELDS
    assert rows[1] == ["m-c", "agent-dev", "1.0", "1", "0", "", str(NOW - DAY), str(NOW - DAY),
                       "pinned, with a comma"]
    assert rows[2][-1] == HOSTILE and len(rows) == 4


def test_list_tsv(run, listed):
    result = run("memories", "list", "-o", "tsv", "--agent", "ops")
    lines = result.stdout.splitlines()
    assert lines[0] == "\t".join(FIELDS)
    assert lines[1] == "\t".join(["m-a", "agent-ops", "0.75", "0", "2", str(NOW - 60), str(NOW - DAY),
                                  str(NOW - DAY), HOSTILE.replace("\\", "\\\\")])
    assert lines[2].startswith("m-b\tagent-ops\t0.5\t0\t0\t\t")
    assert len(lines) == 3


def test_list_ids(run, listed):
    result = run("memories", "list", "-o", "ids")
    assert result.stdout == "m-c\nm-a\nm-b\n"


def test_list_table_renders_content_literally(run, listed):
    result = run("memories", "list", "-o", "table", env=WIDE)
    assert result.exit_code == 0
    assert "[bold]loud[/] :smile: 'single'" in result.stdout
    assert "😄" not in result.stdout
    assert "m-c" in result.stdout and "pinned, with a comma" in result.stdout


def test_list_table_shortens_long_content(run, db):
    a = f.agent("ops")
    f.memory(a["id"], "x" * 100_000, id="long")
    result = run("memories", "list", "-o", "table", env=WIDE)
    assert "x" * 79 + "…" in result.stdout and "x" * 81 not in result.stdout
    full = run("memories", "list", "-o", "json")
    assert json.loads(full.stdout)[0]["content"] == "x" * 100_000


def test_list_filters(run, listed):
    def ids(*args):
        result = run("memories", "list", "-o", "ids", *args)
        assert result.exit_code == 0, result.stderr
        return ids_of(result)

    assert ids("--agent", "ops") == ["m-a", "m-b"]
    assert ids("--agent", "agent-dev") == ["m-c"]
    assert ids("--min-strength", "0.6") == ["m-c", "m-a"]
    assert ids("--permanent") == ["m-c"]
    assert ids("--no-permanent") == ["m-a", "m-b"]
    assert ids("--search", "PLAIN") == ["m-b"]
    assert ids("--agent", "ops", "--no-permanent", "--min-strength", "0.6") == ["m-a"]


def test_search_is_literal(run, db):
    a = f.agent("ops")
    f.memory(a["id"], "uptime is 100% today", id="pct")
    f.memory(a["id"], "uptime is 1000 today", id="digits")
    f.memory(a["id"], "snake_case name", id="under")
    f.memory(a["id"], "snakeXcase name", id="x")
    f.memory(a["id"], r"a back\slash", id="slash")

    def search(text):
        return sorted(ids_of(run("memories", "list", "-o", "ids", "--search", text)))

    assert search("100%") == ["pct"]
    assert search("0% t") == ["pct"]
    assert search("e_c") == ["under"]
    assert search("%") == ["pct"]
    assert search("_") == ["under"]
    assert search("\\s") == ["slash"]


def test_list_limit_and_footer(run, db):
    a = f.agent("ops")
    for i in range(5):
        f.memory(a["id"], f"m{i}", strength=1 - i / 10, id=f"m{i}")
    result = run("memories", "list", "-o", "ids", "--limit", "2")
    assert result.stdout == "m0\nm1\n"
    assert "3 more memories not shown" in result.stderr


def test_list_unknown_agent_exits_3(run, db):
    result = run("memories", "list", "--agent", "ghost")
    assert result.exit_code == 3
    assert result.stderr == "Error: no agent with id or name 'ghost'\n"


def test_list_empty_is_success(run, db):
    result = run("memories", "list", "-o", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []


# ------------------------------------------------------------------------ show


def test_show_hides_the_embedding(run, listed):
    result = run("memories", "show", "m-a", "-o", "json")
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    assert shown == {**LISTED[0], "embedding_bytes": 16}
    table = run("memories", "show", "m-a", "-o", "table", env=WIDE)
    assert HOSTILE in table.stdout and "embedding_bytes" in table.stdout
    assert "\\u0000" not in table.stdout and "AAECAw" not in table.stdout


def test_show_unknown_exits_3(run, db):
    result = run("memories", "show", "nope")
    assert result.exit_code == 3
    assert result.stderr == "Error: no memory with id 'nope'\n"


# ------------------------------------------------------------------ add / edit


@at(NOW)
def test_add_round_trips_hostile_content(run, db):
    f.agent("ops", id="agent-ops")
    long_text = HOSTILE + "\n" + "é" * 100_000
    result = run("memories", "add", "ops", "-", "-o", "json", input=long_text)
    assert result.exit_code == 0, result.stderr
    added = json.loads(result.stdout)[0]
    assert result.stderr == f"added memory {added['id']}\n"
    assert added["content"] == long_text
    assert added | {"id": None} == {"id": None, "agent_id": "agent-ops", "strength": 1.0, "permanent": 0,
                                    "access_count": 0, "last_accessed_at": None, "created_at": NOW,
                                    "updated_at": NOW, "content": long_text}
    assert json.loads(run("memories", "show", added["id"], "-o", "json").stdout)["content"] == long_text
    shown = run("memories", "show", added["id"], "-o", "table", env=WIDE)
    assert "[bold]loud[/] :smile:" in shown.stdout


def test_add_permanent_with_strength(run, db):
    f.agent("ops")
    result = run("memories", "add", "ops", "fact", "--permanent", "--strength", "0.4", "-o", "json")
    added = json.loads(result.stdout)[0]
    assert (added["permanent"], added["strength"]) == (1, 0.4)


def test_add_rejects_bad_input(run, db):
    f.agent("ops")
    bad_strength = run("memories", "add", "ops", "x", "--strength", "1.5")
    assert bad_strength.exit_code == 2
    assert "Invalid value for '--strength': 1.5 is not in the range 0.0<=x<=1.0" in bad_strength.stderr
    empty = run("memories", "add", "ops", "  ")
    assert (empty.exit_code, empty.stderr) == (2, "Error: memory content must not be empty\n")
    ghost = run("memories", "add", "ghost", "x")
    assert (ghost.exit_code, ghost.stderr) == (3, "Error: no agent with id or name 'ghost'\n")
    assert AgentMemory.select().count() == 0


def test_edit_keeps_the_decay_clock(run, db):
    """An edit settles the decay owed so far: editing mid-week and decaying at
    the end of the week gives the strength a single decay would."""
    a = f.agent("ops")
    with at(NOW):
        f.memory(a["id"], "old", id="edited")
        f.memory(a["id"], "same", id="untouched")
    AgentMemory.update(embedding=b"\x01" * 8).execute()
    with at(NOW + WEEK // 2):
        result = run("memories", "edit", "edited", HOSTILE, "-o", "json")
    assert result.exit_code == 0, result.stderr
    edited = json.loads(result.stdout)[0]
    assert edited["content"] == HOSTILE and edited["updated_at"] == NOW + WEEK // 2
    assert edited["strength"] == pytest.approx(0.95)
    assert row("edited")["embedding"] is None and row("untouched")["embedding"] is not None
    with at(NOW + WEEK):
        assert run("memories", "decay").exit_code == 0
    s = strengths()
    assert s["edited"] == pytest.approx(0.9, abs=1e-9)
    assert s["edited"] == pytest.approx(s["untouched"], abs=1e-9)


def test_edit_unknown_exits_3(run, db):
    result = run("memories", "edit", "nope", "text")
    assert (result.exit_code, result.stderr) == (3, "Error: no memory with id 'nope'\n")


# ---------------------------------------------------------------------- delete


def test_delete(run, listed):
    refused = run("memories", "delete", "m-a", "m-b")
    assert (refused.exit_code, refused.stderr) == (
        2, "Error: refusing to delete without --yes when not on a terminal\n")
    dry = run("memories", "delete", "m-a", "m-b", "--dry-run", "-o", "ids")
    assert dry.exit_code == 0 and dry.stdout == "m-a\nm-b\n"
    assert dry.stderr == "would delete 2 memories (dry run)\n"
    assert AgentMemory.select().count() == 3
    done = run("memories", "delete", "m-a", "m-b", "-y", "-o", "json")
    assert done.exit_code == 0 and done.stderr == "deleted 2 memories\n"
    assert json.loads(done.stdout) == LISTED[:2]
    assert list(strengths()) == ["m-c"]


def test_delete_unknown_exits_3_and_deletes_nothing(run, listed):
    result = run("memories", "delete", "m-a", "ghost", "-y")
    assert (result.exit_code, result.stderr) == (3, "Error: no memory with id 'ghost'\n")
    two = run("memories", "delete", "ghost", "m-a", "ghoul", "-y")
    assert two.stderr == "Error: no memories with ids 'ghost', 'ghoul'\n"
    assert AgentMemory.select().count() == 3


def test_delete_ignore_missing(run, listed):
    result = run("memories", "delete", "ghost", "m-b", "-y", "--ignore-missing", "-o", "ids")
    assert result.exit_code == 0
    assert result.stderr == "Warning: no memory with id 'ghost'\ndeleted 1 memory\n"
    assert result.stdout == "m-b\n"
    assert sorted(strengths()) == ["m-a", "m-c"]


# --------------------------------------------------------------------- pinning


def test_pin_and_unpin(run, db):
    a = f.agent("ops")
    with at(NOW):
        f.memory(a["id"], "weak", strength=0.3, id="m1")
        f.memory(a["id"], "other", strength=0.6, id="m2")
    with at(NOW + WEEK):
        pinned = run("memories", "pin", "m1", "-o", "json")
    assert pinned.exit_code == 0 and pinned.stderr == "pinned 1 memory\n"
    assert json.loads(pinned.stdout)[0] | {"content": None} == {
        "id": "m1", "agent_id": a["id"], "strength": 1.0, "permanent": 1, "access_count": 0,
        "last_accessed_at": None, "created_at": NOW, "updated_at": NOW + WEEK, "content": None}
    with at(NOW + 3 * WEEK):
        assert run("memories", "decay").exit_code == 0
        assert strengths()["m1"] == 1.0
        unpinned = run("memories", "unpin", "m1", "-o", "ids")
    assert unpinned.stdout == "m1\n" and unpinned.stderr == "unpinned 1 memory\n"
    assert row("m1")["permanent"] == 0
    with at(NOW + 4 * WEEK):
        run("memories", "decay")
    # Charged from the unpin on, not for the weeks it was pinned.
    assert strengths()["m1"] == pytest.approx(0.9)


def test_pin_unknown_exits_3(run, db):
    a = f.agent("ops")
    f.memory(a["id"], "x", id="m1", strength=0.5)
    result = run("memories", "pin", "m1", "ghost")
    assert (result.exit_code, result.stderr) == (3, "Error: no memory with id 'ghost'\n")
    assert row("m1")["permanent"] == 0 and row("m1")["strength"] == 0.5


# ----------------------------------------------------------------------- decay


def _decay_fixture():
    """Agents with different rates; memories of every kind. Returns ids."""
    fast = f.agent("fast", config={"memorySettings": {"decayRate": 0.1}})
    slow = f.agent("slow", config={"memorySettings": {"decayRate": 0.005}})  # < 0.001 a day
    plain = f.agent("plain")  # no config: 0.1
    odd = f.agent("odd", config={"memorySettings": {"decayRate": "fast"}})  # invalid: 0.1
    steep = f.agent("steep", config={"memorySettings": {"decayRate": 0.5}})
    specs = [
        ("fast-new", fast, dict(created_at=NOW)),
        ("fast-accessed", fast, dict(strength=0.8, created_at=NOW - 9 * WEEK,
                                     last_accessed_at=NOW - DAY)),
        ("fast-pinned", fast, dict(strength=0.5, permanent=1, created_at=NOW - 9 * WEEK)),
        ("slow", slow, dict(created_at=NOW)),
        ("plain", plain, dict(strength=0.7, created_at=NOW - 3 * DAY, updated_at=NOW)),
        ("odd", odd, dict(created_at=NOW)),
        ("steep-floor", steep, dict(strength=0.3, created_at=NOW)),
        ("tiny", plain, dict(strength=0.0008, created_at=NOW)),
    ]
    rows = {}
    for memory_id, agent, kwargs in specs:
        rows[memory_id] = f.memory(agent["id"], memory_id, id=memory_id, **kwargs)
    return rows


def _reset(rows):
    AgentMemory.delete().execute()
    for values in rows.values():
        AgentMemory.insert(values).execute()


EXPECTED_AFTER_TWO_WEEKS = {
    "fast-new": 0.8,
    "fast-accessed": 0.8 - (2 * WEEK + DAY) / WEEK * 0.1,
    "fast-pinned": 0.5,
    "slow": 0.99,
    "plain": 0.5,
    "odd": 0.8,
    "steep-floor": 0.0,
    "tiny": 0.0008,
}


def test_decay_daily_equals_once(run, db):
    """Fourteen daily runs, two weekly runs and one run after two weeks give the
    same strengths — including rows the threshold skipped on some days."""
    with at(NOW):
        rows = _decay_fixture()

    def run_at(ts, *args):
        with at(ts):
            result = run("memories", "decay", *args)
        assert result.exit_code == 0, result.stderr
        return result

    day1 = run_at(NOW + DAY, "-o", "ids")
    # slow: 0.005/7 a day is under the threshold; tiny: strength itself is; pinned never.
    assert sorted(ids_of(day1)) == ["fast-accessed", "fast-new", "odd", "plain", "steep-floor"]
    assert strengths()["slow"] == 1.0 and row("slow")["updated_at"] == NOW
    for day in range(2, 15):
        run_at(NOW + day * DAY)
    daily = strengths()

    _reset(rows)
    run_at(NOW + WEEK)
    run_at(NOW + 2 * WEEK)
    weekly = strengths()

    _reset(rows)
    once = run_at(NOW + 2 * WEEK, "-o", "json")
    assert once.stderr == "decayed 6 memories\n"
    assert {r["id"]: r["rate"] for r in json.loads(once.stdout)} == {
        "fast-new": 0.1, "fast-accessed": 0.1, "slow": 0.005, "plain": 0.1, "odd": 0.1,
        "steep-floor": 0.5}
    single = strengths()

    for memory_id, expected in EXPECTED_AFTER_TWO_WEEKS.items():
        assert single[memory_id] == pytest.approx(expected, abs=1e-9), memory_id
        assert weekly[memory_id] == pytest.approx(expected, abs=1e-9), memory_id
        assert daily[memory_id] == pytest.approx(expected, abs=1e-9), memory_id
    assert row("fast-pinned")["updated_at"] == NOW - 9 * WEEK and row("tiny")["updated_at"] == NOW
    assert row("fast-new")["updated_at"] == NOW + 2 * WEEK


def test_decay_threshold(run, db):
    a = f.agent("ops", config={"memorySettings": {"decayRate": 0.1}})
    with at(NOW):
        f.memory(a["id"], "m", id="m")
    # 0.1 a week: 0.0009 after 5443 s, 0.0011 after 6653 s.
    with at(NOW + 5443):
        result = run("memories", "decay", "-o", "ids")
    assert (result.stdout, result.stderr) == ("", "decayed 0 memories\n")
    assert row("m")["strength"] == 1.0 and row("m")["updated_at"] == NOW
    with at(NOW + 6653):
        result = run("memories", "decay", "-o", "ids")
    assert result.stdout == "m\n"
    assert row("m")["strength"] == pytest.approx(1 - 6653 / WEEK * 0.1)
    assert row("m")["updated_at"] == NOW + 6653


def test_decay_rate_option_and_agent(run, db):
    a = f.agent("ops", config={"memorySettings": {"decayRate": 0.1}})
    b = f.agent("dev")
    with at(NOW):
        f.memory(a["id"], "a", id="a")
        f.memory(b["id"], "b", id="b")
    with at(NOW + WEEK):
        result = run("memories", "decay", "--agent", "ops", "--rate", "0.3", "-o", "csv")
    assert result.stdout == f"id,agent_id,rate,previous_strength,strength\na,{a['id']},0.3,1.0,0.7\n"
    assert strengths() == {"a": pytest.approx(0.7), "b": 1.0}


def test_decay_dry_run_changes_nothing(run, db):
    with at(NOW):
        rows = _decay_fixture()
    with at(NOW + 2 * WEEK):
        dry = run("memories", "decay", "--dry-run", "-o", "json")
    assert dry.exit_code == 0
    assert dry.stderr == "would decay 6 memories (dry run)\n"
    previewed = {r["id"]: r["strength"] for r in json.loads(dry.stdout)}
    assert strengths() == {k: v["strength"] for k, v in rows.items()}
    assert all(row(k)["updated_at"] == v["updated_at"] for k, v in rows.items())
    with at(NOW + 2 * WEEK):
        real = run("memories", "decay", "-o", "json")
    assert json.loads(real.stdout) == json.loads(dry.stdout)
    assert previewed == pytest.approx({k: EXPECTED_AFTER_TWO_WEEKS[k] for k in previewed}, abs=1e-9)


def test_decay_rejects_negative_rate(run, db):
    result = run("memories", "decay", "--rate", "-0.1")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Invalid value for '--rate': -0.1 is not in the range x>=0")


# ----------------------------------------------------------------------- prune


def _prune_fixture():
    capped = f.agent("capped", config={"memorySettings": {"maxStoredMemories": 3}})
    loose = f.agent("loose")
    floor = f.agent("floor", config={"memorySettings": {"minStrength": 0.3}})
    for i, s in enumerate([0.9, 0.8, 0.7, 0.6, 0.05]):
        f.memory(capped["id"], f"c{i}", id=f"c{i}", strength=s)
    f.memory(capped["id"], "pinned", id="c-pin", strength=0.01, permanent=1)
    # Equal strengths: the more recently used is kept.
    f.memory(capped["id"], "tie-old", id="c-tie-old", strength=0.8, last_accessed_at=NOW - WEEK)
    for i, s in enumerate([0.5, 0.2, 0.09]):
        f.memory(loose["id"], f"l{i}", id=f"l{i}", strength=s)
    f.memory(floor["id"], "f0", id="f0", strength=0.25)
    f.memory(floor["id"], "f1", id="f1", strength=0.35)


@at(NOW)
def test_prune_defaults_use_agent_settings(run, db):
    _prune_fixture()
    dry = run("memories", "prune", "--dry-run", "-o", "csv")
    assert dry.exit_code == 0, dry.stderr
    rows = list(csv.DictReader(io.StringIO(dry.stdout)))
    # capped keeps 3 in all: c-pin (pinned, counts), c0 (0.9), c1 (0.8, used more recently than tie-old).
    assert {r["id"]: r["reason"] for r in rows} == {
        "c-tie-old": "over the limit of 3", "c2": "over the limit of 3", "c3": "over the limit of 3",
        "c4": "strength < 0.1", "l2": "strength < 0.1", "f0": "strength < 0.3"}
    assert dry.stderr == "would prune 6 memories (dry run)\n"
    assert AgentMemory.select().count() == 12
    done = run("memories", "prune", "--yes", "-o", "csv")
    assert done.exit_code == 0 and done.stderr == "pruned 6 memories\n"
    assert done.stdout == dry.stdout
    assert sorted(strengths()) == ["c-pin", "c0", "c1", "f1", "l0", "l1"]


@at(NOW)
def test_prune_with_options(run, db):
    _prune_fixture()
    result = run("memories", "prune", "--keep", "1", "--below", "0.4", "-y", "-o", "ids")
    assert result.exit_code == 0
    # capped: the pinned memory fills the single place; loose keeps l0; floor's f1 < 0.4.
    assert sorted(strengths()) == ["c-pin", "l0"]
    assert len(ids_of(result)) == 10


@at(NOW)
def test_prune_one_agent(run, db):
    _prune_fixture()
    result = run("memories", "prune", "--agent", "loose", "--keep", "0", "-y", "-o", "ids")
    assert sorted(ids_of(result)) == ["l0", "l1", "l2"]
    assert AgentMemory.select().count() == 9


@at(NOW)
def test_prune_refuses_without_yes(run, db):
    _prune_fixture()
    result = run("memories", "prune")
    assert (result.exit_code, result.stderr) == (
        2, "Error: refusing to delete without --yes when not on a terminal\n")
    assert AgentMemory.select().count() == 12


@at(NOW)
def test_prune_spares_memories_used_after_planning(db):
    """Between the ranking and the deletion, a memory nitejar reinforces or
    pins is no longer a victim."""
    from nitejarctl.db.batches import Bulk
    from nitejarctl.maintenance import prune

    _prune_fixture()
    with prune.PrunePlan(db, prune.rules(db)) as plan:
        assert plan.total == 6
        AgentMemory.update(last_accessed_at=NOW, strength=0.25).where(AgentMemory.id == "c4").execute()
        AgentMemory.update(permanent=1).where(AgentMemory.id == "l2").execute()
        rows = []
        assert plan.execute(Bulk(sink=rows.extend)) == 4
    assert sorted(row[prune.COLUMNS.index("id")] for row in rows) == ["c-tie-old", "c2", "c3", "f0"]
    assert {"c4", "l2"} <= set(strengths())


# -------------------------------------------------------- nitejar's own database


def test_on_a_nitejar_created_database(upstream_url):
    run = Run(upstream_url)
    conn = sqlite3.connect(upstream_url)
    conn.execute("INSERT INTO agents (id, name, config) VALUES ('a1', 'nj', "
                 "'{\"memorySettings\": {\"maxStoredMemories\": 1}}')")
    conn.commit()
    conn.close()
    with at(NOW):
        added = run("memories", "add", "nj", HOSTILE, "-o", "json")
        assert added.exit_code == 0, added.stderr
        memory_id = json.loads(added.stdout)[0]["id"]
        assert run("memories", "add", "nj", "second", "--strength", "0.5").exit_code == 0
    with at(NOW + WEEK):
        edited = run("memories", "edit", memory_id, "changed", "-o", "json")
        assert edited.exit_code == 0, edited.stderr
        assert run("memories", "decay").exit_code == 0
        shown = json.loads(run("memories", "show", memory_id, "-o", "json").stdout)
        assert shown["version"] == 2 and shown["memory_kind"] == "fact"
        assert shown["content"] == "changed" and shown["strength"] == pytest.approx(0.9)
        assert run("memories", "pin", memory_id).exit_code == 0
        listed = json.loads(run("memories", "list", "-o", "json").stdout)
        assert [m["id"] for m in listed][0] == memory_id and "version" not in listed[0]
        pruned = run("memories", "prune", "-y", "-o", "ids")
        assert pruned.exit_code == 0 and len(ids_of(pruned)) == 1
    conn = sqlite3.connect(upstream_url)
    assert conn.execute("SELECT content, version, memory_kind, permanent FROM agent_memories").fetchall() \
        == [("changed", 3, "fact", 1)]
    conn.close()


def test_decay_is_one_statement_per_batch(db):
    """Agents are grouped by rate: one UPDATE per batch of keys covering every
    rate (a CASE over the groups), never one per memory or per rate; rate-0
    agents are left alone."""
    from nitejarctl.db.batches import Bulk
    from nitejarctl.maintenance import decay

    agents = [f.agent("a", config={"memorySettings": {"decayRate": 0.2}}),
              f.agent("b", config={"memorySettings": {"decayRate": 0.2}}),
              f.agent("c"), f.agent("d", config={"memorySettings": {"decayRate": 0}})]
    with at(NOW):
        for agent in agents:
            for i in range(7):
                f.memory(agent["id"], f"m{i}")
    statements = []
    db.trace = lambda sql, params, seconds: statements.append(sql)
    plan = decay.plan(db)
    assert plan.rates == [0.1, 0.2]
    with at(NOW + WEEK):
        assert decay.decay(db, plan, NOW + WEEK, Bulk()) == 21
    assert sum(s.startswith("UPDATE") for s in statements) == 1
    assert sum(s.startswith("SELECT") and '"agents"' in s for s in statements) == 1  # the settings, once


def test_changed_rows_table_shows_the_first_100(run, db):
    a = f.agent("ops")
    with at(NOW):
        for i in range(105):
            f.memory(a["id"], f"m{i}")
    with at(NOW + WEEK):
        table = run("memories", "decay", "-o", "table")
    assert table.exit_code == 0
    assert table.stderr == "… 5 more not shown\ndecayed 105 memories\n"
    assert table.stdout.count("0.900") == 100
