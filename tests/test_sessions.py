"""sessions: list, show, close (ids, --stale, --conversation), error, touch, purge, history."""

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time

from nitejarctl.cli.context import Settings
from nitejarctl.db.batches import Batching, Bulk
from nitejarctl.models import SpriteSession
from nitejarctl.repositories import sprite_sessions as repo
from tests import factories as f

NOW = 1_790_000_000
HOUR = 3600
DAY = 86400
WIDE = {"COLUMNS": "400"}
BY_TWO = Batching(first=2, smallest=2, largest=2)
FIELDS = ["id", "sprite_name", "session_id", "session_key", "agent_id", "status", "created_at",
          "last_active_at"]
HOSTILE_KEYS = ["%", "_", "it's \"quoted\"", "[bold]loud[/]"]


def at(ts: int):
    return freeze_time(datetime.fromtimestamp(ts, UTC))


def session(sid, *, status="active", last=NOW - 60, key="tg:chat-1", agent="agent-ops",
            sprite="sprite-a"):
    return f.sprite_session(agent, key, status=status, sprite_name=sprite, session_id=f"api-{sid}",
                            last_active_at=last, created_at=NOW - DAY, id=sid)


def state() -> dict:
    """id -> (status, last_active_at) of every session."""
    query = SpriteSession.select(SpriteSession.id, SpriteSession.status, SpriteSession.last_active_at)
    return {i: (s, t) for i, s, t in query.tuples()}


def expected(sid, *, status="active", last=NOW - 60, key="tg:chat-1", agent="agent-ops",
             sprite="sprite-a") -> dict:
    return {"id": sid, "sprite_name": sprite, "session_id": f"api-{sid}", "session_key": key,
            "agent_id": agent, "status": status, "created_at": NOW - DAY, "last_active_at": last}


