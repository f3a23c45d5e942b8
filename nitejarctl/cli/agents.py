"""`nitejarctl agents`: list, show, create, update, delete, link and unlink agents."""

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

CONFIG_HELP = "Config as a JSON object, or @file with one (@- reads stdin)."


def _columns(*extra):
    from nitejarctl.output import Column

    return [Column("id"), Column("name"), Column("status"), Column("sprite_id"),
            Column("created_at", "time"), Column("updated_at", "time"), *extra]


def _link_columns():
    from nitejarctl.output import Column

    return [Column("agent_id"), Column("agent_name"), Column("integration_id"),
            Column("integration_name"), Column("created_at", "time")]


def _nonempty(value: str, what: str) -> str:
    if value is None:
        return None
    if not value.strip():
        raise UsageProblem(f"the {what} must not be empty")
    return value


@group()
def agents():
    """List, show, create, update and delete agents.

    Wherever an agent is taken, its id or its unique name will do.

    \b
    Examples:
      nitejarctl agents list
      nitejarctl agents show support-bot -o json
      nitejarctl agents update support-bot --set memorySettings.decayRate=0.2
    """


@agents.command(name="list", counts=True)
@click.option("--status", help="Only agents with this status (idle, busy, …).")
@listing_options
@pass_settings
def agents_list(settings, status, limit):
    """List agents, by name.

    \b
    Examples:
      nitejarctl agents list
      nitejarctl agents list --status idle -o ids
    """
    from nitejarctl.repositories import agents as repo

    listing(settings, repo.list_query(settings.database(), status=status), _columns(), limit=limit,
            noun="agents", table=("name", "status", "created_at", "updated_at", "id"))


@agents.command(name="show")
@click.argument("agent", shell_complete=completers.agents)
@pass_settings
def agents_show(settings, agent):
    """Show one agent: its config, linked integrations and what it has
    (jobs, memories, summaries, active sprite sessions).

    \b
    Examples:
      nitejarctl agents show support-bot
      nitejarctl agents show 3f2c… -o json | jq .config
    """
    from nitejarctl.jsonarg import parse_stored
    from nitejarctl.output import Column
    from nitejarctl.repositories import agents as repo

    db = settings.database()
    row = repo.get(db, repo.resolve_id(db, agent))
    row["config"] = parse_stored(row.get("config"))
    row.update(repo.counts(db, row["id"]))
    sections = {}
    linked = repo.links_query(db, row["id"])
    if linked is not None:
        name, query = linked
        kind = "type" if name == "integrations" else "plugin_id"
        columns = [Column("id"), Column(kind), Column("name"), Column("scope"),
                   Column("enabled", "bool"), Column("linked_at", "time")]
        sections[name] = (list(db.stream(query)), columns)
    settings.emit_one(row, sections=sections, kinds={"config": "json"})


@agents.command(name="create")
@click.argument("name")
@click.option("--config", "config_text", metavar="JSON|@FILE", help=CONFIG_HELP)
@click.option("--status", default="idle", show_default=True, help="Initial status.")
@click.option("--sprite-id", help="The agent's sprite id.")
@pass_settings
def agents_create(settings, name, config_text, status, sprite_id):
    """Create an agent (a new UUID id). Prints the created row.

    \b
    Examples:
      nitejarctl agents create support-bot
      nitejarctl agents create support-bot --config @agent.json --sprite-id sp-1
      nitejarctl agents create triage --config '{"memorySettings": {"decayRate": 0.2}}'
    """
    from nitejarctl.jsonarg import parse_object
    from nitejarctl.repositories import agents as repo

    _nonempty(name, "agent name")
    _nonempty(status, "status")
    config = None if config_text is None else parse_object(config_text, "--config")
    row = repo.create(settings.database(), name=name, config=config, status=status,
                      sprite_id=sprite_id)
    settings.emit([row], _columns())
    settings.info(f"created agent {name!r} ({row['id']})")


