"""`nitejarctl work-items`: inspect incoming work items and their jobs."""

from __future__ import annotations

import click

from nitejarctl.cli import completers
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.ids import prefixed
from nitejarctl.cli.options import DURATION, dry_run_option, group, listing, listing_options, yes_option
from nitejarctl.errors import UsageProblem


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
      nitejarctl work-items prune --older-than 90d --status DONE --dry-run
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


@work_items.command(name="prune")
@click.option("--older-than", type=DURATION, metavar="DURATION", required=True,
              help="Only work items last updated more than this long ago (e.g. 90d).")
@click.option("--status", "statuses", multiple=True, required=True, metavar="STATUS",
              help="A finished status to prune (DONE, …; repeatable, or comma-separated).")
@dry_run_option
@yes_option
@pass_settings
def work_items_prune(settings, older_than, statuses, dry_run, yes):
    """Delete finished work items, with their jobs, messages and idempotency keys.

    A work item goes when its status is one of --status, it was last
    updated more than DURATION ago, and every one of its jobs is COMPLETED,
    FAILED or CANCELLED (a PENDING, RUNNING or unknown job keeps it). With it
    go its jobs, their messages, its idempotency keys, and whatever else the
    database's own foreign keys tie to them (ON DELETE CASCADE to every
    depth; SET NULL keys set to NULL); a row that would be left referring to
    a deleted one through a key without ON DELETE action blocks the prune.
    Messages go whether or not a summary covers them: compact first
    ('nitejarctl cleanup') to keep what the conversations said.

    The preview (--dry-run, and the question) counts exactly what the prune
    changes, per table and key (-o json: {"older_than", "statuses",
    "deletes": {table: rows}, "nulls": {"table.column": rows}}). Batched like
    every bulk change; asks on a terminal, needs --yes elsewhere.

    \b
    Examples:
      nitejarctl work-items prune --older-than 90d --status DONE --dry-run
      nitejarctl work-items prune --older-than 90d --status DONE,FAILED --yes -o json
    """
    from nitejarctl.cli.changes import CascadeReport, run_cascade
    from nitejarctl.db import now
    from nitejarctl.durations import format_duration
    from nitejarctl.maintenance.cascade import Cascade
    from nitejarctl.maintenance.retention import NEW_WORK_ITEM, finished_work_items
    from nitejarctl.output.words import plural

    wanted = list(dict.fromkeys(s.strip() for value in statuses for s in value.split(",") if s.strip()))
    if not wanted:
        raise UsageProblem("--status: name at least one finished status (e.g. DONE)")
    if NEW_WORK_ITEM in wanted:
        raise UsageProblem(f"--status {NEW_WORK_ITEM}: a {NEW_WORK_ITEM} work item has not been taken up yet, "
                           "it is not finished")
    db = settings.database()
    criteria = f"({', '.join(wanted)}) last updated more than {format_duration(older_than)} ago"

    def question(effect) -> str:
        items = plural(effect.deletes.get("work_items", 0), "work item")
        return f"Delete {items} {criteria}, with their jobs: {report.words(effect, detail=True)}?"

    report = CascadeReport(f"work items {criteria}", extra={"older_than": older_than, "statuses": wanted},
                           question=question)
    cascade = Cascade(db, {"work_items": finished_work_items(db, wanted, now() - older_than)})
    run_cascade(settings, cascade, report, dry_run=dry_run, yes=yes)
