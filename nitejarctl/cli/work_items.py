"""`nitejarctl work-items`: inspect incoming work items and their jobs."""

from __future__ import annotations

import click

from nitejarctl.cli import completers
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.ids import prefixed
from nitejarctl.cli.options import group, listing, listing_options


def _columns():
    from nitejarctl.output import Column

    return [Column("id"), Column("session_key"), Column("source"), Column("source_ref"),
            Column("status"), Column("title"), Column("created_at", "time"),
            Column("updated_at", "time")]


def job_columns():
    from nitejarctl.output import Column

    return [Column("id"), Column("agent_id"), Column("agent_name"), Column("status"),
            Column("error_text"), Column("started_at", "time"), Column("completed_at", "time"),
            Column("created_at", "time")]


@group(name="work-items")
def work_items():
    """Inspect work items (incoming requests) and the jobs they started.

    \b
    Examples:
      nitejarctl work-items list --status NEW
      nitejarctl work-items show 3f2c…
    """


@work_items.command(name="list", counts=True)
@click.option("--status", help="Only work items with this status (NEW, …).")
@click.option("--session-key", metavar="KEY", shell_complete=completers.session_keys, help="Only this conversation's work items.")
@click.option("--source", help="Only work items from this source (telegram, github, …).")
@listing_options
@pass_settings
def work_items_list(settings, status, session_key, source, limit):
    """List work items, oldest first.

    \b
    Examples:
      nitejarctl work-items list --session-key tg:chat-42
      nitejarctl work-items list --source github --status NEW -o jsonl
    """
    from nitejarctl.repositories import work_items as repo

    query = repo.list_query(settings.database(), status=status, session_key=session_key, source=source)
    listing(settings, query, _columns(), limit=limit, noun="work items",
            table=("title", "status", "source", "session_key", "created_at", "updated_at", "id"))


@work_items.command(name="show")
@click.argument("work_item_id", metavar="ID", shell_complete=completers.work_item_ids,
              callback=prefixed("WorkItem", "work items"))
@pass_settings
def work_items_show(settings, work_item_id):
    """Show one work item (payload parsed) and its jobs.

    \b
    Examples:
      nitejarctl work-items show 3f2c…
      nitejarctl work-items show 3f2c… -o json | jq .payload
    """
    from nitejarctl.jsonarg import parse_stored
    from nitejarctl.repositories import jobs
    from nitejarctl.repositories import work_items as repo

    db = settings.database()
    row = repo.get(db, work_item_id)
    if "payload" in row:
        row["payload"] = parse_stored(row["payload"])
    job_rows = db.stream(jobs.list_query(db, work_item_id=row["id"]))
    settings.emit_one(row, sections={"jobs": (job_rows, job_columns())},
                      kinds={"payload": "json"})
