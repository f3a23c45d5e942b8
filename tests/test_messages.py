"""messages prune: only what a summary covers (unless --include-uncompacted),
never a live job's messages; cleanup --retain."""

from __future__ import annotations

import json

from freezegun import freeze_time

from nitejarctl.cli.context import Settings
from nitejarctl.db.batches import Batching
from tests import factories as f

NOW = 1_790_000_000
FROZEN = "2026-09-21 14:13:20"  # NOW
DAY = 86400
SMALL = Batching(first=2, smallest=2, largest=2)


def ids_of(db, table="messages") -> list[str]:
    return [r[0] for r in db.execute_sql(f"SELECT id FROM {table} ORDER BY id").fetchall()]


def history(agent, key, *, at, status="COMPLETED", prefix):
    """A work item and job of `key` with two messages at `at` and `at + 60`."""
    wi = f.work_item(key, created_at=at)
    job = f.job(wi["id"], agent, status=status, created_at=at)
    return [f.message(job["id"], role, "x", id=f"{prefix}-{i}", created_at=at + 60 * i)["id"]
            for i, role in enumerate(("user", "assistant"))]


def populate():
    """Messages 40 days old in every situation; returns the ids a 30d prune deletes."""
    ops, dev = f.agent("ops", id="ag-ops")["id"], f.agent("dev", id="ag-dev")["id"]
    old = NOW - 40 * DAY
    covered = history(ops, "tg:1", at=old, prefix="covered")
    f.summary("tg:1", ops, start_time=old, end_time=old + 60)
    later = history(ops, "tg:1", at=old + 3600, prefix="after-summary")  # newer than the summary's end
    failed = history(ops, "tg:1", at=old, status="FAILED", prefix="failed")  # never part of a summary
    running = history(ops, "tg:1", at=old, status="RUNNING", prefix="running")
    other_agent = history(dev, "tg:1", at=old, prefix="other-agent")  # ops' summary does not cover dev
    uncompacted = history(ops, "tg:2", at=old, prefix="uncompacted")
    recent = history(ops, "tg:3", at=NOW - DAY, prefix="recent")
    f.summary("tg:3", ops, start_time=NOW - DAY, end_time=NOW - DAY + 60)  # covered, but newer than 30d
    return {"covered": covered, "later": later, "failed": failed, "running": running,
            "other_agent": other_agent, "uncompacted": uncompacted, "recent": recent}


@freeze_time(FROZEN)
def test_prune_deletes_only_covered_messages(run, db):
    groups = populate()
    everything = ids_of(db)
    preview = run("messages", "prune", "--older-than", "30d", "--dry-run", "-o", "json")
    assert preview.exit_code == 0, preview.stderr
    assert [(m["id"], m["role"], m["created_at"]) for m in json.loads(preview.stdout)] == [
        ("covered-0", "user", NOW - 40 * DAY), ("covered-1", "assistant", NOW - 40 * DAY + 60)]
    assert ids_of(db) == everything
    result = run("messages", "prune", "--older-than", "30d", "--yes", "-o", "ids",
                 settings=Settings(batching=SMALL))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "covered-0\ncovered-1\n"
    kept = sorted(set(everything) - set(groups["covered"]))
    assert ids_of(db) == kept
    assert result.stderr == ("deleted 2 messages\n"
                             "kept 8 messages older than 4w2d that no summary covers ('compaction run' first, "
                             "or --include-uncompacted)\n")
    again = run("messages", "prune", "--older-than", "30d", "--yes", "-o", "ids")
    assert (again.exit_code, again.stdout) == (0, "")


@freeze_time(FROZEN)
def test_include_uncompacted_keeps_live_jobs_messages(run, db):
    groups = populate()
    refused = run("messages", "prune", "--older-than", "30d", "--include-uncompacted")
    assert refused.exit_code == 2
    declined = run("messages", "prune", "--older-than", "30d", "--include-uncompacted", input="n\n",
                   settings=Settings(interactive=True))
    assert (declined.exit_code, declined.stdout) == (1, "")
    assert declined.stderr == ("Delete 10 messages older than 4w2d, 8 of them in no summary (never compacted, or "
                               "of failed or cancelled jobs: lost for good)? [y/N]: n\nnothing deleted\n")
    result = run("messages", "prune", "--older-than", "30d", "--include-uncompacted", "-o", "ids", input="y\n",
                 settings=Settings(interactive=True, batching=SMALL))
    assert result.exit_code == 0, result.stderr
    assert ids_of(db) == sorted(groups["running"] + groups["recent"])
    assert sorted(result.stdout.split()) == sorted(groups["covered"] + groups["later"] + groups["failed"]
                                                   + groups["other_agent"] + groups["uncompacted"])


