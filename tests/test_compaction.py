"""compaction: idle, run, summaries, show, delete."""

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from freezegun import freeze_time

from nitejarctl import models
from nitejarctl.cli.context import Settings
from nitejarctl.db import open_database, parse_url
from nitejarctl.maintenance import compaction, summarizer
from nitejarctl.maintenance.compaction import SKIP_ALREADY, SKIP_DISABLED, SKIP_NO_TURN, CompactionRun
from nitejarctl.maintenance.turns import Conversation, default_summary
from tests import factories as f

NOW = 1_790_000_000
FROZEN = "2026-09-21 14:13:20"  # NOW
HOUR = 3600


def summaries(order="session_key"):
    return list(models.SessionSummary.select().order_by(getattr(models.SessionSummary, order)).dicts())


def sessions_of(session_key, agent_id):
    return sorted(models.SpriteSession.select(models.SpriteSession.status, models.SpriteSession.last_active_at)
                  .where((models.SpriteSession.session_key == session_key)
                         & (models.SpriteSession.agent_id == agent_id)).tuples())


def report(result):
    assert result.exit_code in (0, 4), result.stderr
    return json.loads(result.stdout)


# ------------------------------------------------------------ the summary text


def turns_summary(pairs):
    conv = Conversation(1, "k", "a")
    for i, (role, text) in enumerate(pairs):
        conv.add(role, json.dumps({"text": text}), i)
    return conv.turn_count, default_summary(conv.topics, conv.turn_count)


def test_default_summary_is_nitejars_character_for_character():
    fifty, fifty_one = "a" * 50, "b" * 51
    assert turns_summary([("user", fifty), ("assistant", "ok")]) == (1, f"Conversation topics: {fifty}")
    assert turns_summary([("user", fifty_one), ("assistant", "ok")]) == (
        1, f"Conversation topics: {'b' * 50}...")
    five = [m for i in range(5) for m in (("user", f"q{i}"), ("assistant", "a"))]
    assert turns_summary(five) == (5, "Conversation topics: q0; q1; q2; q3; q4")
    seven = [m for i in range(7) for m in (("user", f"question {i}"), ("assistant", "a"))]
    assert turns_summary(seven) == (
        7, "Conversation topics: question 0; question 1; question 2; question 3; question 4 "
           "(and 2 more exchanges)")
    six = [("user", "x" * 60), ("assistant", "a")] + five
    assert turns_summary(six)[1] == (
        f"Conversation topics: {'x' * 50}...; q0; q1; q2; q3 (and 1 more exchanges)")


def test_turns_open_on_user_and_close_on_the_next_assistant():
    # Two user messages in a row: the later one opens the turn. An assistant
    # message with no open turn, and messages without text, take no part.
    count, text = turns_summary([("assistant", "hello?"), ("user", "first"), ("user", "second"),
                                 ("assistant", "reply"), ("assistant", "more"), ("user", ""),
                                 ("assistant", "x"), ("user", "third"), ("assistant", ""),
                                 ("user", "fourth")])
    assert (count, text) == (1, "Conversation topics: second")
    conv = Conversation(1, "k", "a")
    for role, content in (("system", '{"text": "you are"}'), ("tool", '{"text": "out"}'),
                          ("user", '{"text": "q"}'), ("tool", '{"text": "r"}'), ("assistant", '{"text": "a"}')):
        conv.add(role, content, 5)
    assert conv.turn_count == 1 and conv.topics == ["q"]


def _gone(pid: int, within: float = 5.0) -> bool:
    """The process ends (or is a zombie nobody reaped yet) within `within`
    seconds: a killed process closes its pipes before its exit is complete."""
    deadline = time.monotonic() + within
    while True:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ", 1)[1].startswith(("Z", "X")):
                    return True
        except FileNotFoundError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def test_summarizer_runner_failures_and_output(tmp_path):
    assert summarizer.run_summarizer("tr a-z A-Z", "user: hi\n", timeout=10) == "USER: HI"
    with pytest.raises(summarizer.SummarizerFailed, match=r"^summarizer exited with status 3: bad$"):
        summarizer.run_summarizer("echo bad >&2; exit 3", "", timeout=10)
    with pytest.raises(summarizer.SummarizerFailed, match=r"^summarizer printed nothing$"):
        summarizer.run_summarizer("cat >/dev/null; echo '  '", "x", timeout=10)
    pids = tmp_path / "pids"
    with pytest.raises(summarizer.SummarizerFailed, match=r"^summarizer timed out after 2s$"):
        summarizer.run_summarizer(f"sleep 30 & echo $$ $! > {pids}; wait; echo late", "", timeout=2)
    assert all(_gone(int(pid)) for pid in pids.read_text().split())  # the whole process group was killed


