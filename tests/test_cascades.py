"""Deletes on a database nitejar's migrator created follow its own foreign keys
(read from the catalogue), CASCADE and SET NULL, to every depth: the preview
counts exactly what the delete then changes, table by table and key by key,
and leaves no new dangling reference. On SQLite (the fixture) and on its
PostgreSQL translation.
"""

from __future__ import annotations

import json

import pytest

from nitejarctl.cli.context import Settings
from nitejarctl.db.batches import Batching
from tests.conftest import Run
from tests.helpers.nitejar_rows import Schema, census, dangling, diff, execute, insert, referencing_rows, row
from tests.test_upstream import nitejar_url  # noqa: F401  (the fixture)

NOW = 1_790_000_000
DOOMED, OTHER = "ag-doomed", "ag-other"


def agents_and_sessions():
    rows = [("agents", {"id": a, "name": n, "status": "idle", "created_at": NOW, "updated_at": NOW})
            for a, n in ((DOOMED, "doomed"), (OTHER, "other"))]
    for sid, agent, status in (("ss-1", DOOMED, "active"), ("ss-2", DOOMED, "closed"), ("ss-3", OTHER, "active")):
        rows.append(("sprite_sessions", {"id": sid, "sprite_name": "sprite", "session_id": f"api-{sid}",
                                         "session_key": "telegram:1", "agent_id": agent, "status": status,
                                         "created_at": NOW, "last_active_at": NOW}))
    return rows


@pytest.fixture
def populated(nitejar_url):  # noqa: F811
    """The fixture with one row in every table that references agents (the
    key pointing at the doomed agent), the rows those need, another agent,
    and sprite sessions of both."""
    insert(nitejar_url, agents_and_sessions() + referencing_rows("agents", DOOMED))
    return nitejar_url


def test_the_preview_is_exactly_the_delete(populated, backend):
    """The closing figures: the preview of deleting an agent that every table
    referencing `agents` refers to, and the per-table diff of the real delete."""
    schema = Schema()
    run = Run(populated)
    before = census(populated, schema)
    dry = run("agents", "delete", "doomed", "--dry-run", "-o", "json")
    assert dry.exit_code == 0, dry.stderr
    preview = json.loads(dry.stdout)
    assert census(populated, schema) == before
    done = run("agents", "delete", "doomed", "--yes", "-o", "json")
    assert done.exit_code == 0, done.stderr
    changed = diff(before, census(populated, schema))
    print(f"\n[{backend}] agents delete doomed --dry-run -o json:\n{json.dumps(preview, indent=2)}")
    print(f"[{backend}] per-table diff of the delete:\n{json.dumps(changed, indent=2)}")

    assert json.loads(done.stdout) == preview
    assert {k: preview[k] for k in ("deletes", "nulls", "closes")} == {
        k: changed[k] for k in ("deletes", "nulls", "closes")}
    assert changed["inserts"] == {} and changed["other"] == {}
    # Every table with a key to agents took part: deleted (CASCADE) or set NULL (SET NULL).
    touched = set(preview["deletes"]) | {k.split(".")[0] for k in preview["nulls"]}
    assert touched == set(schema.referencing("agents")) | {"agents"}
    assert len(schema.referencing("agents")) == 27
    assert preview["deletes"]["agents"] == 1 and list(preview["deletes"])[-1] == "agents"
    assert preview["nulls"] == {"collection_rows.updated_by_agent_id": 1,
                                "collection_rows.created_by_agent_id": 1, "collections.created_by_agent_id": 1}
    assert preview["closes"] == {"sprite_sessions": 1}
    assert dangling(populated, schema) == {}
    assert done.stderr == ("deleted agent 'doomed' (ag-doomed) and 25 rows in 25 other tables, "
                           "3 references set to NULL, 1 sprite session closed\n")


