"""`nitejarctl jobs`: inspect agent jobs and their messages."""

from __future__ import annotations

import click

from nitejarctl.cli import completers
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.ids import prefixed
from nitejarctl.cli.options import agent_option, group, listing, listing_options

STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")


def _status(ctx, param, value):
    # Case-insensitive, but the statuses are named as stored (Click's own
    # case-insensitive Choice would name them in lower case).
    if value is None or value.upper() in STATUSES:
        return None if value is None else value.upper()
    raise click.BadParameter(f"{value!r} is not one of {', '.join(STATUSES)}.", ctx, param)


def _columns():
    from nitejarctl.output import Column

    return [Column("id"), Column("work_item_id"), Column("agent_id"), Column("agent_name"),
            Column("status"), Column("error_text"), Column("started_at", "time"),
            Column("completed_at", "time"), Column("created_at", "time"),
            Column("updated_at", "time")]


@group()
def jobs():
    """Inspect jobs (an agent's run on a work item) and their messages.

    \b
    Examples:
      nitejarctl jobs list --agent support-bot --status FAILED
      nitejarctl jobs show 3f2c…
    """


@jobs.command(name="list", counts=True)
@agent_option("Only this agent's jobs.")
@click.option("--status", callback=_status, metavar="[" + "|".join(STATUSES) + "]",
              help="Only jobs with this status (any case).")
@click.option("--work-item", metavar="ID", shell_complete=completers.work_item_ids,
              callback=prefixed("WorkItem", "work items"), help="Only the jobs of this work item.")
@listing_options
@pass_settings
def jobs_list(settings, agent_id, status, work_item, limit):
    """List jobs, oldest first.

    \b
    Examples:
      nitejarctl jobs list --status RUNNING
      nitejarctl jobs list --agent support-bot --status FAILED -o json
      nitejarctl jobs list --work-item 3f2c… -o ids
    """
    from nitejarctl.errors import NotFound
    from nitejarctl.repositories import jobs as repo
    from nitejarctl.repositories import work_items

    db = settings.database()
    if work_item is not None and not work_items.exists(db, work_item):
        raise NotFound(f"no work item with id {work_item!r}")
    listing(settings, repo.list_query(db, agent_id=agent_id, status=status, work_item_id=work_item),
            _columns(), limit=limit, noun="jobs",
            table=("agent_name", "status", "created_at", "started_at", "completed_at", "error_text", "id"))


@jobs.command(name="show")
@click.argument("job_id", metavar="ID", shell_complete=completers.job_ids,
              callback=prefixed("Job", "jobs"))
@pass_settings
def jobs_show(settings, job_id):
    """Show one job and its messages (the text of each; -o json adds the
    parsed content).

    \b
    Examples:
      nitejarctl jobs show 3f2c…
      nitejarctl jobs show 3f2c… -o json | jq -r '.messages[].text'
    """
    from nitejarctl.jsonarg import parse_stored
    from nitejarctl.output import Column
    from nitejarctl.repositories import jobs as repo
    from nitejarctl.repositories.messages import message_text

    db = settings.database()
    row = repo.get(db, job_id)
    columns = [Column("id"), Column("role"), Column("created_at", "time"), Column("text")]
    table = settings.fmt == "table"
    if not table:
        columns.append(Column("content", "json"))

    def messages():
        for m in db.stream(repo.messages_query(db, row["id"])):
            m["text"] = message_text(m["content"])
            if not table:
                m["content"] = parse_stored(m["content"])
            yield m

    settings.emit_one(row, sections={"messages": (messages(), columns)})
