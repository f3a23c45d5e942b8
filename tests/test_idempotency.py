"""idempotency: list and prune."""

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime

from freezegun import freeze_time

from nitejarctl.models import IdempotencyKey
from tests import factories as f
from tests.conftest import Run

NOW = 1_790_000_000
DAY = 86400


def at(ts: int):
    return freeze_time(datetime.fromtimestamp(ts, UTC))


def keys() -> list:
    return sorted(k for (k,) in IdempotencyKey.select(IdempotencyKey.key).tuples())


def _fixture():
    wi = f.work_item(id="wi-1")
    f.idempotency_key("tg:old:'quoted' [bold]x[/]", work_item_id=wi["id"], created_at=NOW - 40 * DAY)
    f.idempotency_key("gh:older%_", created_at=NOW - 50 * DAY)
    f.idempotency_key("tg:new", work_item_id=wi["id"], created_at=NOW - DAY)


ALL = [
    {"key": "gh:older%_", "work_item_id": None, "created_at": NOW - 50 * DAY},
    {"key": "tg:old:'quoted' [bold]x[/]", "work_item_id": "wi-1", "created_at": NOW - 40 * DAY},
    {"key": "tg:new", "work_item_id": "wi-1", "created_at": NOW - DAY},
]


@at(NOW)
def test_list_formats(run, db):
    _fixture()
    assert json.loads(run("idempotency", "list", "-o", "json").stdout) == ALL
    jsonl = run("idempotency", "list", "-o", "jsonl").stdout.splitlines()
    assert [json.loads(line) for line in jsonl] == ALL
    rows = list(csv.reader(io.StringIO(run("idempotency", "list", "-o", "csv").stdout)))
    assert rows == [["key", "work_item_id", "created_at"]] + [
        [r["key"], r["work_item_id"] or "", str(r["created_at"])] for r in ALL]
    tsv = run("idempotency", "list", "-o", "tsv").stdout
    assert tsv == "key\twork_item_id\tcreated_at\n" + "".join(
        f"{r['key']}\t{r['work_item_id'] or ''}\t{r['created_at']}\n" for r in ALL)
    assert run("idempotency", "list", "-o", "ids").stdout == "".join(r["key"] + "\n" for r in ALL)
    table = run("idempotency", "list", "-o", "table", env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "tg:old:'quoted' [bold]x[/]" in table.stdout and "gh:older%_" in table.stdout


@at(NOW)
def test_list_older_than_and_limit(run, db):
    _fixture()
    older = run("idempotency", "list", "--older-than", "30d", "-o", "ids")
    assert older.stdout == "gh:older%_\ntg:old:'quoted' [bold]x[/]\n"
    limited = run("idempotency", "list", "--limit", "1", "-o", "ids")
    assert limited.stdout == "gh:older%_\n"
    assert "2 more keys not shown" in limited.stderr
    assert run("idempotency", "list", "--older-than", "1y").exit_code == 2
    bad = run("idempotency", "list", "--older-than", "0")
    assert bad.exit_code == 2 and "'0' is not a positive duration" in bad.stderr


@at(NOW)
def test_prune(run, db):
    _fixture()
    refused = run("idempotency", "prune", "--older-than", "30d")
    assert (refused.exit_code, refused.stderr) == (
        2, "Error: refusing to delete without --yes when not on a terminal\n")
    dry = run("idempotency", "prune", "--older-than", "30d", "--dry-run", "-o", "json")
    assert dry.exit_code == 0
    assert sorted(json.loads(dry.stdout), key=lambda r: r["created_at"]) == ALL[:2]
    assert dry.stderr == "would prune 2 idempotency keys (dry run)\n"
    assert len(keys()) == 3
    done = run("idempotency", "prune", "--older-than", "30d", "--yes", "-o", "json")
    assert done.exit_code == 0 and done.stderr == "pruned 2 idempotency keys\n"
    assert done.stdout == dry.stdout
    assert keys() == ["tg:new"]
    again = run("idempotency", "prune", "--older-than", "30d", "-y", "-o", "ids")
    assert (again.exit_code, again.stdout, again.stderr) == (0, "", "pruned 0 idempotency keys\n")


def test_prune_requires_older_than(run, db):
    result = run("idempotency", "prune", "-y")
    assert result.exit_code == 2 and "Missing option '--older-than'" in result.stderr


@at(NOW)
def test_prune_in_batches(db):
    from nitejarctl.db.batches import Batching, Bulk
    from nitejarctl.repositories import idempotency as repo

    IdempotencyKey.insert_many([{"key": f"k{i:04}", "created_at": NOW - DAY - i} for i in range(1200)]
                               + [{"key": "fresh", "created_at": NOW}]).execute()
    batches, rows = [], []
    bulk = Bulk(sink=rows.extend, progress=batches.append, batching=Batching(first=500, smallest=500))
    assert repo.prune(db, NOW - 10, bulk) == 1200
    assert batches[0] == 500 and len(batches) >= 2 and sum(batches) == 1200
    assert sorted(row[0] for row in rows) == [f"k{i:04}" for i in range(1200)]
    assert keys() == ["fresh"]


def test_on_a_nitejar_created_database(upstream_url):
    conn = sqlite3.connect(upstream_url)
    conn.execute("INSERT INTO idempotency_keys (key, created_at) VALUES ('old', ?), ('new', ?)",
                 (NOW - 90 * DAY, NOW))
    conn.commit()
    conn.close()
    run = Run(upstream_url)
    with at(NOW):
        assert run("idempotency", "list", "-o", "ids").stdout == "old\nnew\n"
        result = run("idempotency", "prune", "--older-than", "30d", "-y", "-o", "ids")
    assert result.exit_code == 0 and result.stdout == "old\n"
    conn = sqlite3.connect(upstream_url)
    assert conn.execute("SELECT key FROM idempotency_keys").fetchall() == [("new",)]
    conn.close()


def test_missing_table_is_one_line(empty_url, backend):
    if backend == "sqlite":
        sqlite3.connect(empty_url).close()
    result = Run(empty_url)("idempotency", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: this database has no 'idempotency_keys' table")
