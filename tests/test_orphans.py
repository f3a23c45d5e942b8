"""Dangling references — rows whose parent is gone, as nitejar leaves them
(it writes without enforcing its foreign keys): `doctor` counts them per key
(SQLite: `pragma foreign_key_check`; PostgreSQL: anti-joins over the declared
keys) and `repair orphans` removes them as each key says, with an exact
preview, never deleting a row for itself whose references all have their parent.
On the SQLite fixture and its PostgreSQL translation (where the rows are
written under the replication role, which checks no key, as a restore with
triggers disabled would)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Run
from tests.helpers.nitejar_rows import Schema, census, connect, dangling, diff, insert, row
from tests.test_upstream import NOW, nitejar_url, populate  # noqa: F401  (nitejar_url: the fixture)

ORPHANS = {"agent_memories.agent_id": 1, "idempotency_keys.work_item_id": 1, "jobs.agent_id": 1,
           "jobs.parent_job_id": 1, "messages.job_id": 1, "work_items.plugin_instance_id": 1}


@pytest.fixture
def orphaned(nitejar_url):  # noqa: F811
    """The populated fixture, and rows as nitejar leaves them when it deletes
    an agent, a job, a work item and a plugin instance without its keys."""
    populate(nitejar_url)
    s = Schema()
    job = dict(work_item_id="wi-0", status="COMPLETED", created_at=NOW, updated_at=NOW)
    insert(nitejar_url, [
        ("jobs", row(s, "jobs", id="job-orphan", agent_id="ag-gone", **job)),        # CASCADE: goes
        ("messages", row(s, "messages", id="msg-of-orphan-1", job_id="job-orphan")),  # goes with it
        ("messages", row(s, "messages", id="msg-of-orphan-2", job_id="job-orphan")),
        ("messages", row(s, "messages", id="msg-lost", job_id="job-gone")),          # CASCADE: goes
        ("jobs", row(s, "jobs", id="job-child", agent_id="ag-ops", parent_job_id="job-gone",  # SET NULL
                     root_job_id="job-orphan", **job)),                             # SET NULL as it goes
        ("agent_memories", row(s, "agent_memories", id="mem-lost", agent_id="ag-gone")),
        ("work_items", row(s, "work_items", id="wi-lost", plugin_instance_id="pi-gone")),  # NO ACTION: kept
        ("idempotency_keys", row(s, "idempotency_keys", key="key-lost", work_item_id="wi-gone")),
    ], enforce=False)
    return nitejar_url


def ids(url, table, column="id") -> set:
    conn, _ = connect(url)
    try:
        cur = conn.cursor()
        cur.execute(f'SELECT "{column}" FROM "{table}"')
        return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def test_doctor_counts_them_per_key(orphaned, backend):
    run = Run(orphaned)
    report = json.loads(run("doctor", "-o", "json").stdout)
    assert report["orphans"] == ORPHANS == dangling(orphaned)
    assert report["ok"] is True and report["problems"] == []
    assert report["notices"] == ["6 dangling references in 6 foreign keys (rows whose parent is gone): "
                                 "see 'nitejarctl repair orphans --dry-run'"]
    text = run("doctor")
    assert text.exit_code == 0
    assert "orphans       jobs.agent_id" in text.stdout and "notice        6 dangling references" in text.stdout


def test_repair_previews_and_removes_exactly_that(orphaned, backend):
    schema = Schema()
    run = Run(orphaned)
    before = census(orphaned, schema)
    kept = {t: ids(orphaned, t) for t in ("jobs", "messages", "agent_memories", "work_items")}
    dry = run("repair", "orphans", "--dry-run", "-o", "json")
    assert dry.exit_code == 0, dry.stderr
    preview = json.loads(dry.stdout)
    assert preview == {
        "orphans": ORPHANS, "kept": {"work_items.plugin_instance_id": 1},
        "deletes": {"agent_memories": 1, "idempotency_keys": 1, "messages": 3, "jobs": 1},
        "nulls": {"jobs.parent_job_id": 1, "jobs.root_job_id": 1}}
    assert dry.stderr == (
        "would delete 6 rows in 4 tables, set 2 references to NULL (dry run: nothing changed)\n"
        "kept 1 dangling reference of keys without ON DELETE action (work_items.plugin_instance_id 1): "
        "--detach sets them to NULL where the column allows\n")
    assert census(orphaned, schema) == before
    assert run("repair", "orphans").exit_code == 2  # no terminal, no --yes

    done = run("repair", "orphans", "--yes", "-o", "json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout) == preview
    changed = diff(before, census(orphaned, schema))
    assert (changed["deletes"], changed["nulls"], changed["other"]) == (preview["deletes"], preview["nulls"], {})
    # Only the orphans and what their keys tie to them went; every row with its parents stayed.
    assert kept["jobs"] - ids(orphaned, "jobs") == {"job-orphan"}
    assert kept["messages"] - ids(orphaned, "messages") == {"msg-lost", "msg-of-orphan-1", "msg-of-orphan-2"}
    assert kept["agent_memories"] - ids(orphaned, "agent_memories") == {"mem-lost"}
    assert ids(orphaned, "work_items") == kept["work_items"]
    assert dangling(orphaned) == {"work_items.plugin_instance_id": 1}
    assert json.loads(run("doctor", "-o", "json").stdout)["orphans"] == {"work_items.plugin_instance_id": 1}

    detached = run("repair", "orphans", "--detach", "--yes", "-o", "json")
    assert detached.exit_code == 0, detached.stderr
    assert json.loads(detached.stdout) == {"orphans": {"work_items.plugin_instance_id": 1}, "kept": {},
                                           "deletes": {}, "nulls": {"work_items.plugin_instance_id": 1}}
    assert dangling(orphaned) == {} and ids(orphaned, "work_items") == kept["work_items"]
    nothing = run("repair", "orphans", "--yes", "-o", "json")
    assert (nothing.exit_code, nothing.stderr) == (0, "no dangling references to repair\n")
    assert json.loads(nothing.stdout) == {"orphans": {}, "kept": {}, "deletes": {}, "nulls": {}}


def test_repair_in_batches_changes_the_same(orphaned, backend):
    from nitejarctl.cli.context import Settings
    from nitejarctl.db.batches import Batching

    run = Run(orphaned)
    preview = json.loads(run("repair", "orphans", "--dry-run", "-o", "json").stdout)
    settings = Settings(batching=Batching(first=1, smallest=1, largest=1))
    done = run("repair", "orphans", "--yes", "-o", "json", settings=settings)
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout) == preview
