"""`nitejarctl integrations`: list, show, create, update, enable, disable, delete."""

import json
import uuid

import pytest
from freezegun import freeze_time

from nitejarctl import models
from tests import factories as f
from tests.conftest import Run

T0 = 1790000000
NOW = T0 + 3600
FROZEN = "2026-09-21 15:13:20"  # NOW


def stored(integration_id):
    return (models.Integration.select(models.Integration.type, models.Integration.name,
                                      models.Integration.config, models.Integration.scope,
                                      models.Integration.enabled, models.Integration.updated_at)
            .where(models.Integration.id == integration_id).dicts().first())


@pytest.fixture
def three(db):
    with freeze_time("2026-09-21 14:13:20"):  # T0
        f.integration("telegram", "tg-main", id="i-1", config={"token": "x"})
        f.integration("github", "gh", id="i-2", enabled=0, scope="team")
        f.integration("telegram", "tg-backup", id="i-3")


def test_list_formats_and_filters(run, three):
    result = run("integrations", "list", "-o", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ("id,type,name,scope,enabled,created_at,updated_at\n"
                             f"i-2,github,gh,team,0,{T0},{T0}\n"
                             f"i-3,telegram,tg-backup,global,1,{T0},{T0}\n"
                             f"i-1,telegram,tg-main,global,1,{T0},{T0}\n")
    assert run("integrations", "list", "--type", "telegram", "-o", "ids").stdout == "i-3\ni-1\n"
    assert run("integrations", "list", "--disabled", "-o", "ids").stdout == "i-2\n"
    assert run("integrations", "list", "--enabled", "-o", "ids").stdout == "i-3\ni-1\n"
    assert json.loads(run("integrations", "list", "--type", "github", "-o", "json").stdout) == [
        {"id": "i-2", "type": "github", "name": "gh", "scope": "team", "enabled": 0,
         "created_at": T0, "updated_at": T0}]
    table = run("integrations", "list", "-o", "table", "--no-color", env={"COLUMNS": "150"})
    assert table.stdout.splitlines()[1].split() == ["name", "type", "enabled", "scope", "created_at",
                                                    "updated_at", "id"]
    assert "  gh          github     no        team  " in table.stdout
    assert "  tg-main     telegram   yes       global" in table.stdout


def test_show(run, three):
    f.agent("bot", id="a-1")
    models.AgentIntegration.insert(agent_id="a-1", integration_id="i-1", created_at=T0).execute()
    f.work_item(id="w-1")
    models.WorkItem.update(integration_id="i-1").execute()
    result = run("integrations", "show", "tg-main", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "id": "i-1", "type": "telegram", "name": "tg-main", "config": {"token": "***"},
        "scope": "global", "enabled": 1, "created_at": T0, "updated_at": T0, "work_item_count": 1,
        "agents": [{"id": "a-1", "name": "bot", "status": "idle", "linked_at": T0}]}
    revealed = run("integrations", "show", "tg-main", "-o", "json", "--show-secrets")
    assert json.loads(revealed.stdout)["config"] == {"token": "x"} and revealed.stderr == ""
    table = run("integrations", "show", "i-1", "-o", "table", "--no-color", env={"COLUMNS": "150"})
    lines = [line.rstrip() for line in table.stdout.splitlines()]
    assert "  config            {" in lines and '                      "token": "***"' in lines
    assert "  enabled           yes" in lines
    missing = run("integrations", "show", "nope")
    assert (missing.exit_code, missing.stderr) == (3, "Error: no integration with id or name 'nope'\n")


@freeze_time(FROZEN)
def test_create(run, db):
    result = run("integrations", "create", "telegram", "tg", "--config", '{"token": "[bold]t"}',
                 "--scope", "team", "-o", "json")
    assert result.exit_code == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert uuid.UUID(row["id"]).version == 4
    assert row == {"id": row["id"], "type": "telegram", "name": "tg", "scope": "team", "enabled": 1,
                   "created_at": NOW, "updated_at": NOW}
    assert result.stderr == f"created telegram integration 'tg' ({row['id']})\n"
    assert stored(row["id"]) == {"type": "telegram", "name": "tg", "config": '{"token":"[bold]t"}',
                                 "scope": "team", "enabled": 1, "updated_at": NOW}
    disabled = run("integrations", "create", "github", "gh", "--disabled", "-o", "ids")
    assert stored(disabled.stdout.strip())["enabled"] == 0


@pytest.mark.parametrize("args, error", [
    (["telegram", "tg", "--config", '{"a" 1}'],
     "Error: invalid JSON in --config: Expecting ':' delimiter (line 1, column 6)\n"),
    (["telegram", "tg", "--config", "[]"], "Error: --config must be a JSON object ({…}), not an array\n"),
    (["telegram", ""], "Error: the integration name must not be empty\n"),
    (["", "tg"], "Error: the integration type must not be empty\n"),
])
def test_create_usage_errors(run, db, args, error):
    result = run("integrations", "create", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", error)
    assert models.Integration.select().count() == 0


def test_update_set_unset(run, three):
    models.Integration.update(config=json.dumps({"webhook": {"url": "u", "secret": "s"}, "k": 1})) \
        .where(models.Integration.id == "i-1").execute()
    with freeze_time(FROZEN):
        result = run("integrations", "update", "tg-main", "--set", "webhook.url=https://x/y?a=b",
                     "--set", "limits.rate=5", "--unset", "webhook.secret", "--unset", "gone",
                     "--scope", "team", "-o", "ids")
    assert (result.exit_code, result.stdout) == (0, "i-1\n")
    assert result.stderr == ("Warning: gone was not set in the config of integration 'tg-main'\n"
                             "updated integration 'tg-main' (i-1)\n")
    row = stored("i-1")
    assert json.loads(row["config"]) == {"webhook": {"url": "https://x/y?a=b"}, "k": 1,
                                         "limits": {"rate": 5}}
    assert (row["scope"], row["updated_at"]) == ("team", NOW)
    nothing = run("integrations", "update", "i-1")
    assert nothing.exit_code == 2
    bad = run("integrations", "update", "i-1", "--set", "=x")
    assert (bad.exit_code, bad.stderr) == (2, "Error: --set expects dotted.key=value, got '=x' (the key is empty)\n")
    unknown = run("integrations", "update", "nope", "--name", "x")
    assert (unknown.exit_code, unknown.stderr) == (3, "Error: no integration with id or name 'nope'\n")


def test_enable_disable(run, three):
    with freeze_time(FROZEN):
        result = run("integrations", "disable", "i-1", "tg-backup", "gh", "-o", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ("id,type,name,scope,enabled,created_at,updated_at\n"
                             f"i-2,github,gh,team,0,{T0},{T0}\n"
                             f"i-3,telegram,tg-backup,global,0,{T0},{NOW}\n"
                             f"i-1,telegram,tg-main,global,0,{T0},{NOW}\n")
    assert result.stderr == "disabled 2 integrations (1 already disabled)\n"
    enabled = run("integrations", "enable", "i-2", "-o", "ids")
    assert (enabled.stdout, enabled.stderr) == ("i-2\n", "enabled 1 integration\n")
    assert stored("i-2")["enabled"] == 1


def test_enable_unknown_changes_nothing(run, three):
    result = run("integrations", "enable", "i-2", "nope")
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == "Error: no integration with id or name 'nope'\n"
    assert stored("i-2")["enabled"] == 0
    ignored = run("integrations", "enable", "i-2", "nope", "--ignore-missing", "-o", "ids")
    assert (ignored.exit_code, ignored.stdout) == (0, "i-2\n")
    assert ignored.stderr == ("Warning: no integration with id or name 'nope'\n"
                              "enabled 1 integration\n")


def test_delete_dry_run_and_cascade(run, three):
    f.agent("bot", id="a-1")
    models.AgentIntegration.insert(agent_id="a-1", integration_id="i-1", created_at=T0).execute()
    dry = run("integrations", "delete", "tg-main", "--dry-run", "-o", "csv")
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout == "change,table,rows\ndelete,agent_integrations,1\ndelete,integrations,1\n"
    assert dry.stderr == ("would delete telegram integration 'tg-main' (i-1) and 1 row in 1 other table "
                          "(dry run: nothing changed)\n")
    preview = json.loads(run("integrations", "delete", "tg-main", "--dry-run", "-o", "json").stdout)
    assert preview == {"integration": {"id": "i-1", "type": "telegram", "name": "tg-main", "scope": "global",
                                       "enabled": 1, "created_at": T0, "updated_at": T0},
                       "deletes": {"agent_integrations": 1, "integrations": 1}, "nulls": {}}
    assert models.Integration.select().count() == 3
    assert models.AgentIntegration.select().count() == 1
    refused = run("integrations", "delete", "tg-main")
    assert refused.exit_code == 2
    done = run("integrations", "delete", "tg-main", "--yes", "-o", "ids")
    assert (done.exit_code, done.stdout) == (0, "i-1\n")
    assert done.stderr == "deleted telegram integration 'tg-main' (i-1) and 1 row in 1 other table\n"
    assert models.Integration.select().count() == 2
    assert models.AgentIntegration.select().count() == 0
    assert models.Agent.select().count() == 1
    again = run("integrations", "delete", "i-1", "--yes")
    assert (again.exit_code, again.stderr) == (3, "Error: no integration with id or name 'i-1'\n")
    ignored = run("integrations", "delete", "i-1", "--yes", "--ignore-missing")
    assert (ignored.exit_code, ignored.stderr) == (0, "Warning: no integration with id or name 'i-1'\n")


def test_delete_with_work_items(run, three):
    f.work_item(id="w-1")
    f.work_item(id="w-2")
    models.WorkItem.update(integration_id="i-1").execute()
    blocked = run("integrations", "delete", "i-1", "--yes")
    assert blocked.exit_code == 1
    assert blocked.stderr == (
        "Error: cannot delete telegram integration 'tg-main' (i-1): rows that stay would be left referring to "
        "deleted ones through foreign keys without ON DELETE CASCADE or SET NULL (or NOT NULL keys): "
        "work_items.integration_id (2 rows) (--detach-work-items keeps the work items, without it)\n")
    assert models.Integration.select().count() == 3
    dry = run("integrations", "delete", "i-1", "--dry-run", "-o", "csv")
    assert dry.exit_code == 1
    assert dry.stdout == ("change,table,rows\ndelete,integrations,1\n"
                          "blocked by,work_items.integration_id,2\n")
    dry = run("integrations", "delete", "i-1", "--detach-work-items", "--dry-run", "-o", "csv")
    assert dry.stdout == "change,table,rows\ndelete,integrations,1\nset null,work_items.integration_id,2\n"
    assert models.WorkItem.select().where(models.WorkItem.integration_id == "i-1").count() == 2
    done = run("integrations", "delete", "i-1", "--detach-work-items", "--yes", "-o", "ids")
    assert (done.exit_code, done.stdout) == (0, "i-1\n")
    assert done.stderr == "deleted telegram integration 'tg-main' (i-1) and 2 references set to NULL\n"
    assert [w.integration_id_id for w in models.WorkItem.select()] == [None, None]


def test_database_without_tables(empty_url, backend):
    if backend == "sqlite":
        import sqlite3

        sqlite3.connect(empty_url).close()
    result = Run(empty_url)("integrations", "list")
    assert result.exit_code == 1
    assert result.stderr == ("Error: this database has no 'integrations' table (the database is "
                             "empty: run 'nitejarctl migrate')\n")
