"""On a database nitejar's migrator created, integrations are plugin instances
(`plugin_instances`, config in `config_json`, linked by
`agent_plugin_instances`): every `integrations` command but create, and
`agents link/unlink`, work on them, with the config's secrets masked as
integrations' are. On the SQLite fixture and its PostgreSQL translation."""

from __future__ import annotations

import json

import pytest
from freezegun import freeze_time

from tests.conftest import Run
from tests.helpers.nitejar_rows import Schema, census, connect, diff, insert, row
from tests.test_upstream import DAY, FROZEN, NOW, nitejar_url, populate  # noqa: F401  (nitejar_url: the fixture)

CREATED = NOW - 90 * DAY


@pytest.fixture
def instances(nitejar_url):  # noqa: F811
    populate(nitejar_url)  # pi-tg 'tg-main' (config {"token": "x"}), linked to ag-ops and ag-dev
    insert(nitejar_url, [("plugin_instances", {
        "id": "pi-gh", "plugin_id": "github", "name": "gh", "scope": "team", "enabled": 0,
        "config_json": json.dumps({"appId": 7, "privateKey": "enc:abc", "webhook": {"secret": "s3"}}),
        "created_at": CREATED, "updated_at": CREATED})])
    return nitejar_url


def stored(url, instance_id):
    conn, mark = connect(url)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT plugin_id, name, scope, enabled, config_json, updated_at FROM plugin_instances "
                    f"WHERE id = {mark}", (instance_id,))
        plugin, name, scope, enabled, config, updated = cur.fetchone()
        return {"plugin_id": plugin, "name": name, "scope": scope, "enabled": enabled,
                "config_json": json.loads(config), "updated_at": updated}
    finally:
        conn.close()


def test_list_and_show(instances, backend):
    run = Run(instances)
    listed = run("integrations", "list", "-o", "csv")
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout == ("id,plugin_id,name,scope,enabled,created_at,updated_at\n"
                             f"pi-gh,github,gh,team,0,{CREATED},{CREATED}\n"
                             f"pi-tg,telegram,tg-main,global,1,{CREATED},{CREATED}\n")
    assert run("integrations", "list", "--type", "telegram", "-o", "ids").stdout == "pi-tg\n"
    assert run("integrations", "list", "--disabled", "-o", "ids").stdout == "pi-gh\n"
    shown = json.loads(run("integrations", "show", "gh", "-o", "json").stdout)
    assert shown == {"id": "pi-gh", "plugin_id": "github", "name": "gh",
                     "config_json": {"appId": 7, "privateKey": "enc:***", "webhook": {"secret": "***"}},
                     "scope": "team", "enabled": 0, "created_at": CREATED, "updated_at": CREATED,
                     "work_item_count": 0, "agents": []}
    tg = json.loads(run("integrations", "show", "pi-tg", "-o", "json").stdout)
    assert tg["config_json"] == {"token": "***"} and tg["work_item_count"] == 3
    assert [a["id"] for a in tg["agents"]] == ["ag-dev", "ag-ops"]
    table = run("integrations", "show", "gh", "-o", "table", "--no-color", env={"COLUMNS": "200"})
    assert "enc:abc" not in table.stdout and "s3" not in table.stdout and '"secret": "***"' in table.stdout
    secrets = json.loads(run("integrations", "show", "gh", "--show-secrets", "-o", "json").stdout)
    assert secrets["config_json"]["webhook"]["secret"] == "s3"


@freeze_time(FROZEN)
def test_update_enable_disable(instances, backend):
    run = Run(instances)
    updated = run("integrations", "update", "gh", "--set", "webhook.url=https://example.org/hook",
                  "--name", "github-main", "--type", "github-app", "-o", "ids")
    assert (updated.exit_code, updated.stdout) == (0, "pi-gh\n"), updated.stderr
    assert updated.stderr == "updated plugin instance 'github-main' (pi-gh)\n"
    assert stored(instances, "pi-gh") == {
        "plugin_id": "github-app", "name": "github-main", "scope": "team", "enabled": 0, "updated_at": NOW,
        "config_json": {"appId": 7, "privateKey": "enc:abc",
                        "webhook": {"secret": "s3", "url": "https://example.org/hook"}}}
    # the masked config written back keeps the stored secrets
    shown = json.loads(run("integrations", "show", "pi-gh", "-o", "json").stdout)["config_json"]
    back = run("integrations", "update", "pi-gh", "--config", json.dumps({**shown, "appId": 8}))
    assert back.exit_code == 0, back.stderr
    assert stored(instances, "pi-gh")["config_json"] == {
        "appId": 8, "privateKey": "enc:abc", "webhook": {"secret": "s3", "url": "https://example.org/hook"}}
    refused = run("integrations", "update", "pi-tg", "--set", "password=***")
    assert refused.exit_code == 2
    enabled = run("integrations", "enable", "pi-gh", "tg-main")
    assert (enabled.exit_code, enabled.stderr) == (0, "enabled 1 plugin instance (1 already enabled)\n")
    assert run("integrations", "disable", "tg-main", "-o", "ids").stdout == "pi-tg\n"
    assert (stored(instances, "pi-gh")["enabled"], stored(instances, "pi-tg")["enabled"]) == (1, 0)
    missing = run("integrations", "disable", "nope")
    assert (missing.exit_code, missing.stderr) == (3, "Error: no plugin instance with id or name 'nope'\n")