@freeze_time(FROZEN)
def test_prune_asks_on_a_terminal(run, db):
    populate()
    refused = run("messages", "prune", "--older-than", "30d")
    assert (refused.exit_code, refused.stderr) == (2, "Error: refusing to delete without --yes when not on a "
                                                      "terminal\n")
    declined = run("messages", "prune", "--older-than", "30d", input="n\n", settings=Settings(interactive=True))
    assert (declined.exit_code, declined.stdout) == (1, "")
    assert declined.stderr == "Delete 2 messages older than 4w2d covered by a summary? [y/N]: n\nnothing deleted\n"
    assert len(ids_of(db)) == 14


def test_prune_needs_the_conversation_tables(upstream_url, tmp_path):
    """On nitejar's own database the same tables exist: nothing covered, nothing deleted."""
    from tests.conftest import Run

    result = Run(upstream_url)("messages", "prune", "--older-than", "1d", "--yes")
    assert (result.exit_code, result.stderr) == (0, "deleted 0 messages\n")


@freeze_time(FROZEN)
def test_cleanup_retain_prunes_what_compaction_just_covered(run, db):
    a = f.agent("ops")
    old = NOW - 40 * DAY
    _, _, msgs = f.conversation("tg:1", a["id"], [("user", "hi"), ("assistant", "yo")], start=old)
    _, _, fresh = f.conversation("tg:2", a["id"], [("user", "hi"), ("assistant", "yo")], start=NOW - 3600)
    dry = run("cleanup", "--retain", "30d", "--dry-run", "-o", "json")
    assert dry.exit_code == 0, dry.stderr
    assert json.loads(dry.stdout)["prunedMessages"] == 0  # no summary covers them yet
    result = run("cleanup", "--retain", "30d", "-o", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["compactedSessions"] == 2 and report["prunedMessages"] == 2 and report["errors"] == []
    assert ids_of(db) == sorted(m["id"] for m in fresh)
    assert "pruned 2 old messages" in result.stderr
    assert "prunedMessages" not in json.loads(run("cleanup", "-o", "json").stdout)


def test_prune_refuses_a_schema_where_rows_refer_to_messages(sqlite_url):
    """No nitejar schema has one; where one does, the prune would change rows it never previewed."""
    import sqlite3

    from tests.conftest import Run

    conn = sqlite3.connect(sqlite_url)
    conn.execute('CREATE TABLE "attachments" (id text primary key, message_id text references messages (id) '
                 "on delete cascade)")
    conn.commit()
    conn.close()
    result = Run(sqlite_url)("messages", "prune", "--older-than", "1d", "--yes")
    assert (result.exit_code, result.stderr) == (
        1, "Error: attachments.message_id refer(s) to messages: deleting messages would change those rows too, "
           "which this prune does not preview; nothing was deleted\n")


def test_prune_on_a_terminal_says_its_criteria_with_thousands_separators(db, db_url):
    """The question as an operator sees it: the count, the age, the criterion; no is not an error."""
    import time

    from tests.conftest import Run
    from tests.helpers.terminal import on_terminal

    ops = f.agent("ops", id="ag-ops")["id"]
    old = int(time.time()) - 40 * DAY
    job = f.job(f.work_item("tg:1", created_at=old)["id"], ops, status="COMPLETED", created_at=old)["id"]
    f.summary("tg:1", ops, start_time=old, end_time=old + 2000)
    db.execute_sql("WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 1234) "
                   "INSERT INTO messages (id, job_id, role, content, created_at) "
                   f"SELECT 'm-' || v, '{job}', 'user', '{{}}', {old} + v FROM s")
    db.close()
    question = "Delete 1,234 messages older than 4w2d covered by a summary? [y/N]: "
    declined = on_terminal("-d", db_url, "messages", "prune", "--older-than", "30d", answer="n\n")
    assert declined.code == 1
    assert question in declined.text and declined.text.endswith("nothing deleted\n")
    assert "Error" not in declined.text
    count = Run(db_url)("query", "SELECT count(*) AS n FROM messages", "-o", "json")
    assert json.loads(count.stdout) == [{"n": 1234}]
    agreed = on_terminal("-d", db_url, "messages", "prune", "--older-than", "30d", "-o", "ids", answer="y\n")
    assert agreed.code == 0 and question in agreed.text
    assert agreed.text.rstrip("\n").endswith("deleted 1,234 messages")
    assert json.loads(Run(db_url)("query", "SELECT count(*) AS n FROM messages", "-o", "json").stdout) == [{"n": 0}]
