"""A unique id prefix (at least 6 characters) wherever an id is taken."""

import json

import pytest

from tests import factories as f

A = "3f2c9a1e-0000-4000-8000-00000000000a"
B = "3f2c9a1e-0000-4000-8000-00000000000b"
C = "7d41b0aa-1111-4000-8000-00000000000c"


@pytest.fixture
def sessions(db):
    for sid in (A, B, C):
        f.sprite_session("agent-1", "tg:chat-1", id=sid)


def test_a_unique_prefix_names_the_session(sessions, run):
    shown = run("sessions", "show", "7d41b0", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == C
    closed = run("sessions", "close", "7d41b0aa-1", A, "-o", "ids")
    assert (closed.exit_code, closed.stdout) == (0, f"{C}\n{A}\n")


def test_an_ambiguous_prefix_is_a_usage_error_saying_how_many_match(sessions, run, db_url):
    from tests.helpers.dbdump import dump

    before = dump(db_url)
    result = run("sessions", "close", "3f2c9a", "-o", "ids")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: '3f2c9a' is the start of 2 sprite sessions' ids: give more of the id\n"
    assert dump(db_url) == before


def test_a_short_or_unknown_prefix_is_not_found(sessions, run):
    short = run("sessions", "show", "7d41b")  # fewer than 6 characters: an id, which none is
    assert (short.exit_code, short.stderr) == (3, "Error: no sprite session with id '7d41b'\n")
    none = run("sessions", "touch", "ffffff00")
    assert none.exit_code == 3
    ignored = run("sessions", "touch", "ffffff00", "--ignore-missing")
    assert ignored.exit_code == 0


def test_prefixes_of_every_kind_of_id(db, run):
    agent = f.agent("ops", id="a91c33d0-aaaa-4000-8000-000000000001")
    mem = f.memory(agent["id"], "a fact", id="m0e1d2c3-bbbb-4000-8000-000000000001")
    wi = f.work_item(id="w5e6f7a8-cccc-4000-8000-000000000001")
    job = f.job(wi["id"], agent["id"], id="j1a2b3c4-dddd-4000-8000-000000000001")
    summary = f.summary("tg:chat-1", agent["id"], id="s9f8e7d6-eeee-4000-8000-000000000001")
    integ = f.integration("telegram", "tg", id="i4d5e6f7-ffff-4000-8000-000000000001")
    for args, expected in ((("agents", "show", "a91c33"), agent["id"]),
                           (("memories", "show", "m0e1d2"), mem["id"]),
                           (("work-items", "show", "w5e6f7"), wi["id"]),
                           (("jobs", "show", "j1a2b3"), job["id"]),
                           (("compaction", "show", "s9f8e7"), summary["id"]),
                           (("integrations", "show", "i4d5e6"), integ["id"])):
        result = run(*args, "-o", "json")
        assert result.exit_code == 0, (args, result.stderr)
        assert json.loads(result.stdout)["id"] == expected, args
    assert run("jobs", "list", "--work-item", "w5e6f7", "-o", "ids").stdout == job["id"] + "\n"
    assert run("memories", "list", "--agent", "a91c33", "-o", "ids").stdout == mem["id"] + "\n"


def test_ambiguous_agent_and_integration_prefixes(db, run):
    f.agent("one", id="abcdef-1")
    f.agent("two", id="abcdef-2")
    f.integration("telegram", "x", id="fedcba-1")
    f.integration("telegram", "y", id="fedcba-2")
    agent = run("agents", "show", "abcdef")
    assert (agent.exit_code, agent.stderr) == (2, "Error: 'abcdef' is the start of 2 agents' ids: give more of the id\n")
    integ = run("integrations", "show", "fedcba-")
    assert integ.exit_code == 2 and "of 2 integrations' ids" in integ.stderr


def test_many_ids_at_once_and_prefixes_with_like_wildcards(db, run):
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(1200)]
    for sid in ids:
        f.sprite_session("agent-1", "k", id=sid)
    f.sprite_session("agent-1", "k", id="%_wild-card")
    result = run("sessions", "close", *ids[:1000], "0000044c", "%_wild", "-o", "ids")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ids[:1000] + [ids[1100], "%_wild-card"]
    assert run("sessions", "show", "000004a").exit_code == 2  # 000004a0 … 000004af
    assert run("sessions", "show", "%_wil_").exit_code == 3  # literal characters, not patterns