def deeper_rows(schema):
    """Rows two and three keys away from the doomed agent, and a job of the
    other agent that points at its job through SET NULL keys."""
    rows = [("messages", row(schema, "messages", id=f"msg-{i}", job_id="jobs:id", role="user",
                             content='{"text": "hi"}', created_at=NOW + i)) for i in range(7)]
    rows += [("routine_runs", row(schema, "routine_runs", id="run-1", routine_id="routines:id")),
             ("media_artifact_blobs", row(schema, "media_artifact_blobs", artifact_id="media_artifacts:id")),
             ("spans", row(schema, "spans", id="span-1", job_id="jobs:id")),
             ("work_items", row(schema, "work_items", id="wi-other")),
             ("jobs", row(schema, "jobs", id="job-other", work_item_id="wi-other", agent_id=OTHER,
                          parent_job_id="jobs:id", root_job_id="jobs:id"))]
    return rows


def test_depth_and_batches(populated, backend):
    """Messages of its jobs, runs of its routines, blobs of its media go too;
    the other agent's job loses only its SET NULL references. Deleted in
    batches of one row."""
    schema = Schema()
    insert(populated, deeper_rows(schema))
    before = census(populated, schema)
    run = Run(populated)
    preview = json.loads(run("agents", "delete", "doomed", "--dry-run", "-o", "json").stdout)
    assert preview["deletes"]["messages"] == 7 and preview["deletes"]["routine_runs"] == 1
    assert preview["deletes"]["media_artifact_blobs"] == 1 and preview["deletes"]["spans"] == 1
    assert preview["nulls"]["jobs.parent_job_id"] == 1 and preview["nulls"]["jobs.root_job_id"] == 1
    settings = Settings(batching=Batching(first=1, smallest=1, largest=1))
    done = run("agents", "delete", "doomed", "--yes", "-o", "json", settings=settings)
    assert done.exit_code == 0, done.stderr
    changed = diff(before, census(populated, schema))
    assert {k: preview[k] for k in ("deletes", "nulls", "closes")} == {
        k: changed[k] for k in ("deletes", "nulls", "closes")}
    assert changed["other"] == {} and dangling(populated, schema) == {}
    assert run("jobs", "show", "job-other", "-o", "json").exit_code == 0


def test_a_key_without_on_delete_action_blocks_the_delete(populated, backend):
    """Another agent's scheduled item refers to the doomed agent's routine
    (scheduled_items.routine_id has no ON DELETE action): nothing is deleted."""
    row = dict(referencing_rows("agents", DOOMED))["scheduled_items"]
    insert(populated, [("scheduled_items", {**row, "id": "si-other", "agent_id": OTHER})])
    before = census(populated)
    run = Run(populated)
    dry = run("agents", "delete", "doomed", "--dry-run", "-o", "json")
    assert dry.exit_code == 1
    assert json.loads(dry.stdout)["blocked"] == {"scheduled_items.routine_id": 1}
    refused = run("agents", "delete", "doomed", "--yes")
    assert (refused.exit_code, refused.stdout) == (1, "")
    assert refused.stderr == (
        "Error: cannot delete agent 'doomed' (ag-doomed): rows that stay would be left referring to deleted "
        "ones through foreign keys without ON DELETE CASCADE or SET NULL (or NOT NULL keys): "
        "scheduled_items.routine_id (1 row)\n")
    assert census(populated) == before


def test_a_cycle_of_cascading_keys_is_refused(db_url, backend):
    """No nitejar schema has one; a database that does gets one line, nothing changed."""
    a = "CREATE TABLE a (id text primary key, agent_id text references agents (id) on delete cascade, b_id text"
    b = "CREATE TABLE b (id text primary key, a_id text references a (id) on delete cascade)"
    if backend == "sqlite":  # which cannot add a key to a table, but takes one to a table made later
        execute(db_url, a + " references b (id) on delete cascade)", b)
    else:
        execute(db_url, a + ")", b, "ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b (id) ON DELETE CASCADE")
    execute(db_url, "INSERT INTO agents (id, name, status, created_at, updated_at) VALUES ('x', 'x', 'idle', 0, 0)")
    result = Run(db_url)("agents", "delete", "x", "--yes")
    assert result.exit_code == 1
    assert result.stderr == ("Error: the foreign keys a -> b -> a delete rows in a cycle (ON DELETE CASCADE): "
                             "nitejarctl cannot tell what such a delete removes\n")
    assert Run(db_url)("agents", "list", "-o", "ids").stdout == "x\n"


