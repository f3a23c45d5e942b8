"""cleanup: compact idle conversations, close stale and purge old sprite sessions."""

import json

from freezegun import freeze_time

from nitejarctl import models
from tests import factories as f

NOW = 1_790_000_000
FROZEN = "2026-09-21 14:13:20"  # NOW
HOUR, DAY = 3600, 86400


def populate():
    a = f.agent("ops")
    off = f.agent("off", config={"sessionSettings": {"compaction": {"enabled": False}}})
    f.conversation("k1", a["id"], [("user", "q1"), ("assistant", "a1")], start=NOW - 3 * HOUR)
    f.conversation("k2", a["id"], [("user", "q2"), ("assistant", "a2")], start=NOW - 2 * HOUR)
    f.conversation("k3", a["id"], [("user", "no answer")], start=NOW - 2 * HOUR)
    f.conversation("k4", off["id"], [("user", "q"), ("assistant", "a")], start=NOW - 2 * HOUR)
    f.conversation("k5", a["id"], [("user", "q"), ("assistant", "a")], start=NOW - 10 * 60)  # not idle
    f.sprite_session(a["id"], "k1", id="compacted-stale", last_active_at=NOW - 2 * HOUR)
    f.sprite_session(a["id"], "k2", id="compacted-fresh", last_active_at=NOW - 60)
    f.sprite_session(a["id"], "k3", id="stale", last_active_at=NOW - 2 * HOUR)
    f.sprite_session(a["id"], "k5", id="fresh", last_active_at=NOW - 60)
    f.sprite_session(a["id"], "x", id="old-closed", status="closed", last_active_at=NOW - 2 * DAY)
    f.sprite_session(a["id"], "x", id="old-error", status="error", last_active_at=NOW - 2 * DAY)
    f.sprite_session(a["id"], "x", id="new-closed", status="closed", last_active_at=NOW - HOUR)
    return a


def state():
    return dict(((sid, (status, at)) for sid, status, at in models.SpriteSession.select(
        models.SpriteSession.id, models.SpriteSession.status, models.SpriteSession.last_active_at).tuples()))


def summary_keys():
    return sorted(s for (s,) in models.SessionSummary.select(models.SessionSummary.session_key).tuples())


@freeze_time(FROZEN)
def test_cleanup_compacts_closes_stale_and_purges(run, db):
    populate()
    result = run("cleanup", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"compactedSessions": 2, "closedStale": 1, "deleted": 2, "errors": []}
    assert result.stderr == ("compacted 2 conversations, closed 1 stale sprite session, "
                             "deleted 2 old sprite sessions\n")
    assert summary_keys() == ["k1", "k2"]
    assert state() == {
        "compacted-stale": ("closed", NOW),  # closed by compaction, not counted as stale
        "compacted-fresh": ("closed", NOW),
        "stale": ("closed", NOW),
        "fresh": ("active", NOW - 60),
        "new-closed": ("closed", NOW - HOUR),
    }
    again = run("cleanup", "-o", "json")
    assert json.loads(again.stdout) == {"compactedSessions": 0, "closedStale": 0, "deleted": 0, "errors": []}


@freeze_time(FROZEN)
def test_cleanup_text_output_and_options(run, db):
    populate()
    result = run("cleanup", "--idle", "5m", "--stale", "30s", "--purge-older-than", "30m", "-o", "tsv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "compactedSessions: 3\nclosedStale: 1\ndeleted: 3\nerrors: 0\n"
    assert summary_keys() == ["k1", "k2", "k5"]
    # Everything closed now stays (too recent to purge); every older closed one went.
    assert state() == {sid: ("closed", NOW) for sid in ("compacted-stale", "compacted-fresh", "stale", "fresh")}
    assert run("cleanup", "--stale", "0").exit_code == 2


@freeze_time(FROZEN)
def test_cleanup_dry_run_changes_nothing(run, db):
    populate()
    before = state()
    result = run("cleanup", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    # The stale session of k1 counts under closedStale too: compaction would close it first.
    assert json.loads(result.stdout) == {"compactedSessions": 2, "closedStale": 2, "deleted": 2, "errors": []}
    assert result.stderr == ("would compact 2 conversations, close 2 stale sprite sessions "
                             "and delete 2 old sprite sessions (dry run)\n")
    assert state() == before and summary_keys() == []


@freeze_time(FROZEN)
def test_a_failing_step_is_listed_and_the_others_still_run(run, db):
    populate()
    db.execute_sql("DROP TABLE session_summaries")
    result = run("cleanup", "-o", "json")
    assert result.exit_code == 4
    assert json.loads(result.stdout) == {
        "compactedSessions": 0, "closedStale": 2, "deleted": 2,
        "errors": ["Compaction failed: this database has no 'session_summaries' table"]}
    assert result.stderr.splitlines()[-1] == "Error: cleanup finished with 1 error(s) (listed in its output)"
    text = run("cleanup", "-o", "table")
    assert text.exit_code == 4
    assert text.stdout.splitlines() == [
        "compactedSessions: 0", "closedStale: 0", "deleted: 0", "errors: 1",
        "  Compaction failed: this database has no 'session_summaries' table"]