@agents.command(name="update")
@click.argument("agent", shell_complete=completers.agents)
@click.option("--name", help="New unique name.")
@click.option("--status", help="New status.")
@click.option("--sprite-id", help="New sprite id ('' clears it).")
@config_edit_options
@pass_settings
def agents_update(settings, agent, name, status, sprite_id, config_text, sets, unsets):
    """Change an agent's name, status, sprite id or config.

    --config replaces the config first, then --set and --unset edit it.

    \b
    Examples:
      nitejarctl agents update support-bot --status idle
      nitejarctl agents update support-bot --set memorySettings.decayRate=0.2
      nitejarctl agents update support-bot --set sessionSettings.compaction.enabled=false
      nitejarctl agents update support-bot --unset memorySettings --name helpdesk
    """
    from nitejarctl import jsonarg
    from nitejarctl.repositories import agents as repo

    _nonempty(name, "agent name")
    _nonempty(status, "status")
    config = jsonarg.parse_config_edits(config_text, sets, unsets)
    if name is None and status is None and sprite_id is None and config is None \
            and not sets and not unsets:
        raise UsageProblem("nothing to update: give --name, --status, --sprite-id, --config, "
                           "--set or --unset")
    changes = {}
    if sprite_id is not None:
        changes["sprite_id"] = sprite_id or None
    row, missing = repo.update(settings.database(), agent, name=name, status=status,
                               config=config, sets=sets, unsets=unsets, **changes)
    for key in missing:
        settings.warn(f"{key} was not set in the config of agent {row['name']!r}")
    settings.emit([row], _columns())
    settings.info(f"updated agent {row['name']!r} ({row['id']})")


@agents.command(name="delete")
@click.argument("agent", shell_complete=completers.agents)
@dry_run_option
@yes_option
@ignore_missing_option
@pass_settings
def agents_delete(settings, agent, dry_run, yes, ignore_missing):
    """Delete an agent and every row its database's foreign keys tie to it:
    its jobs and their messages, memories, summaries, links, and whatever else
    refers to it (ON DELETE CASCADE, to every depth), references to those
    rows set to NULL where the key says SET NULL; its active sprite sessions
    are closed.

    The preview (--dry-run, and the question) counts exactly what the delete
    changes, per table and key; -o json gives {"agent": …, "deletes": {table:
    rows}, "nulls": {"table.column": rows}, "closes": {"sprite_sessions":
    rows}}. A row that would be left referring to a deleted one through a key
    without ON DELETE action blocks the delete (exit 1). Large agents are
    deleted in short batches. Asks on a terminal; --yes skips the question.

    \b
    Examples:
      nitejarctl agents delete old-bot --dry-run -o json
      nitejarctl agents delete old-bot --yes
    """
    from nitejarctl.cli.changes import CascadeReport, Words, run_cascade
    from nitejarctl.db import now
    from nitejarctl.maintenance.cascade import Cascade
    from nitejarctl.repositories import agents as repo
    from nitejarctl.repositories import sprite_sessions

    db = settings.database()
    try:
        found = repo.resolve(db, agent)
    except NotFound as exc:
        if not ignore_missing:
            raise
        settings.warn(exc.message)
        return
    agent_id = found["id"]
    row = repo.get(db, agent_id, repo.LIST_FIELDS)
    closing = sprite_sessions.closing_of_agent(db, agent_id, now())
    also = {} if closing is None else {"sprite_sessions": closing}
    report = CascadeReport(f"agent {found['name']!r} ({agent_id})", "agent", row, table="agents",
                           also={"closes": ("sprite_sessions", Words("close", "closed", "sprite session"))})
    cascade = Cascade(db, {"agents": lambda t: t.c.id == agent_id})
    run_cascade(settings, cascade, report, also=also, dry_run=dry_run, yes=yes)


@agents.command(name="link")
@click.argument("agent", shell_complete=completers.agents)
@click.argument("integration", shell_complete=completers.integration_ids)
@pass_settings
def agents_link(settings, agent, integration):
    """Link an agent to an integration (id or unique name of each).

    \b
    Examples:
      nitejarctl agents link support-bot telegram-main
    """
    from nitejarctl.repositories import agents as repo

    row, created = repo.link(settings.database(), agent, integration)
    settings.emit([row], _link_columns(), id_field="agent_id")
    what = f"agent {row['agent_name']!r} to integration {row['integration_name']!r}"
    settings.info(f"linked {what}" if created else f"already linked: {what}")


@agents.command(name="unlink")
@click.argument("agent", shell_complete=completers.agents)
@click.argument("integration", shell_complete=completers.integration_ids)
@pass_settings
def agents_unlink(settings, agent, integration):
    """Remove the link between an agent and an integration.

    \b
    Examples:
      nitejarctl agents unlink support-bot telegram-main
    """
    from nitejarctl.repositories import agents as repo

    row, removed = repo.unlink(settings.database(), agent, integration)
    what = f"agent {row['agent_name']!r} from integration {row['integration_name']!r}"
    if removed:
        settings.emit([row], _link_columns(), id_field="agent_id")
        settings.info(f"unlinked {what}")
    else:
        settings.info(f"not linked, nothing to do: {what}")