def tsv(rows) -> str:
    lines = ["\t".join(FIELDS)] + ["\t".join(str(r[k]) for k in FIELDS) for r in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- list


@pytest.fixture
def fleet(db):
    """Sessions in every state; ages relative to NOW."""
    with at(NOW):
        f.agent("ops", id="agent-ops")
        session("s-stale-2h", last=NOW - 2 * HOUR)
        session("s-stale-3h", last=NOW - 3 * HOUR, sprite="sprite-b")
        session("s-edge", last=NOW - HOUR)  # exactly 1h: not older than now - 1h
        session("s-fresh", last=NOW - 60, agent="agent-dev")
        session("s-closed", status="closed", last=NOW - 2 * DAY)
        session("s-error", status="error", last=NOW - 3 * DAY)


def test_list_defaults_to_active_sessions_oldest_activity_first(fleet, run):
    with at(NOW):
        result = run("sessions", "list", "-o", "ids")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "s-stale-3h\ns-stale-2h\ns-edge\ns-fresh\n"
    assert result.stderr == ""


def test_list_stale_formats_exactly(fleet, run):
    rows = [expected("s-stale-3h", last=NOW - 3 * HOUR, sprite="sprite-b"),
            expected("s-stale-2h", last=NOW - 2 * HOUR)]
    with at(NOW):
        as_json = run("sessions", "list", "--stale", "1h", "-o", "json")
        as_jsonl = run("sessions", "list", "--stale", "3600", "-o", "jsonl")
        as_tsv = run("sessions", "list", "--stale", "60m", "-o", "tsv")
        as_csv = run("sessions", "list", "--stale", "1h", "-o", "csv")
        as_ids = run("sessions", "list", "--stale", "1h", "-o", "ids")
    compact = [json.dumps(r, separators=(",", ":")) for r in rows]
    assert as_json.stdout == "[\n" + ",\n".join(compact) + "\n]\n"
    assert as_jsonl.stdout == "".join(c + "\n" for c in compact)
    assert as_tsv.stdout == tsv(rows)
    assert as_csv.stdout == tsv(rows).replace("\t", ",")
    assert as_ids.stdout == "s-stale-3h\ns-stale-2h\n"
    assert {r.exit_code for r in (as_json, as_jsonl, as_tsv, as_csv, as_ids)} == {0}


def test_list_table(fleet, run):
    with at(NOW):
        result = run("sessions", "list", "--stale", "1h", "-o", "table", env=WIDE)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    # The agent by name; its id and the sprite's session id only with -o wide.
    assert lines[1].split() == ["sprite_name", "status", "last_active_at", "agent", "session_key",
                                "created_at", "id"]
    assert lines[3].split()[:2] == ["sprite-b", "active"] and "(3h ago)" in lines[3]
    assert lines[3].split()[6:8] == ["ops", "tg:chat-1"] and lines[3].split()[-1] == "s-stale-3h"
    assert "s-stale-2h" in lines[4] and "(2h ago)" in lines[4]


def test_list_status_filters(fleet, run):
    with at(NOW):
        closed = run("sessions", "list", "--status", "closed", "-o", "ids")
        error = run("sessions", "list", "--status", "error", "-o", "ids")
        every = run("sessions", "list", "--status", "all", "-o", "ids")
        stale_all = run("sessions", "list", "--status", "all", "--stale", "1h", "-o", "ids")
    assert closed.stdout == "s-closed\n"
    assert error.stdout == "s-error\n"
    assert every.stdout == "s-error\ns-closed\ns-stale-3h\ns-stale-2h\ns-edge\ns-fresh\n"
    assert stale_all.stdout == "s-stale-3h\ns-stale-2h\n"


def test_list_filters_by_agent_id_name_or_literal_id(fleet, run):
    with at(NOW):
        by_name = run("sessions", "list", "--agent", "ops", "-o", "ids")
        by_id = run("sessions", "list", "--agent", "agent-ops", "-o", "ids")
        literal = run("sessions", "list", "--agent", "agent-dev", "-o", "ids")  # no such agent row
        nobody = run("sessions", "list", "--agent", "nobody", "-o", "ids")
    assert by_name.stdout == by_id.stdout == "s-stale-3h\ns-stale-2h\ns-edge\n"
    assert literal.stdout == "s-fresh\n"
    # names no agent, and no session has it as its agent id: a typo, not an empty listing
    assert (nobody.exit_code, nobody.stdout, nobody.stderr) == (3, "", "Error: no agent with id or name 'nobody'\n")


def test_list_filters_by_sprite(fleet, run):
    with at(NOW):
        result = run("sessions", "list", "--sprite", "sprite-b", "-o", "ids")
    assert result.stdout == "s-stale-3h\n"


def test_list_limit_and_footer(fleet, run):
    with at(NOW):
        result = run("sessions", "list", "--limit", "3", "-o", "ids")
        tsv_default = run("sessions", "list")  # not a terminal: tsv, unlimited
    assert result.stdout == "s-stale-3h\ns-stale-2h\ns-edge\n"
    assert result.stderr == "… 1 more sessions not shown\n"
    assert len(tsv_default.stdout.splitlines()) == 5


def test_list_empty_is_success(db, run):
    for fmt, out in (("json", "[]\n"), ("ids", ""), ("tsv", "\t".join(FIELDS) + "\n")):
        result = run("sessions", "list", "-o", fmt)
        assert (result.exit_code, result.stdout) == (0, out)
    table = run("sessions", "list", "-o", "table")
    assert (table.exit_code, table.stdout, table.stderr) == (0, "", "no sessions\n")


def test_list_hostile_session_keys_match_literally_and_print_literally(db, run):
    with at(NOW):
        for i, key in enumerate(HOSTILE_KEYS):
            session(f"h{i}", key=key, last=NOW - i)
        session("plain", key="ab", last=NOW - 100)
        for i, key in enumerate(HOSTILE_KEYS):
            result = run("sessions", "list", "--session-key", key, "-o", "json")
            assert result.exit_code == 0
            assert [r["session_key"] for r in json.loads(result.stdout)] == [key]
            assert [r["id"] for r in json.loads(result.stdout)] == [f"h{i}"]
        table = run("sessions", "list", "--session-key", "[bold]loud[/]", "-o", "table", env=WIDE)
    assert "[bold]loud[/]" in table.stdout


def test_list_usage_errors(db, run):
    both = run("sessions", "list", "--stale", "1h", "--status", "closed")
    assert both.exit_code == 2
    assert both.stderr == ("Error: --stale selects active sessions; it cannot be combined with "
                           "--status closed\n")
    zero = run("sessions", "list", "--stale", "0")
    assert (zero.exit_code, zero.stderr) == (2, "Error: Invalid value for '--stale': '0' is not a "
                                                "positive duration (see 'nitejarctl sessions list --help')\n")
    for bad in ("-5", "soon", "1h-"):
        result = run("sessions", "list", "--stale", bad)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"Error: Invalid value for '--stale': '{bad}' is not a duration")
        assert result.stderr.count("\n") == 1
    assert run("sessions", "list", "--status", "gone").exit_code == 2


# ---------------------------------------------------------------------- show