@pytest.mark.parametrize("config, disabled", [
    (None, False), ("", False), ("not json", False), ('{"sessionSettings": {}}', False),
    ('{"sessionSettings": {"compaction": {"enabled": true}}}', False),
    ('{"sessionSettings": {"compaction": {"enabled": 0}}}', False),
    ('{"sessionSettings": {"compaction": {"enabled": false}}}', True),
])
def test_compaction_disabled_reads_the_agent_config(config, disabled):
    assert compaction.compaction_disabled(config) is disabled


# --------------------------------------------------------------------- run


@freeze_time(FROZEN)
def test_run_writes_a_summary_and_closes_the_conversations_sprite_sessions(run, db):
    a, b = f.agent("ops"), f.agent("other")
    f.conversation("tg:1", a["id"], [("system", "you are ops"), ("user", "deploy the [bold] fix"),
                                     ("tool", "ran"), ("assistant", "done"), ("user", "thanks"),
                                     ("assistant", "np")], start=NOW - 2 * HOUR)
    f.sprite_session(a["id"], "tg:1", id="s1", last_active_at=NOW - HOUR)
    f.sprite_session(a["id"], "tg:1", id="s2", last_active_at=NOW - HOUR)
    f.sprite_session(a["id"], "tg:1", id="s3", status="error", last_active_at=NOW - HOUR)
    f.sprite_session(b["id"], "tg:1", id="s4", last_active_at=NOW - HOUR)  # another agent's
    result = run("compaction", "run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    [row] = summaries()
    assert report(result) == {
        "dry_run": False,
        "compacted": [{"id": row["id"], "session_key": "tg:1", "agent_id": a["id"], "turn_count": 2,
                       "start_time": NOW - 2 * HOUR, "end_time": NOW - 2 * HOUR + 300,
                       "summary": "Conversation topics: deploy the [bold] fix; thanks"}],
        "skipped": [], "failed": [], "closed_sessions": 2}
    assert row == {"id": row["id"], "session_key": "tg:1", "agent_id": a["id"],
                   "summary": "Conversation topics: deploy the [bold] fix; thanks", "turn_count": 2,
                   "start_time": NOW - 2 * HOUR, "end_time": NOW - 2 * HOUR + 300, "embedding": None,
                   "compacted_at": NOW}
    assert len(row["id"]) == 36
    assert sessions_of("tg:1", a["id"]) == [("closed", NOW), ("closed", NOW), ("error", NOW - HOUR)]
    assert sessions_of("tg:1", b["id"]) == [("active", NOW - HOUR)]
    assert result.stderr == "compacted 1 conversation, closed 2 sprite sessions\n"


@freeze_time(FROZEN)
def test_run_prints_the_written_summaries_in_every_row_format(run, db):
    a = f.agent("ops")
    f.conversation("k1", a["id"], [("user", "tab\there"), ("assistant", "a")], start=NOW - HOUR)
    result = run("compaction", "run", "-o", "tsv")
    assert result.exit_code == 0, result.stderr
    [row] = summaries()
    assert result.stdout == (
        "id\tsession_key\tagent_id\tturn_count\tstart_time\tend_time\tcompacted_at\tsummary\n"
        f"{row['id']}\tk1\t{a['id']}\t1\t{NOW - HOUR}\t{NOW - HOUR + 60}\t{NOW}\t"
        "Conversation topics: tab\\there\n")
    assert run("compaction", "run", "-o", "ids").stdout == ""


@freeze_time(FROZEN)
def test_more_than_five_turns_and_long_messages_via_the_cli(run, db):
    a = f.agent("ops")
    texts = ["x" * 50, "y" * 51, "short", "émoji 🚀 " * 10, "q5", "q6", "q7"]
    f.conversation("k", a["id"], [m for t in texts for m in (("user", t), ("assistant", "ok"))],
                   start=NOW - 3 * HOUR)
    assert report(run("compaction", "run", "-o", "json"))["compacted"][0]["turn_count"] == 7
    emoji = ("émoji 🚀 " * 10)[:50]
    assert summaries()[0]["summary"] == (
        f"Conversation topics: {'x' * 50}; {'y' * 50}...; short; {emoji}...; q5 (and 2 more exchanges)")


@freeze_time(FROZEN)
def test_message_content_shapes(run, db):
    a = f.agent("ops")
    wi = f.work_item("shapes", created_at=NOW - HOUR)
    jb = f.job(wi["id"], a["id"], created_at=NOW - HOUR)
    t = NOW - HOUR
    contents = [
        ("user", {"text": "from text"}), ("assistant", "ok"),
        ("user", {"content": "from content"}), ("assistant", "ok"),
        ("user", {"text": 5, "content": "content when text is no string"}), ("assistant", "ok"),
        ("user", "raw [not json"), ("assistant", "ok"),
        ("user", "[1, 2]"), ("assistant", "ok"),  # a JSON array has no text: no turn
        ("user", '"a json string"'), ("assistant", "ok"),
        ("user", {"other": "no text"}), ("assistant", "ok"),  # no text: no turn
        ("user", None), ("assistant", "ok"),
    ]
    for i, (role, content) in enumerate(contents):
        if role == "assistant":
            f.message(jb["id"], role, content, created_at=t + i)
        elif content is None:
            models.Message.insert(id=f"m{i}", job_id=jb["id"], role=role, content=None,
                                  created_at=t + i).execute()
        else:
            f.message(jb["id"], role, content=content, created_at=t + i)
    result = report(run("compaction", "run", "-o", "json"))
    assert result["compacted"][0]["turn_count"] == 5
    assert summaries()[0]["summary"] == (
        "Conversation topics: from text; from content; content when text is no string; raw [not json; "
        "a json string")


@freeze_time(FROZEN)
def test_only_completed_jobs_count_and_idleness_follows_the_newest_message(run, db):
    a = f.agent("ops")
    wi, jb, _ = f.conversation("k", a["id"], [("user", "old question"), ("assistant", "answer")],
                               start=NOW - 2 * HOUR)
    for status in ("FAILED", "PENDING", "RUNNING", "CANCELLED"):
        other = f.job(wi["id"], a["id"], status=status, created_at=NOW - 3 * HOUR)
        f.message(other["id"], "user", f"{status} text", created_at=NOW - 3 * HOUR)
        f.message(other["id"], "assistant", "x", created_at=NOW - 60)  # recent, but not completed
    f.conversation("busy", a["id"], [("user", "q"), ("assistant", "a")], start=NOW - 29 * 60)
    result = report(run("compaction", "run", "-o", "json"))
    assert [(c["session_key"], c["turn_count"], c["start_time"], c["end_time"]) for c in result["compacted"]] \
        == [("k", 1, NOW - 2 * HOUR, NOW - 2 * HOUR + 60)]
    assert summaries()[0]["summary"] == "Conversation topics: old question"
    # "busy" becomes idle once its newest message is older than --idle.
    assert [c["session_key"] for c in report(run("compaction", "run", "--idle", "20m", "-o", "json"))
            ["compacted"]] == ["busy"]


@freeze_time(FROZEN)
def test_history_order_is_job_then_message_time_then_id(run, db):
    a = f.agent("ops")
    wi = f.work_item("k", created_at=NOW - 5 * HOUR)
    late_job = f.job(wi["id"], a["id"], created_at=NOW - 5 * HOUR)  # created first
    f.message(late_job["id"], "user", "first", created_at=NOW - 2 * HOUR)
    f.message(late_job["id"], "assistant", "r1", created_at=NOW - 2 * HOUR + 1)
    early_job = f.job(wi["id"], a["id"], created_at=NOW - 4 * HOUR)
    f.message(early_job["id"], "assistant", "r2", id="m-b", created_at=NOW - 3 * HOUR)
    f.message(early_job["id"], "user", "second", id="m-a", created_at=NOW - 3 * HOUR)
    result = report(run("compaction", "run", "-o", "json"))["compacted"][0]
    assert (result["turn_count"], result["start_time"], result["end_time"]) == (2, NOW - 3 * HOUR, NOW - 2 * HOUR + 1)
    assert summaries()[0]["summary"] == "Conversation topics: first; second"
    assert report(run("compaction", "run", "-o", "json"))["compacted"] == []


@freeze_time(FROZEN)
def test_second_run_writes_nothing(run, db):
    a = f.agent("ops")
    for i in range(3):
        f.conversation(f"k{i}", a["id"], [("user", f"q{i}"), ("assistant", "a")], start=NOW - HOUR)
        f.sprite_session(a["id"], f"k{i}")
    assert run("compaction", "run", "-q").exit_code == 0
    first = summaries()
    assert len(first) == 3
    again = run("compaction", "run", "-o", "json")
    assert report(again) == {"dry_run": False, "compacted": [], "skipped": [], "failed": [],
                             "closed_sessions": 0}
    assert again.stderr == "no idle conversations to compact\n"
    assert summaries() == first
    # A newer exchange makes the conversation un-compacted again: the next run summarises it all.
    wi = f.work_item("k0", created_at=NOW - 45 * 60)
    jb = f.job(wi["id"], a["id"], created_at=NOW - 45 * 60)
    f.message(jb["id"], "user", "more", created_at=NOW - 45 * 60)
    f.message(jb["id"], "assistant", "sure", created_at=NOW - 44 * 60)
    third = report(run("compaction", "run", "-o", "json"))["compacted"]
    assert [(c["session_key"], c["turn_count"], c["end_time"]) for c in third] == [("k0", 2, NOW - 44 * 60)]


@freeze_time(FROZEN)
def test_agents_with_compaction_disabled_are_skipped(run, db):
    on = f.agent("on", config={"sessionSettings": {"compaction": {"enabled": True}}})
    off = f.agent("off", config={"sessionSettings": {"compaction": {"enabled": False}}})
    for agent in (on, off):
        f.conversation("k", agent["id"], [("user", "q"), ("assistant", "a")], start=NOW - HOUR)
        f.sprite_session(agent["id"], "k")
    result = run("compaction", "run", "-o", "json")
    assert report(result)["skipped"] == [{"session_key": "k", "agent_id": off["id"], "reason": SKIP_DISABLED}]
    assert [(s["agent_id"]) for s in summaries()] == [on["id"]]
    assert sessions_of("k", off["id"]) == [("active", NOW)]
    text = run("compaction", "run", "-o", "table")
    assert text.stdout == ""
    assert text.stderr == (f"skipped 1 conversation of agent {off['id']}: {SKIP_DISABLED}\n"
                           "compacted 0 conversations, closed 0 sprite sessions; 1 skipped\n")


@freeze_time(FROZEN)
def test_conversation_without_a_complete_turn_is_skipped(run, db):
    a = f.agent("ops")
    f.conversation("lonely", a["id"], [("assistant", "hello?"), ("user", "anyone")], start=NOW - HOUR)
    f.sprite_session(a["id"], "lonely")
    result = run("compaction", "run", "-o", "json")
    assert report(result) == {"dry_run": False, "compacted": [], "failed": [], "closed_sessions": 0,
                              "skipped": [{"session_key": "lonely", "agent_id": a["id"],
                                           "reason": SKIP_NO_TURN}]}
    assert summaries() == [] and sessions_of("lonely", a["id"]) == [("active", NOW)]
    text = run("compaction", "run", "-o", "tsv")
    assert text.stderr == (f"skipped lonely (agent {a['id']}): {SKIP_NO_TURN}\n"
                           "compacted 0 conversations, closed 0 sprite sessions; 1 skipped\n")


@freeze_time(FROZEN)
def test_keep_sprites_and_dry_run(run, db):
    a = f.agent("ops")
    f.conversation("k", a["id"], [("user", "q"), ("assistant", "a")], start=NOW - HOUR)
    f.sprite_session(a["id"], "k", last_active_at=NOW - 100)
    f.sprite_session(a["id"], "k", last_active_at=NOW - 100)
    dry = run("compaction", "run", "--dry-run", "-o", "tsv")
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout.splitlines()[1] == (
        f"\tk\t{a['id']}\t1\t{NOW - HOUR}\t{NOW - HOUR + 60}\t{NOW}\tConversation topics: q")
    assert dry.stderr == "would compact 1 conversation, would close 2 sprite sessions (dry run)\n"
    dry_json = report(run("compaction", "run", "--dry-run", "-o", "json"))
    assert dry_json["dry_run"] is True and dry_json["closed_sessions"] == 2
    assert dry_json["compacted"][0]["id"] is None
    assert summaries() == [] and sessions_of("k", a["id"]) == [("active", NOW - 100)] * 2
    kept = run("compaction", "run", "--keep-sprites", "-o", "json")
    assert report(kept)["closed_sessions"] is None
    assert kept.stderr == "compacted 1 conversation\n"
    assert len(summaries()) == 1 and sessions_of("k", a["id"]) == [("active", NOW - 100)] * 2


@freeze_time(FROZEN)
def test_filters_limit_and_batches(run, db):
    a, b = f.agent("alpha"), f.agent("beta")
    for i in range(7):
        for agent in (a, b):
            f.conversation(f"k{i}", agent["id"], [("user", f"q{i}"), ("assistant", "a")], start=NOW - HOUR)
    one = report(run("compaction", "run", "--session-key", "k3", "--agent", "beta", "-o", "json"))
    assert [(c["session_key"], c["agent_id"]) for c in one["compacted"]] == [("k3", b["id"])]
    limited = report(run("compaction", "run", "--agent", a["id"], "--limit", "2", "-o", "json"))
    assert [c["session_key"] for c in limited["compacted"]] == ["k0", "k1"]
    rest = report(run("compaction", "run", "--batch-size", "1", "-o", "json"))
    keys = [(c["session_key"], c["agent_id"]) for c in rest["compacted"]]
    assert len(keys) == 11 and len(set(keys)) == 11 and ("k3", b["id"]) not in keys
    assert len(summaries()) == 14
    missing = run("compaction", "run", "--agent", "nobody")
    assert missing.exit_code == 3
    assert missing.stderr == "Error: no agent with id or name 'nobody'\n"


@freeze_time(FROZEN)
def test_not_yet_compacted_is_checked_again_inside_the_write_transaction(db):
    a = f.agent("ops")
    for key in ("k1", "k2"):
        f.conversation(key, a["id"], [("user", "q"), ("assistant", "a")], start=NOW - HOUR)
        f.sprite_session(a["id"], key)
    with CompactionRun(db, cutoff=NOW - 1800) as engine:
        read = engine._read_batch

        def read_then_race(after):  # another run compacts k1 between our read and our write
            items = read(after)
            f.summary("k1", a["id"], id="theirs", end_time=NOW - HOUR + 60)
            return items

        engine._read_batch = read_then_race
        outcomes = list(engine.outcomes())
    assert [(o.status, o.session_key, o.reason) for o in outcomes] == [
        ("skipped", "k1", SKIP_ALREADY), ("compacted", "k2", None)]
    assert sorted((s["session_key"], s["id"] == "theirs") for s in summaries()) == [
        ("k1", True), ("k2", False)]
    assert sessions_of("k1", a["id"]) == [("active", NOW)]  # closed by whoever wrote "theirs", not us
    assert sessions_of("k2", a["id"]) == [("closed", NOW)]


@freeze_time(FROZEN)
def test_a_limit_met_half_way_through_a_batch_resumes_after_the_last_conversation_read(db):
    a = f.agent("ops")
    keys = [f"k{i}" for i in range(1, 7)]
    for key in keys:
        f.conversation(key, a["id"], [("user", "q"), ("assistant", "a")], start=NOW - HOUR)
    with CompactionRun(db, cutoff=NOW - 1800, limit=2, batch_size=3) as engine:
        read = engine._read_batch
        raced = []

        def read_then_race(after):  # another run compacts k1 between our first read and our write
            items = read(after)
            if not raced:
                raced.append(f.summary("k1", a["id"], id="theirs", end_time=NOW - HOUR + 60))
            return items

        engine._read_batch = read_then_race
        outcomes = list(engine.outcomes())
    # k1 and k2 made the limit; k1 was taken, so k3 (the batch's next one, not k4) is the second.
    assert [(o.status, o.session_key) for o in outcomes] == [
        ("skipped", "k1"), ("compacted", "k2"), ("compacted", "k3")]
    assert sorted(s["session_key"] for s in summaries()) == ["k1", "k2", "k3"]


# -------------------------------------------------------------- summarizer


def test_summarizer_gets_the_transcript_and_its_output_is_the_summary(run, db, tmp_path):
    start = int(time.time()) - 2 * HOUR
    a = f.agent("ops")
    f.conversation("tg:7", a["id"], [("system", "sys"), ("user", "hi"), ("tool", "out"),
                                     ("assistant", "hello\nthere"), ("user", "bye")], start=start)
    seen = tmp_path / "seen.txt"
    command = f'cat > {seen}; printf "  summary of %s/%s  \\n\\n" "$NITEJAR_SESSION_KEY" ops'
    result = run("compaction", "run", "--summarizer", command, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert seen.read_text() == "user: hi\nassistant: hello\nthere\nuser: bye\n"
    assert report(result)["compacted"][0]["summary"] == "summary of tg:7/ops"
    assert summaries()[0]["summary"] == "summary of tg:7/ops"


def test_summarizer_failures_fail_only_their_conversation(run, db):
    start = int(time.time()) - 2 * HOUR
    a = f.agent("ops")
    for key in ("k1", "k2", "k3", "k4"):
        f.conversation(key, a["id"], [("user", f"question {key}"), ("assistant", "a")], start=start)
        f.sprite_session(a["id"], key, id=f"s-{key}")
    command = ('case "$NITEJAR_SESSION_KEY" in k1) echo "model overloaded" >&2; exit 3;; '
               'k2) cat >/dev/null;; k3) sleep 30;; *) echo "fine: $NITEJAR_SESSION_KEY";; esac')
    result = run("compaction", "run", "--summarizer", command, "--summarizer-timeout", "0.5", "-o", "json")
    assert result.exit_code == 4
    got = report(result)
    assert got["failed"] == [
        {"session_key": "k1", "agent_id": a["id"], "turn_count": 1,
         "reason": "summarizer exited with status 3: model overloaded"},
        {"session_key": "k2", "agent_id": a["id"], "turn_count": 1, "reason": "summarizer printed nothing"},
        {"session_key": "k3", "agent_id": a["id"], "turn_count": 1, "reason": "summarizer timed out after 0.5s"},
    ]
    assert [(c["session_key"], c["summary"]) for c in got["compacted"]] == [("k4", "fine: k4")]
    assert [s["session_key"] for s in summaries()] == ["k4"]
    statuses = dict(models.SpriteSession.select(models.SpriteSession.session_key,
                                                models.SpriteSession.status).tuples())
    assert statuses == {"k1": "active", "k2": "active", "k3": "active", "k4": "closed"}
    assert result.stderr == ("compacted 1 conversation, closed 1 sprite session; 3 failed\n"
                             "Error: 3 conversations could not be compacted (each is reported above)\n")
    text = run("compaction", "run", "--summarizer", "exit 1", "-o", "tsv")
    assert text.exit_code == 4
    assert text.stderr.splitlines()[0] == f"Warning: failed k1 (agent {a['id']}): summarizer exited with status 1"


def test_dry_run_does_not_run_the_summarizer(run, db, tmp_path):
    a = f.agent("ops")
    f.conversation("k", a["id"], [("user", "q"), ("assistant", "a")], start=int(time.time()) - HOUR)
    marker = tmp_path / "ran"
    result = run("compaction", "run", "--dry-run", "--summarizer", f"touch {marker}; echo s", "-o", "json")
    assert result.exit_code == 0 and not marker.exists()
    assert report(result)["compacted"][0]["summary"] is None
    assert result.stderr.startswith("dry run: the summarizer does not run")


# ---------------------------------------------------------------- progress


@freeze_time(FROZEN)
def test_progress_bar_on_a_terminal_keeps_stdout_clean(run, db):
    a = f.agent("ops")
    f.conversation("k", a["id"], [("user", "q"), ("assistant", "a")], start=NOW - HOUR)
    f.conversation("n", a["id"], [("user", "q")], start=NOW - HOUR)
    result = run("compaction", "run", "-o", "csv", settings=Settings(stderr_terminal=True))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "id,session_key,agent_id,turn_count,start_time,end_time,compacted_at,summary"
    assert len(result.stdout.splitlines()) == 2
    assert f"skipped n (agent {a['id']}): {SKIP_NO_TURN}" in result.stderr


# ------------------------------------------------------------------- idle


@freeze_time(FROZEN)
def test_idle_lists_uncompacted_idle_conversations(run, db):
    a = f.agent("ops")
    f.conversation("k1", a["id"], [("user", "q"), ("assistant", "a")], start=NOW - 2 * HOUR)
    f.conversation("k2", a["id"], [("user", "q")], start=NOW - HOUR)
    f.conversation("k3", a["id"], [("user", "q")], start=NOW - 60)
    f.summary("k1", a["id"], end_time=NOW - 2 * HOUR + 60)
    result = run("compaction", "idle", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"session_key": "k2", "agent_id": a["id"], "agent_name": "ops",
                                          "message_count": 1, "last_message_at": NOW - HOUR}]
    every = json.loads(run("compaction", "idle", "--all", "-o", "json").stdout)
    assert [(r["session_key"], r["compacted"]) for r in every] == [("k1", True), ("k2", False)]
    assert run("compaction", "idle", "--all", "--idle", "30s", "-o", "ids").stdout == "k1\nk2\nk3\n"
    assert run("compaction", "idle", "--all", "--limit", "1", "-o", "tsv").stdout == (
        "session_key\tagent_id\tagent_name\tmessage_count\tlast_message_at\tcompacted\n"
        f"k1\t{a['id']}\tops\t2\t{NOW - 2 * HOUR + 60}\t1\n")
    assert run("compaction", "idle", "--idle", "0").exit_code == 2


# -------------------------------------------------- summaries, show, delete


@freeze_time(FROZEN)
def test_summaries_show_and_delete(run, db):
    a, b = f.agent("ops"), f.agent("other")
    f.summary("k1", a["id"], id="s1", summary="one [bold]", turn_count=3, start_time=NOW - 900,
              end_time=NOW - 800, compacted_at=NOW - 100)
    f.summary("k2", b["id"], id="s2", summary="two", start_time=NOW - 500, end_time=NOW - 400,
              compacted_at=NOW - 50)
    listed = json.loads(run("compaction", "summaries", "-o", "json").stdout)
    assert [r["id"] for r in listed] == ["s2", "s1"]
    assert listed[1] == {"id": "s1", "session_key": "k1", "agent_id": a["id"], "turn_count": 3,
                         "start_time": NOW - 900, "end_time": NOW - 800, "compacted_at": NOW - 100,
                         "summary": "one [bold]"}
    assert run("compaction", "summaries", "--agent", "ops", "-o", "ids").stdout == "s1\n"
    assert run("compaction", "summaries", "--session-key", "k2", "-o", "ids").stdout == "s2\n"
    shown = json.loads(run("compaction", "show", "s1", "-o", "json").stdout)
    assert shown == {"id": "s1", "session_key": "k1", "agent_id": a["id"], "agent_name": "ops",
                     "turn_count": 3, "start_time": NOW - 900, "end_time": NOW - 800,
                     "compacted_at": NOW - 100, "summary": "one [bold]"}
    assert "one [bold]" in run("compaction", "show", "s1", "-o", "table").stdout
    missing = run("compaction", "show", "nope")
    assert (missing.exit_code, missing.stderr) == (3, "Error: no session summary with id 'nope'\n")

    refused = run("compaction", "delete", "s1")
    assert refused.exit_code == 2
    assert refused.stderr == "Error: refusing to delete without --yes when not on a terminal\n"
    unknown = run("compaction", "delete", "s1", "nope", "--yes")
    assert (unknown.exit_code, unknown.stderr) == (3, "Error: no session summary with id 'nope'\n")
    dry = run("compaction", "delete", "s1", "--dry-run", "-o", "ids")
    assert (dry.stdout, dry.stderr) == ("s1\n", "would delete 1 session summary (dry run)\n")
    assert len(summaries()) == 2
    done = run("compaction", "delete", "s1", "s1", "nope", "--yes", "--ignore-missing", "-o", "ids")
    assert done.exit_code == 0
    assert done.stdout == "s1\n"
    assert done.stderr == "Warning: no session summary with id 'nope'\ndeleted 1 session summary\n"
    assert [s["id"] for s in summaries()] == ["s2"]


# -------------------------------------------------- nitejar-created database


@freeze_time(FROZEN)
def test_run_on_a_database_nitejar_created(upstream_url):
    from tests.conftest import Run

    db = open_database(parse_url(upstream_url))
    try:
        a = f.agent("ops")
        f.conversation("k", a["id"], [("user", "q"), ("assistant", "a")], start=NOW - HOUR)
        f.sprite_session(a["id"], "k")
    finally:
        db.close()
    result = Run(upstream_url)("compaction", "run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert report(result)["closed_sessions"] == 1
    conn = sqlite3.connect(upstream_url)
    assert conn.execute("SELECT session_key, summary FROM session_summaries").fetchall() == [
        ("k", "Conversation topics: q")]
    conn.close()


# ----------------------------------------------------- crash and concurrency


def _nitejarctl() -> list[str]:
    exe = shutil.which("nitejarctl")
    return [exe] if exe else [sys.executable, "-m", "nitejarctl"]


def _populate(db, count: int, start: int):
    agents = [f.agent(f"agent-{i}") for i in range(3)]
    expected = set()
    with db.atomic():
        for i in range(count):
            agent = agents[i % 3]
            key = f"tg:{i:04d}"
            turns = [("user", f"question {i}"), ("assistant", "answer"), ("tool", "t"),
                     ("user", "more"), ("assistant", "ok")]
            if i % 50 == 7:
                turns = [("user", "never answered")]
            else:
                expected.add((key, agent["id"]))
            f.conversation(key, agent["id"], turns, start=start - i)
            f.sprite_session(agent["id"], key)
            f.sprite_session(agent["id"], key)
            f.sprite_session(agent["id"], key, status="closed", last_active_at=start)
    return expected


def _check_invariants(db):
    sql = ("SELECT s.session_key, s.agent_id, count(*) FROM session_summaries s "
           "GROUP BY s.session_key, s.agent_id, s.end_time HAVING count(*) > 1")
    assert db.execute_sql(sql).fetchall() == []
    compacted = set(db.execute_sql("SELECT session_key, agent_id FROM session_summaries").fetchall())
    active = {}
    for key, agent, n in db.execute_sql(
            "SELECT session_key, agent_id, count(*) FROM sprite_sessions WHERE status = 'active' "
            "GROUP BY session_key, agent_id").fetchall():
        active[(key, agent)] = n
    closed_by_us = {(k, a) for k, a, n in db.execute_sql(
        "SELECT session_key, agent_id, count(*) FROM sprite_sessions WHERE status = 'closed' "
        "GROUP BY session_key, agent_id HAVING count(*) > 1").fetchall()}
    for conv in compacted:
        assert conv not in active, f"{conv} has a summary but active sprite sessions"
    assert closed_by_us == compacted, "sessions closed without a summary, or the reverse"
    assert set(active.values()) <= {2}  # a conversation's sessions close all together or not at all
    return compacted


def test_sigkill_at_random_points_leaves_a_consistent_database(db, db_url, backend):
    start = int(time.time()) - 2 * HOUR
    expected = _populate(db, 300, start)
    db.close()
    rng = random.Random(os.getpid())
    cmd = _nitejarctl() + ["compaction", "run", "-q", "-o", "json", "--batch-size", "3", "-d", db_url]
    # A summarizer makes the run slower (a shell per conversation), so the kills
    # land all along it; the last attempts use the default summary.
    slow = ["--summarizer", "cat >/dev/null; sleep 0.01; echo summary"]
    progress = []
    for attempt in range(6):
        proc = subprocess.Popen(cmd + (slow if attempt < 4 else []),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        db.connect(reuse_if_open=True)
        progress.append(len(_check_invariants(db)))
        db.close()
    assert progress == sorted(progress)
    assert any(0 < n < len(expected) for n in progress), progress  # some kills hit mid-run
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    db.connect(reuse_if_open=True)
    assert _check_invariants(db) == expected
    if backend == "sqlite":
        assert db.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout)["compacted"] == []


def test_compaction_beside_a_nitejar_writer_never_hits_a_locked_database(sqlite_url, tmp_path):
    # The writer simulates nitejar on SQLite, where writers contend for one lock.
    from nitejarctl.db import open_database, parse_url

    db_url = sqlite_url
    db = open_database(parse_url(db_url))
    start = int(time.time()) - 2 * HOUR
    _populate(db, 300, start)
    db.close()
    out = tmp_path / "writer.json"
    writer = subprocess.Popen([sys.executable, "-m", "tests.helpers.nitejar_writer", db_url,
                               "--seconds", "4", "--out", str(out)],
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    time.sleep(0.5)
    result = subprocess.run(_nitejarctl() + ["compaction", "run", "-q", "-o", "json", "--batch-size", "2",
                                             "-d", db_url], capture_output=True, text=True, timeout=120)
    writer.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    written = json.load(open(out))
    assert written["failures"] == [] and written["committed"] > 0
    conn = sqlite3.connect(db_url)
    placeholders = ",".join("?" * len(written["inserted"]))
    assert conn.execute(f"SELECT count(*) FROM messages WHERE id IN ({placeholders})",
                        written["inserted"]).fetchone()[0] == len(written["inserted"])
    conn.close()


def test_concurrent_runs_write_each_summary_once(db, db_url):
    start = int(time.time()) - 2 * HOUR
    expected = _populate(db, 120, start)
    db.close()
    cmd = _nitejarctl() + ["compaction", "run", "-o", "json", "--batch-size", "2", "-d", db_url,
                           "--summarizer", "cat >/dev/null; sleep 0.005; echo summary"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    written = [(c["session_key"], c["agent_id"]) for r in reports for c in r["compacted"]]
    assert sorted(written) == sorted(expected)  # each conversation by exactly one of the runs
    db.connect(reuse_if_open=True)
    assert _check_invariants(db) == expected
