"""`nitejarctl integrations`: list, show, create, update, enable, disable, delete."""

from __future__ import annotations

import click

from nitejarctl.cli import completers
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import (
    config_edit_options,
    confirm,
    dry_run_option,
    group,
    ignore_missing_option,
    limit_option,
    listing,
    yes_option,
)
from nitejarctl.errors import NotFound, OperationalProblem, UsageProblem


def _columns(*extra):
    from nitejarctl.output import Column

    return [Column("id"), Column("type"), Column("name"), Column("scope"),
            Column("enabled", "bool"), Column("created_at", "time"), Column("updated_at", "time"),
            *extra]


def _nonempty(value, what):
    if value is not None and not value.strip():
        raise UsageProblem(f"the {what} must not be empty")


@group()
def integrations():
    """Manage integrations (telegram, github, …) and see which agents use them.

    Wherever an integration is taken, its id or its name (when unique) will do.
    Databases created by nitejar itself keep integrations as plugin instances,
    which nitejarctl does not manage.

    \b
    Examples:
      nitejarctl integrations list --type telegram
      nitejarctl integrations disable telegram-main
    """


@integrations.command(name="list", counts=True)
@click.option("--type", "type_", metavar="TYPE", help="Only integrations of this type.")
@click.option("--enabled/--disabled", default=None, help="Only enabled, or only disabled, ones.")
@limit_option
@pass_settings
def integrations_list(settings, type_, enabled, limit):
    """List integrations, by type and name.

    \b
    Examples:
      nitejarctl integrations list
      nitejarctl integrations list --type github --disabled -o ids
    """
    from nitejarctl.repositories import integrations as repo

    listing(settings, repo.list_query(settings.database(), type=type_, enabled=enabled), _columns(),
            limit=limit, noun="integrations")


@integrations.command(name="show")
@click.argument("integration", shell_complete=completers.integration_ids)
@pass_settings
def integrations_show(settings, integration):
    """Show one integration: its config and the agents linked to it.

    \b
    Examples:
      nitejarctl integrations show telegram-main
      nitejarctl integrations show 3f2c… -o json | jq .config
    """
    from nitejarctl.jsonarg import parse_stored
    from nitejarctl.output import Column
    from nitejarctl.repositories import integrations as repo

    db = settings.database()
    row = repo.resolve(db, integration)
    row["config"] = parse_stored(row["config"])
    row["work_item_count"] = repo.work_item_count(db, row["id"])
    columns = [Column("id"), Column("name"), Column("status"), Column("linked_at", "time")]
    agents = list(repo.agents_query(db, row["id"]))
    settings.emit_one(row, sections={"agents": (agents, columns)},
                      kinds={"config": "json", "enabled": "bool"})


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
    row = repo.create(settings.database(), type=type_, name=name, config=config, scope=scope,
                      enabled=not disabled)
    settings.emit([row], _columns())
    settings.info(f"created {type_} integration {name!r} ({row['id']})")


@integrations.command(name="update")
@click.argument("integration", shell_complete=completers.integration_ids)
@click.option("--type", "type_", metavar="TYPE", help="New type.")
@click.option("--name", help="New name.")
@click.option("--scope", help="New scope.")
@config_edit_options
@pass_settings
def integrations_update(settings, integration, type_, name, scope, config_text, sets, unsets):
    """Change an integration's type, name, scope or config.

    --config replaces the config first, then --set and --unset edit it.

    \b
    Examples:
      nitejarctl integrations update telegram-main --set webhook.secret=s3cr3t
      nitejarctl integrations update gh --unset webhook --scope team
    """
    from nitejarctl import jsonarg
    from nitejarctl.repositories import integrations as repo

    for value, what in ((type_, "integration type"), (name, "integration name"), (scope, "scope")):
        _nonempty(value, what)
    config = jsonarg.parse_config_edits(config_text, sets, unsets)
    if all(v is None for v in (type_, name, scope, config)) and not sets and not unsets:
        raise UsageProblem("nothing to update: give --type, --name, --scope, --config, --set "
                           "or --unset")
    row, missing = repo.update(settings.database(), integration, type=type_, name=name,
                               scope=scope, config=config, sets=sets, unsets=unsets)
    for key in missing:
        settings.warn(f"{key} was not set in the config of integration {row['name']!r}")
    settings.emit([row], _columns())
    settings.info(f"updated integration {row['name']!r} ({row['id']})")


def _switch(settings, refs, enabled, ignore_missing):
    from nitejarctl.output.words import plural
    from nitejarctl.repositories import integrations as repo

    rows, changed, missing = repo.set_enabled(settings.database(), refs, enabled,
                                              ignore_missing=ignore_missing)
    for ref in missing:
        settings.warn(f"no integration with id or name {ref!r}")
    verb = "enabled" if enabled else "disabled"
    settings.emit(rows, _columns())
    unchanged = len(rows) - changed
    settings.info(f"{verb} {plural(changed, 'integration')}"
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
    """Delete an integration and its agent links.

    Work items that refer to it block the delete, unless --detach-work-items.
    Asks on a terminal; --yes skips the question.

    \b
    Examples:
      nitejarctl integrations delete old-bot --dry-run
      nitejarctl integrations delete old-bot --detach-work-items --yes
    """
    from nitejarctl.output import Column
    from nitejarctl.repositories import integrations as repo

    db = settings.database()
    try:
        found = repo.resolve(db, integration)
    except NotFound as exc:
        if not ignore_missing:
            raise
        settings.warn(exc.message)
        return
    columns = [Column("id"), Column("type"), Column("name"), Column("links", "int"),
               Column("work_items", "int")]
    from nitejarctl.output.words import plural

    label = f"{found['type']} integration {found['name']!r} ({found['id']})"
    counts = repo.cascade_counts(db, found["id"])

    def what(c):
        text = plural(c["links"], "agent link")
        if c["work_items"]:
            text += f"; {plural(c['work_items'], 'work item')} detached"
        return text

    if counts["work_items"] and not detach_work_items:
        raise OperationalProblem(
            f"{label} is referred to by {plural(counts['work_items'], 'work item')}; pass "
            "--detach-work-items to keep them without it")
    if dry_run:
        settings.emit([{**found, **counts}], columns)
        settings.info(f"would delete {label} and {what(counts)} (dry run: nothing changed)")
        return
    confirm(settings, f"Delete {label} and {what(counts)}?", yes)
    removed = repo.delete(db, found["id"], detach_work_items=detach_work_items)
    settings.emit([{**found, **removed}], columns)
    settings.info(f"deleted {label} and {what(removed)}")
