"""`nitejarctl integrations`: list, show, create, update, enable, disable, delete."""

from __future__ import annotations

import click

from nitejarctl.cli import completers
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import (
    config_edit_options,
    dry_run_option,
    group,
    ignore_missing_option,
    listing,
    listing_options,
    yes_option,
)
from nitejarctl.errors import NotFound, UsageProblem


def _columns(db, *extra):
    """The listed columns of whichever table holds the integrations."""
    from nitejarctl.output import Column
    from nitejarctl.repositories import integrations as repo

    kinds = {"enabled": "bool", "created_at": "time", "updated_at": "time"}
    return [Column(name, kinds.get(name, "text")) for name in repo.pair(db).fields()] + list(extra)


def _nonempty(value, what):
    if value is not None and not value.strip():
        raise UsageProblem(f"the {what} must not be empty")


@group()
def integrations():
    """Manage integrations (telegram, github, …) and see which agents use them.

    Wherever an integration is taken, its id or its name (when unique) will do.
    Databases created by nitejar itself keep integrations as plugin instances
    (plugin_instances: the type is plugin_id, the config config_json): every
    command works on them but create (nitejar creates them with their plugin).

    \b
    Examples:
      nitejarctl integrations list --type telegram
      nitejarctl integrations disable telegram-main
    """


@integrations.command(name="list", counts=True)
@click.option("--type", "type_", metavar="TYPE", help="Only integrations of this type.")
@click.option("--enabled/--disabled", default=None, help="Only enabled, or only disabled, ones.")
@listing_options
@pass_settings
def integrations_list(settings, type_, enabled, limit):
    """List integrations, by type and name.

    \b
    Examples:
      nitejarctl integrations list
      nitejarctl integrations list --type github --disabled -o ids
    """
    from nitejarctl.repositories import integrations as repo

    db = settings.database()
    pair = repo.pair(db)
    listing(settings, repo.list_query(db, type=type_, enabled=enabled), _columns(db),
            limit=limit, noun=pair.noun + "s",
            table=("name", pair.type, "enabled", "scope", "created_at", "updated_at", "id"))


@integrations.command(name="show")
@click.argument("integration", shell_complete=completers.integration_ids)
@click.option("--show-secrets", is_flag=True,
              help="Show tokens, secrets, passwords and keys in the config as they are stored.")
@pass_settings
def integrations_show(settings, integration, show_secrets):
    """Show one integration: its config and the agents linked to it.

    Config values under keys naming a token, secret, password, passphrase,
    private key, API key or credential are shown as ***, and encrypted values
    as enc:***, unless --show-secrets. A config written back with those
    placeholders (update --config) keeps the stored values.

    \b
    Examples:
      nitejarctl integrations show telegram-main
      nitejarctl integrations show 3f2c… -o json | jq .config
      nitejarctl integrations show tg -o json | jq .config > tg.json   # edit, then:
      nitejarctl integrations update tg --config @tg.json
    """
    from nitejarctl.jsonarg import parse_stored
    from nitejarctl.output import Column
    from nitejarctl.repositories import integrations as repo
    from nitejarctl.secrets import mask_config

    db = settings.database()
    config = repo.pair(db).config
    row = repo.resolve(db, integration)
    row[config] = parse_stored(row.get(config))
    if not show_secrets:
        row[config] = mask_config(row[config])
    elif settings.stdout_is_terminal():
        settings.warn("secrets are shown as stored: mind who can see this terminal")
    row["work_item_count"] = repo.work_item_count(db, row["id"])
    columns = [Column("id"), Column("name"), Column("status"), Column("linked_at", "time")]
    agents = list(repo.agents_query(db, row["id"]))
    settings.emit_one(row, sections={"agents": (agents, columns)},
                      kinds={config: "json", "enabled": "bool"})


@integrations.command(name="create")
@click.argument("type_", metavar="TYPE")
@click.argument("name")
@click.option("--config", "config_text", metavar="JSON|@FILE",
              help="Config as a JSON object, or @file with one (@- reads stdin).")
@click.option("--scope", default="global", show_default=True, help="Scope.")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@pass_settings
def integrations_create(settings, type_, name, config_text, scope, disabled):
    """Create an integration (a new UUID id). Prints the created row.

    Refused on a database that keeps integrations as nitejar's plugin
    instances: nitejar creates those with their plugin.

    \b
    Examples:
      nitejarctl integrations create telegram telegram-main --config @telegram.json
      nitejarctl integrations create github gh --config '{"appId": 123}' --disabled
    """
    from nitejarctl.jsonarg import parse_object
    from nitejarctl.repositories import integrations as repo

    _nonempty(type_, "integration type")
    _nonempty(name, "integration name")
    _nonempty(scope, "scope")
    config = None if config_text is None else parse_object(config_text, "--config")
    db = settings.database()
    row = repo.create(db, type=type_, name=name, config=config, scope=scope, enabled=not disabled)
    settings.emit([row], _columns(db))
    settings.info(f"created {type_} integration {name!r} ({row['id']})")