BIG = 200_000


def _count(url: str, sql: str) -> int:
    from tests.helpers.nitejar_rows import connect

    conn, _ = connect(url)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchone()[0]
    finally:
        conn.close()


def test_a_large_agent_is_deleted_in_batches_and_a_stopped_delete_finishes_on_a_rerun(db_url, backend):
    """SIGINT once a batch has committed: the rows of the committed batches are
    reported, the agent (deleted last) is still there, exit 130; a rerun
    deletes the rest."""
    import re
    import signal
    import subprocess
    import time

    from tests.test_reliability import nitejarctl

    series = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) SELECT i FROM n"
              if backend == "sqlite" else "SELECT i FROM generate_series(1, {n}) AS i")
    execute(db_url,
            "INSERT INTO agents (id, name, status, created_at, updated_at) VALUES ('big', 'big', 'idle', 0, 0)",
            "INSERT INTO work_items (id, session_key, source, source_ref, status, title, created_at, updated_at) "
            "VALUES ('wi', 'k', 's', 'r', 'DONE', 't', 0, 0)",
            "INSERT INTO jobs (id, work_item_id, agent_id, status, created_at, updated_at) "
            "VALUES ('job', 'wi', 'big', 'COMPLETED', 0, 0)",
            f"INSERT INTO messages (id, job_id, role, content, created_at) "
            f"SELECT 'm' || i, 'job', 'user', '{{}}', i FROM ({series.format(n=BIG)}) AS s")
    proc = subprocess.Popen([*nitejarctl(), "agents", "delete", "big", "--yes", "-o", "json", "-d", db_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _count(db_url, "SELECT count(*) FROM messages") == BIG:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    left = _count(db_url, "SELECT count(*) FROM messages")
    assert 0 < left < BIG, "the delete should have been stopped half-way"
    done, total = (int(n.replace(",", "")) for n in re.match(
        r"^interrupted: deleted ([\d,]+) of ([\d,]+) rows; the others are unchanged \(rerun to finish\)$",
        err.strip()).groups())
    assert (done, total) == (BIG - left, BIG + 2)  # the messages, the job, the agent
    assert json.loads(out)["deletes"] == {"messages": BIG - left}
    assert _count(db_url, "SELECT count(*) FROM agents WHERE id = 'big'") == 1
    rerun = subprocess.run([*nitejarctl(), "agents", "delete", "big", "--yes", "-o", "json", "-d", db_url],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["deletes"] == {"messages": left, "jobs": 1, "agents": 1}
    assert _count(db_url, "SELECT count(*) FROM messages") == 0


def test_the_foreign_keys_come_from_the_catalogue(nitejar_url, backend):  # noqa: F811
    """SQLite's pragma and PostgreSQL's pg_constraint give the same keys for
    the fixture and its translation: those the fixture declares."""
    from nitejarctl.db import open_database, parse_url

    schema = Schema()
    expected = set()
    for table in schema.tables():
        for r in schema.conn.execute(f'SELECT "from", "table", "to", on_delete FROM pragma_foreign_key_list("{table}")'):
            expected.add((table, (r[0],), r[1], (r[2],), r[3]))
    db = open_database(parse_url(nitejar_url))
    try:
        found = {(k.child, k.child_columns, k.parent, k.parent_columns, k.on_delete) for k in db.foreign_keys()}
    finally:
        db.close()
    assert found == expected and len(found) == 129