def test_create_is_refused(instances, backend):
    before = census(instances)
    result = Run(instances)("integrations", "create", "slack", "s", "--config", "{}")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "Error: this database keeps integrations as nitejar's plugin instances, which nitejar creates with "
        "their plugin's installation: create it in nitejar (list, show, update, enable, disable, delete and "
        "link work here)\n")
    assert census(instances) == before


@freeze_time(FROZEN)
def test_link_and_unlink(instances, backend):
    run = Run(instances)
    linked = run("agents", "link", "ops", "gh", "-o", "csv")
    assert linked.exit_code == 0, linked.stderr
    assert linked.stdout == ("agent_id,agent_name,integration_id,integration_name,created_at\n"
                             f"ag-ops,ops,pi-gh,gh,{NOW}\n")
    assert linked.stderr == "linked agent 'ops' to integration 'gh'\n"
    again = run("agents", "link", "ops", "pi-tg")
    assert (again.exit_code, again.stderr) == (0, "already linked: agent 'ops' to integration 'tg-main'\n")
    shown = json.loads(run("agents", "show", "ops", "-o", "json").stdout)
    assert [(p["id"], p["plugin_id"]) for p in shown["plugin_instances"]] == [("pi-gh", "github"),
                                                                             ("pi-tg", "telegram")]
    unlinked = run("agents", "unlink", "ops", "gh", "-o", "ids")
    assert (unlinked.exit_code, unlinked.stdout) == (0, "ag-ops\n")
    assert unlinked.stderr == "unlinked agent 'ops' from integration 'gh'\n"
    noop = run("agents", "unlink", "ops", "gh")
    assert (noop.exit_code, noop.stderr) == (0, "not linked, nothing to do: agent 'ops' from integration 'gh'\n")
    # nitejar's own column of the link it made is left as it was
    conn, _ = connect(instances)
    try:
        cur = conn.cursor()
        cur.execute("SELECT agent_id, policy_json FROM agent_plugin_instances ORDER BY agent_id")
        assert cur.fetchall() == [("ag-dev", '{"allow": ["*"]}'), ("ag-ops", '{"allow": ["*"]}')]
    finally:
        conn.close()


def test_delete_follows_the_keys(instances, backend):
    """Deleting a plugin instance removes its links and what its keys cascade
    to (a routine aimed at it, its effect outbox), sets NULL where they say
    so, and is blocked by work items (no ON DELETE action) unless detached."""
    s = Schema()
    insert(instances, [
        ("routines", row(s, "routines", id="rt-1", agent_id="ag-ops", target_plugin_instance_id="pi-tg")),
        ("queue_lanes", row(s, "queue_lanes", queue_key="lane-1", agent_id="ag-ops", plugin_instance_id="pi-tg")),
        ("run_dispatches", row(s, "run_dispatches", id="rd-1", work_item_id="wi-0", agent_id="ag-ops",
                               plugin_instance_id="pi-tg")),
        ("effect_outbox", row(s, "effect_outbox", id="eo-1", dispatch_id="rd-1", work_item_id="wi-0",
                              plugin_instance_id="pi-tg")),
    ])
    run = Run(instances)
    before = census(instances, s)
    blocked = run("integrations", "delete", "tg-main", "--yes")
    assert blocked.exit_code == 1
    assert blocked.stderr.endswith("work_items.plugin_instance_id (3 rows) (--detach-work-items keeps the "
                                   "work items, without it)\n")
    assert census(instances, s) == before
    dry = run("integrations", "delete", "tg-main", "--detach-work-items", "--dry-run", "-o", "json")
    assert dry.exit_code == 0, dry.stderr
    preview = json.loads(dry.stdout)
    assert preview["integration"]["id"] == "pi-tg"
    assert preview["deletes"] == {"agent_plugin_instances": 2, "effect_outbox": 1, "routines": 1,
                                  "plugin_instances": 1}
    assert preview["nulls"] == {"queue_lanes.plugin_instance_id": 1, "run_dispatches.plugin_instance_id": 1,
                                "work_items.plugin_instance_id": 3}
    done = run("integrations", "delete", "tg-main", "--detach-work-items", "--yes", "-o", "json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout) == preview
    changed = diff(before, census(instances, s))
    assert (changed["deletes"], changed["nulls"], changed["other"]) == (preview["deletes"], preview["nulls"], {})
    assert done.stderr == ("deleted telegram plugin instance 'tg-main' (pi-tg) and 4 rows in 3 other tables, "
                           "5 references set to NULL\n")