@integrations.command(name="update")
@click.argument("integration", shell_complete=completers.integration_ids)
@click.option("--type", "type_", metavar="TYPE", help="New type.")
@click.option("--name", help="New name.")
@click.option("--scope", help="New scope.")
@config_edit_options
@pass_settings
def integrations_update(settings, integration, type_, name, scope, config_text, sets, unsets):
    """Change an integration's type (a plugin instance's plugin_id), name,
    scope or config (config_json).

    --config replaces the config first, then --set and --unset edit it.

    \b
    Examples:
      nitejarctl integrations update telegram-main --set webhook.secret=s3cr3t
      nitejarctl integrations update gh --unset webhook --scope team
      nitejarctl integrations show gh -o json | jq '.config' | \
        nitejarctl integrations update gh --config @-      # *** keeps the stored secrets
    """
    from nitejarctl import jsonarg
    from nitejarctl.repositories import integrations as repo

    for value, what in ((type_, "integration type"), (name, "integration name"), (scope, "scope")):
        _nonempty(value, what)
    config = jsonarg.parse_config_edits(config_text, sets, unsets)
    if all(v is None for v in (type_, name, scope, config)) and not sets and not unsets:
        raise UsageProblem("nothing to update: give --type, --name, --scope, --config, --set "
                           "or --unset")
    db = settings.database()
    row, missing = repo.update(db, integration, type=type_, name=name,
                               scope=scope, config=config, sets=sets, unsets=unsets)
    noun = repo.pair(db).noun
    for key in missing:
        settings.warn(f"{key} was not set in the config of {noun} {row['name']!r}")
    settings.emit([row], _columns(db))
    settings.info(f"updated {noun} {row['name']!r} ({row['id']})")


def _switch(settings, refs, enabled, ignore_missing):
    from nitejarctl.output.words import plural
    from nitejarctl.repositories import integrations as repo

    db = settings.database()
    rows, changed, missing = repo.set_enabled(db, refs, enabled, ignore_missing=ignore_missing)
    noun = repo.pair(db).noun
    for ref in missing:
        settings.warn(f"no {noun} with id or name {ref!r}")
    verb = "enabled" if enabled else "disabled"
    settings.emit(rows, _columns(db))
    unchanged = len(rows) - changed
    settings.info(f"{verb} {plural(changed, noun)}"
                  + (f" ({unchanged} already {verb})" if unchanged else ""))


@integrations.command(name="enable")
@click.argument("refs", metavar="INTEGRATION...", nargs=-1, required=True,
                shell_complete=completers.integration_ids)
@ignore_missing_option
@pass_settings
def integrations_enable(settings, refs, ignore_missing):
    """Enable integrations (already enabled ones stay as they are).

    \b
    Examples:
      nitejarctl integrations enable telegram-main
      nitejarctl integrations list --type github --disabled -o ids | xargs -r nitejarctl integrations enable
    """
    _switch(settings, refs, True, ignore_missing)


@integrations.command(name="disable")
@click.argument("refs", metavar="INTEGRATION...", nargs=-1, required=True,
                shell_complete=completers.integration_ids)
@ignore_missing_option
@pass_settings
def integrations_disable(settings, refs, ignore_missing):
    """Disable integrations (already disabled ones stay as they are).

    \b
    Examples:
      nitejarctl integrations disable telegram-main
    """
    _switch(settings, refs, False, ignore_missing)


@integrations.command(name="delete")
@click.argument("integration", shell_complete=completers.integration_ids)
@click.option("--detach-work-items", is_flag=True,
              help="Keep the work items that refer to it, without their integration.")
@dry_run_option
@yes_option
@ignore_missing_option
@pass_settings
def integrations_delete(settings, integration, detach_work_items, dry_run, yes, ignore_missing):
    """Delete an integration, its agent links and every row its database's
    foreign keys tie to it (ON DELETE CASCADE, to every depth; references set
    to NULL where the key says SET NULL).

    Work items that refer to it block the delete, unless --detach-work-items
    (their reference is set to NULL); so does any other row left referring to
    a deleted one through a key without ON DELETE action. The preview
    (--dry-run, the question) counts exactly what the delete changes; -o json
    gives {"integration": …, "deletes": {table: rows}, "nulls":
    {"table.column": rows}}. Asks on a terminal; --yes skips the question.

    \b
    Examples:
      nitejarctl integrations delete old-bot --dry-run
      nitejarctl integrations delete old-bot --detach-work-items --yes
    """
    from nitejarctl.cli.changes import CascadeReport, run_cascade
    from nitejarctl.repositories import integrations as repo

    db = settings.database()
    try:
        found = repo.resolve(db, integration)
    except NotFound as exc:
        if not ignore_missing:
            raise
        settings.warn(exc.message)
        return
    p = repo.pair(db)
    row = repo.get(db, found["id"])
    cascade, work_items = repo.deleting(db, found["id"], detach_work_items=detach_work_items)
    report = CascadeReport(f"{found[p.type]} {p.noun} {found['name']!r} ({found['id']})", "integration", row,
                           table=p.table)
    run_cascade(settings, cascade, report, dry_run=dry_run, yes=yes,
                hints={work_items: "--detach-work-items keeps the work items, without it"})