def test_show(fleet, run):
    result = run("sessions", "show", "s-edge", "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == expected("s-edge", last=NOW - HOUR)
    table = run("sessions", "show", "s-edge", "-o", "table", env=WIDE)
    assert "api-s-edge" in table.stdout


def test_show_unknown_id(db, run):
    result = run("sessions", "show", "nope'%")
    assert result.exit_code == 3
    assert result.stderr == "Error: no sprite session with id \"nope'%\"\n"


# ------------------------------------------------------------------ by id


def test_close_ids_changes_found_reports_unchanged(fleet, run, db):
    with at(NOW):
        result = run("sessions", "close", "s-fresh", "s-closed", "s-error", "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        expected("s-fresh", status="closed", last=NOW, agent="agent-dev"),
        expected("s-error", status="closed", last=NOW, key="tg:chat-1")]
    assert result.stderr == "closed 2 sessions (1 already closed)\n"
    now = state()
    assert now["s-fresh"] == ("closed", NOW)
    assert now["s-closed"] == ("closed", NOW - 2 * DAY)  # unchanged, not re-stamped
    assert now["s-error"] == ("closed", NOW)
    assert now["s-stale-2h"] == ("active", NOW - 2 * HOUR)


def test_close_already_closed_is_success(fleet, run):
    with at(NOW):
        result = run("sessions", "close", "s-closed", "-o", "ids")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "closed 0 sessions (1 already closed)\n"


def test_close_unknown_id_exit_3(fleet, run):
    before = state()
    with at(NOW):
        result = run("sessions", "close", "nope")
    assert result.exit_code == 3
    assert result.stderr == "closed 0 sessions\nError: no sprite session with id 'nope'\n"
    assert state() == before


def test_close_found_and_missing_changes_found_then_exit_3(fleet, run):
    with at(NOW):
        result = run("sessions", "close", "s-fresh", "nope-1", "s-edge", "nope-2", "-o", "ids", "-q")
    assert result.exit_code == 3
    assert result.stdout == "s-fresh\ns-edge\n"
    assert result.stderr == "Error: no sprite sessions with ids 'nope-1', 'nope-2'\n"
    assert state()["s-fresh"] == ("closed", NOW)
    assert state()["s-edge"] == ("closed", NOW)


def test_close_many_missing_ids_stays_one_line(db, run):
    ids = [f"x{i:02}" for i in range(12)]
    result = run("sessions", "close", *ids, "-q")
    assert result.exit_code == 3
    shown = ", ".join(f"'{i}'" for i in ids[:10])
    assert result.stderr == f"Error: no sprite sessions with ids {shown} and 2 more\n"


def test_close_ignore_missing(fleet, run):
    with at(NOW):
        result = run("sessions", "close", "s-fresh", "nope", "--ignore-missing", "-o", "ids")
    assert result.exit_code == 0
    assert result.stdout == "s-fresh\n"
    assert result.stderr == "closed 1 session\nWarning: no sprite session with id 'nope'\n"


def test_close_duplicate_ids_count_once(fleet, run):
    with at(NOW):
        result = run("sessions", "close", "s-fresh", "s-fresh", "-o", "ids")
    assert (result.stdout, result.stderr) == ("s-fresh\n", "closed 1 session\n")


def test_close_ids_dry_run_prints_what_would_change_and_changes_nothing(fleet, run, db):
    before = state()
    with at(NOW):
        dry = run("sessions", "close", "s-fresh", "s-closed", "nope", "--dry-run", "-o", "json")
    assert dry.exit_code == 3
    assert dry.stderr == ("would close 1 session (1 already closed) (dry run)\n"
                          "Error: no sprite session with id 'nope'\n")
    assert state() == before
    with at(NOW):
        real = run("sessions", "close", "s-fresh", "s-closed", "nope", "-o", "json")
    assert real.stdout == dry.stdout
    assert json.loads(real.stdout) == [expected("s-fresh", status="closed", last=NOW, agent="agent-dev")]


def test_error_ids(fleet, run):
    with at(NOW):
        result = run("sessions", "error", "s-edge", "s-error", "-o", "ids")
        dry = run("sessions", "error", "s-fresh", "--dry-run", "-o", "ids")
    assert (result.exit_code, result.stdout) == (0, "s-edge\n")
    assert result.stderr == "marked 1 session as error (1 already in error)\n"
    assert (dry.stdout, dry.stderr) == ("s-fresh\n", "would mark 1 session as error (dry run)\n")
    assert state()["s-edge"] == ("error", NOW)
    assert state()["s-error"] == ("error", NOW - 3 * DAY)
    assert state()["s-fresh"] == ("active", NOW - 60)
    missing = run("sessions", "error", "nope")
    assert (missing.exit_code, missing.stderr.splitlines()[-1]) == (
        3, "Error: no sprite session with id 'nope'")
    assert run("sessions", "error").exit_code == 2


def test_touch_ids(fleet, run):
    with at(NOW + 10):
        result = run("sessions", "touch", "s-stale-2h", "s-closed", "-o", "json")
        again = run("sessions", "touch", "s-stale-2h", "-o", "ids")
        dry = run("sessions", "touch", "s-edge", "--dry-run", "-o", "ids")
    assert result.exit_code == 0
    assert [(r["id"], r["status"], r["last_active_at"]) for r in json.loads(result.stdout)] == [
        ("s-stale-2h", "active", NOW + 10), ("s-closed", "closed", NOW + 10)]
    assert result.stderr == "touched 2 sessions\n"
    assert (again.stdout, again.stderr) == ("", "touched 0 sessions (1 already touched this second)\n")
    assert dry.stdout == "s-edge\n"
    assert state()["s-edge"] == ("active", NOW - HOUR)
    assert run("sessions", "touch", "nope", "--ignore-missing").exit_code == 0


# ---------------------------------------------------------------- bulk close


def test_close_stale(fleet, run):
    with at(NOW):
        dry = run("sessions", "close", "--stale", "1h", "--dry-run", "-o", "json")
        assert dry.stderr == "would close 2 sessions (dry run)\n"
        assert state()["s-stale-2h"] == ("active", NOW - 2 * HOUR)
        real = run("sessions", "close", "--stale", "1h", "-o", "json")
    assert real.exit_code == 0
    assert real.stderr == "closed 2 sessions\n"
    rows = sorted(json.loads(real.stdout), key=lambda r: r["id"])
    assert rows == [expected("s-stale-2h", status="closed", last=NOW),
                    expected("s-stale-3h", status="closed", last=NOW, sprite="sprite-b")]
    assert sorted(json.loads(dry.stdout), key=lambda r: r["id"]) == rows
    after = state()
    assert after["s-edge"] == ("active", NOW - HOUR)
    assert after["s-fresh"] == ("active", NOW - 60)
    with at(NOW):
        again = run("sessions", "close", "--stale", "1h", "-o", "json")
    assert (again.exit_code, again.stdout, again.stderr) == (0, "[]\n", "closed 0 sessions\n")


def test_verbose_shows_every_statement_of_a_batched_close(db, run, backend):
    with at(NOW):
        session("v1", last=NOW - 2 * HOUR)
        session("v2", last=NOW - 60)
        result = run("sessions", "close", "--stale", "1h", "-v", "-o", "ids")
    assert (result.exit_code, result.stdout) == (0, "v1\n")
    lines = result.stderr.splitlines()
    timed = [line.split(" ms: ", 1) for line in lines if line.startswith("-- ") and " ms: " in line]
    statements = [sql for _, sql in timed]
    assert sum(bool(re.search(r"\bUPDATE\b", sql)) for sql in statements) == 1, statements  # one change
    # the batch's key scan, and its rows (on SQLite counted and read on a second connection; on
    # PostgreSQL returned by the UPDATE)
    assert sum(sql.startswith(("SELECT", "WITH")) for sql in statements) >= 2, statements
    assert all(float(ms[3:]) >= 0 for ms, _ in timed)
    # and where the time went, last
    assert re.fullmatch(r"-- time: start-up [\d.]+ s; statements [\d.]+ s \(\d+\); write lock [\d.]+ s in 1 batch; "
                        r".*total [\d.]+ s", lines[-1]), lines[-1]


def test_close_stale_in_several_batches(db, run):
    with at(NOW):
        for i in range(5):
            session(f"b{i}", last=NOW - 2 * HOUR - i)
        session("keep", last=NOW)
        result = run("sessions", "close", "--stale", "1h", "-o", "ids", settings=Settings(batching=BY_TWO))
    assert result.exit_code == 0
    assert sorted(result.stdout.split()) == ["b0", "b1", "b2", "b3", "b4"]
    assert result.stderr == "closed 5 sessions\n"
    assert {k: v for k, v in state().items() if v[0] == "active"} == {"keep": ("active", NOW)}


ODD_KEYS = ["tab\there", "line\nbreak", "cr\rhere", "back\\slash", "\\b not a backspace",
            "bs\x08 ff\x0c vt\x0b", "esc\x1b[31m", "é 🚀"]


def test_close_stale_prints_odd_text_as_tsv_exactly(db, run, backend):
    """The default output off a terminal (TSV) and ids: every character as
    nitejarctl's TSV writes it, whichever way the backend hands the rows over
    (on PostgreSQL the server writes them: COPY of the UPDATE … RETURNING)."""
    with at(NOW):
        for i, key in enumerate(ODD_KEYS):
            session(f"o{i}", key=key, last=NOW - 2 * HOUR - i)
        result = run("sessions", "close", "--stale", "1h", "-v", settings=Settings(batching=BY_TWO))
    assert result.exit_code == 0, result.stderr
    escaped = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
    rows = [expected(f"o{i}", status="closed", last=NOW, key="".join(escaped.get(c, c) for c in key))
            for i, key in enumerate(ODD_KEYS)]
    lines = result.stdout.split("\n")  # not splitlines(): \x0b and \x0c are a line's own
    assert lines[0] == "\t".join(FIELDS) and lines[-1] == ""
    assert sorted(lines[1:-1]) == sorted(tsv(rows).split("\n")[1:-1])
    if backend == "postgresql":
        changes = [line for line in result.stderr.split("\n") if line.startswith("-- ") and "UPDATE" in line]
        assert len(changes) >= 4 and all("COPY (UPDATE" in line for line in changes), changes
    with at(NOW):
        for i, key in enumerate(ODD_KEYS):
            session(f"p{i} {key}", last=NOW - 2 * HOUR - i)
        ids = run("sessions", "close", "--stale", "1h", "-o", "ids", settings=Settings(batching=BY_TWO))
    assert ids.exit_code == 0, ids.stderr
    assert sorted(ids.stdout.split("\n")[:-1]) == sorted(f"p{i} " + "".join(escaped.get(c, c) for c in key)
                                                         for i, key in enumerate(ODD_KEYS))


def _fail_on(db, backend, session_id: str) -> None:
    """A trigger that fails any change of one session: a database error in the
    middle of a batched change."""
    if backend == "sqlite":
        db.execute_sql(f"CREATE TRIGGER fail BEFORE UPDATE ON sprite_sessions WHEN OLD.id = '{session_id}' "
                       "BEGIN SELECT RAISE(ABORT, 'planted failure'); END")
        return
    db.execute_sql("CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'planted failure'; END $$")
    db.execute_sql(f"CREATE TRIGGER fail BEFORE UPDATE ON sprite_sessions FOR EACH ROW "
                   f"WHEN (OLD.id = '{session_id}') EXECUTE FUNCTION fail()")


def test_close_stale_failing_batch_reports_what_earlier_batches_committed(db, run, backend):
    with at(NOW):
        for i in range(5):
            session(f"b{i}", last=NOW - 2 * HOUR - i)  # keys in this order on both backends
    _fail_on(db, backend, "b2")
    with at(NOW):
        result = run("sessions", "close", "--stale", "1h", "-o", "ids", settings=Settings(batching=BY_TWO))
    assert result.exit_code == 1
    assert result.stdout == "b0\nb1\n"  # the committed batch's rows, printed all the same
    lines = result.stderr.splitlines()
    assert lines[0] == "interrupted: closed 2 of 5 stale sessions; the others are unchanged (rerun to finish)"
    assert lines[1].startswith("Error: database error: planted failure") and len(lines) == 2
    assert sorted(s for s, _ in state().values()) == ["active", "active", "active", "closed", "closed"]


def test_close_stale_table_shows_the_first_hundred(db, run):
    with at(NOW):
        SpriteSession.insert_many([expected(f"t{i:03}", last=NOW - 2 * HOUR) for i in range(102)]).execute()
        table = run("sessions", "close", "--stale", "1h", "-o", "table", env=WIDE)
    assert table.exit_code == 0
    assert table.stderr == "… 2 more not shown\nclosed 102 sessions\n"
    assert sum(line.lstrip().startswith("t") for line in table.stdout.splitlines()) == 100


def test_close_stale_repository_counts_without_rows(fleet, db):
    assert repo.close_stale(db, HOUR, NOW, Bulk(dry_run=True)) == 2
    assert repo.close_stale(db, HOUR, NOW, Bulk()) == 2
    assert repo.close_stale(db, HOUR, NOW, Bulk()) == 0
    assert repo.count_stale(db, HOUR, NOW) == 0


def test_close_conversation(db, run):
    with at(NOW):
        f.agent("ops", id="agent-ops")
        for i, key in enumerate(HOSTILE_KEYS):
            session(f"c{i}", key=key)
        session("c-other-agent", key="%", agent="agent-dev")
        session("c-closed", key="%", status="closed", last=NOW - DAY)
        result = run("sessions", "close", "--conversation", "%", "--agent", "ops", "-o", "json")
        quoted = run("sessions", "close", "--conversation", "it's \"quoted\"", "--agent", "agent-ops",
                     "--dry-run", "-o", "ids")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [expected("c0", key="%", status="closed", last=NOW)]
    assert result.stderr == "closed 1 session\n"
    assert (quoted.stdout, quoted.stderr) == ("c2\n", "would close 1 session (dry run)\n")
    after = state()
    assert sorted(i for i, (s, _) in after.items() if s == "closed") == ["c-closed", "c0"]
    assert after["c0"] == ("closed", NOW)
    assert after["c-other-agent"][0] == after["c1"][0] == after["c2"][0] == "active"


def test_close_usage_errors(fleet, run):
    cases = {
        (): "Error: give session ids, --stale DURATION, or --conversation SESSION_KEY --agent AGENT",
        ("s-fresh", "--stale", "1h"):
            "Error: session ids, --stale and --conversation are alternatives: give one of them",
        ("--stale", "1h", "--conversation", "k", "--agent", "ops"):
            "Error: session ids, --stale and --conversation are alternatives: give one of them",
        ("--conversation", "k"): "Error: --conversation and --agent go together",
        ("--agent", "ops"): "Error: --conversation and --agent go together",
    }
    before = state()
    for args, line in cases.items():
        result = run("sessions", "close", *args)
        assert (result.exit_code, result.stderr) == (2, line + "\n"), args
    assert state() == before


# --------------------------------------------------------------------- purge


@pytest.fixture
def purgeable(db):
    with at(NOW):
        session("p-closed-old", status="closed", last=NOW - 2 * DAY)
        session("p-error-old", status="error", last=NOW - 3 * DAY)
        session("p-closed-new", status="closed", last=NOW - HOUR)
        session("p-active-old", status="active", last=NOW - 5 * DAY)


def test_purge_refuses_without_yes_off_a_terminal(purgeable, run):
    before = state()
    with at(NOW):
        result = run("sessions", "purge", "--older-than", "1d")
    assert result.exit_code == 2
    assert result.stderr == "Error: refusing to delete without --yes when not on a terminal\n"
    assert result.stdout == ""
    assert state() == before


def test_purge_dry_run_then_yes(purgeable, run):
    before = state()
    with at(NOW):
        dry = run("sessions", "purge", "--older-than", "1d", "--dry-run", "-o", "json")
        assert state() == before
        real = run("sessions", "purge", "--older-than", "24h", "--yes", "-o", "json")
    assert dry.stderr == "would delete 2 sessions (dry run)\n"
    assert real.exit_code == 0
    assert real.stderr == "deleted 2 sessions\n"
    rows = [expected("p-closed-old", status="closed", last=NOW - 2 * DAY),
            expected("p-error-old", status="error", last=NOW - 3 * DAY)]
    assert sorted(json.loads(real.stdout), key=lambda r: r["id"]) == rows
    assert sorted(json.loads(dry.stdout), key=lambda r: r["id"]) == rows
    assert sorted(state()) == ["p-active-old", "p-closed-new"]


def test_purge_asks_on_a_terminal(purgeable, run):
    terminal = Settings(interactive=True)
    before = state()
    with at(NOW):
        declined = run("sessions", "purge", "--older-than", "1d", "-o", "ids", input="n\n", settings=terminal)
        assert state() == before
        accepted = run("sessions", "purge", "--older-than", "1d", "-o", "ids", input="y\n",
                       settings=Settings(interactive=True))
    question = "Delete 2 closed or error sessions last active more than 1d ago? [y/N]: "
    assert (declined.exit_code, declined.stdout) == (1, "")
    assert declined.stderr == question + "n\nnothing deleted\n"  # the runner echoes input
    assert accepted.exit_code == 0
    assert sorted(accepted.stdout.split()) == ["p-closed-old", "p-error-old"]
    assert accepted.stderr == question + "y\ndeleted 2 sessions\n"


def test_purge_in_batches_and_repository_count(db):
    with at(NOW):
        for i in range(5):
            session(f"old{i}", status="closed" if i % 2 else "error", last=NOW - 2 * DAY)
    seen = []
    assert repo.purge(db, DAY, NOW, Bulk(dry_run=True)) == 5
    assert repo.purge(db, DAY, NOW, Bulk(sink=seen.append, batching=BY_TWO)) == 5
    assert sorted(row[0] for batch in seen for row in batch) == [f"old{i}" for i in range(5)]
    assert max(len(batch) for batch in seen) == 2
    assert state() == {}


def test_purge_needs_older_than(db, run):
    result = run("sessions", "purge", "--yes")
    assert result.exit_code == 2
    assert result.stderr == ("Error: Missing option '--older-than'. "
                             "(see 'nitejarctl sessions purge --help')\n")


# -------------------------------------------------------------- query plans


def test_batches_walk_the_status_index(sqlite_url):
    """Each batch's key scan, and the reading of its rows, seeks in
    idx_sprite_sessions_status (status, rowid); the changes seek by rowid."""
    from nitejarctl.db import open_database, parse_url

    db = open_database(parse_url(sqlite_url))
    with at(NOW):
        for i in range(3):
            session(f"q{i}", last=NOW - 2 * HOUR)
            session(f"r{i}", status="closed", last=NOW - 2 * DAY)
    statements = []
    db.trace = lambda sql, params, seconds: statements.append((sql, params))
    try:
        repo.close_stale(db, HOUR, NOW, Bulk(batching=BY_TWO))
        repo.purge(db, DAY, NOW, Bulk(batching=BY_TWO))
        session("q-late", last=NOW - 2 * HOUR)
        session("r-late", status="closed", last=NOW - 2 * DAY)
        one = Batching(first=1, smallest=1, largest=1)
        repo.close_stale(db, HOUR, NOW, Bulk(sink=lambda rows: None, batching=one))  # their rows are read too
        repo.purge(db, DAY, NOW, Bulk(sink=lambda rows: None, batching=one))
    finally:
        db.trace = None
    reads = [(sql, params) for sql, params in statements if sql.startswith("SELECT") and "sprite_sessions" in sql]
    assert len(reads) >= 12
    for sql, params in reads:
        plan = " ".join(r[-1] for r in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
        assert "USING INDEX idx_sprite_sessions_status (status=?" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    writes = [(sql, params) for sql, params in statements if sql.startswith(("UPDATE", "DELETE"))]
    assert len(writes) >= 6
    for sql, params in writes:
        plan = " ".join(r[-1] for r in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
        assert "SCAN" not in plan, plan


# ------------------------------------------------------------------- history


@pytest.fixture
def transcript(db):
    with at(NOW):
        f.agent("ops", id="agent-ops")
        f.agent("dev", id="agent-dev")
        key = "tg:%_'[x]"
        # job B is created first, so its messages come first although they are newer
        wi_a = f.work_item(key, created_at=NOW - 500)
        job_a = f.job(wi_a["id"], "agent-ops", id="job-a", created_at=NOW - 400)
        wi_b = f.work_item(key, created_at=NOW - 900)
        job_b = f.job(wi_b["id"], "agent-dev", id="job-b", created_at=NOW - 800)
        # the same second: the order they were written in (not their ids' order)
        f.message(job_a["id"], "user", "question A", id="m-a9", created_at=NOW - 300)
        f.message(job_a["id"], "assistant", content={"content": "answer A"}, id="m-a2",
                  created_at=NOW - 300)
        f.message(job_a["id"], "tool", content="plain [bold]text[/]", id="m-a0", created_at=NOW - 350)
        f.message(job_b["id"], "user", content={"other": 1}, id="m-b1", created_at=NOW - 100)
        f.message(job_b["id"], "assistant", content={"text": "answer B", "content": "ignored"},
                  id="m-b2", created_at=NOW - 50)
        failed = f.job(wi_a["id"], "agent-ops", id="job-f", status="FAILED", created_at=NOW - 200)
        f.message(failed["id"], "user", "lost", id="m-f1", created_at=NOW - 200)
        other = f.work_item("tg:%", created_at=NOW)
        f.message(f.job(other["id"], "agent-ops", created_at=NOW)["id"], "user", "elsewhere")
    return key


def test_history_order_and_text(transcript, run):
    result = run("sessions", "history", transcript, "-o", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [(r["id"], r["job_id"], r["agent_id"], r["role"], r["text"]) for r in rows] == [
        ("m-b1", "job-b", "agent-dev", "user", ""),
        ("m-b2", "job-b", "agent-dev", "assistant", "answer B"),
        ("m-a0", "job-a", "agent-ops", "tool", "plain [bold]text[/]"),
        ("m-a9", "job-a", "agent-ops", "user", "question A"),
        ("m-a2", "job-a", "agent-ops", "assistant", "answer A"),
    ]
    assert list(rows[0]) == ["id", "created_at", "job_id", "agent_id", "job_status", "role", "text"]
    assert rows[0]["created_at"] == NOW - 100 and rows[0]["job_status"] == "COMPLETED"


def test_history_formats_agent_filter_and_incomplete(transcript, run):
    ids = run("sessions", "history", transcript, "-o", "ids")
    assert ids.stdout == "m-b1\nm-b2\nm-a0\nm-a9\nm-a2\n"
    by_agent = run("sessions", "history", transcript, "--agent", "ops", "-o", "ids")
    assert by_agent.stdout == "m-a0\nm-a9\nm-a2\n"
    everything = run("sessions", "history", transcript, "--include-incomplete", "-o", "tsv")
    lines = everything.stdout.splitlines()
    assert lines[0] == "id\tcreated_at\tjob_id\tagent_id\tjob_status\trole\ttext"
    assert lines[-1] == f"m-f1\t{NOW - 200}\tjob-f\tagent-ops\tFAILED\tuser\tlost"
    assert len(lines) == 7
    table = run("sessions", "history", transcript, "-o", "table", env=WIDE)
    assert "plain [bold]text[/]" in table.stdout
    limited = run("sessions", "history", transcript, "--limit", "2", "-o", "ids")
    assert limited.stdout == "m-b1\nm-b2\n"
    assert limited.stderr == "… 3 more messages not shown\n"


def test_history_unknown_agent_and_empty(transcript, run):
    unknown = run("sessions", "history", transcript, "--agent", "ghost")
    assert unknown.exit_code == 3
    assert unknown.stderr == "Error: no agent with id or name 'ghost'\n"
    empty = run("sessions", "history", "no-such-key", "-o", "json")
    assert (empty.exit_code, empty.stdout) == (0, "[]\n")
    like = run("sessions", "history", "tg:%", "-o", "ids")  # `%` is no wildcard
    assert like.exit_code == 0 and len(like.stdout.split()) == 1


# ------------------------------------------------- a database nitejar created


def test_sessions_on_a_nitejar_created_database(upstream_url):
    from tests.conftest import Run

    conn = sqlite3.connect(upstream_url)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(sprite_sessions)")]
    values = {"id": "u1", "sprite_name": "s", "session_id": "api", "session_key": "k",
              "agent_id": "a", "status": "active", "created_at": NOW - DAY, "last_active_at": NOW - DAY}
    conn.execute(f"INSERT INTO sprite_sessions ({', '.join(values)}) VALUES "
                 f"({', '.join('?' for _ in values)})", list(values.values()))
    conn.commit()
    assert set(FIELDS) <= set(columns)
    run = Run(upstream_url)
    with at(NOW):
        listed = run("sessions", "list", "--stale", "1h", "-o", "ids")
        closed = run("sessions", "close", "u1", "-o", "ids")
    assert (listed.exit_code, listed.stdout) == (0, "u1\n")
    assert (closed.exit_code, closed.stdout) == (0, "u1\n")
    assert conn.execute("SELECT status, last_active_at FROM sprite_sessions").fetchall() == [
        ("closed", NOW)]
    conn.close()


# ---------------------------------------------------------- the runbook pipe


def _installed() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "nitejarctl")
    return here if os.path.exists(here) else shutil.which("nitejarctl")


def test_runbook_pipeline_closes_stale_sessions(db, db_url):
    """`sessions list --stale 1h -o ids | xargs -r sessions close`, as a runbook runs it."""
    exe = _installed()
    assert exe, "the nitejarctl script is not installed"
    now = int(time.time())
    f.sprite_session("agent-ops", "tg:1", id="old-1", last_active_at=now - 2 * HOUR)
    f.sprite_session("agent-ops", "tg:'%", id="old-2", last_active_at=now - 5 * HOUR)
    f.sprite_session("agent-ops", "tg:2", id="fresh", last_active_at=now - 60)
    f.sprite_session("agent-ops", "tg:3", id="done", status="closed", last_active_at=now - DAY)
    exe, url = shlex.quote(exe), shlex.quote(db_url)
    script = (f"{exe} sessions list --stale 1h -o ids -d {url} "
              f"| xargs -r {exe} sessions close -d {url}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NITEJAR", "DATABASE_URL"))}
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "closed 2 sessions\n"
    lines = done.stdout.splitlines()
    assert lines[0] == "\t".join(FIELDS)
    assert sorted(line.split("\t")[0] for line in lines[1:]) == ["old-1", "old-2"]
    after = state()
    finished = int(time.time())
    for sid in ("old-1", "old-2"):
        assert after[sid][0] == "closed" and now <= after[sid][1] <= finished
    assert after["fresh"] == ("active", now - 60)
    assert after["done"] == ("closed", now - DAY)
    again = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, env=env)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
