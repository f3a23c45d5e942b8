"""`nitejarctl messages`: retention of conversation messages."""

from __future__ import annotations

import click

from nitejarctl.cli.changes import Words, run_bulk
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import DURATION, confirm, dry_run_option, group, require_confirmation, yes_option

WORDS = Words("delete", "deleted", "message", label="pruning")


@group()
def messages():
    """Conversation messages: prune the old ones that summaries cover.

    \b
    Examples:
      nitejarctl messages prune --older-than 30d --dry-run
      nitejarctl messages prune --older-than 30d --yes -o ids | wc -l
    """


def message_columns():
    from nitejarctl.output import Column

    return [Column("id"), Column("job_id"), Column("role"), Column("created_at", "time")]


@messages.command(name="prune", counts=True)
@click.option("--older-than", type=DURATION, metavar="DURATION", required=True,
              help="Delete messages created more than this long ago (e.g. 30d).")
@click.option("--include-uncompacted", is_flag=True,
              help="Also delete old messages no summary covers (lost for good; asks on a terminal).")
@dry_run_option
@yes_option
@pass_settings
def messages_prune(settings, older_than, include_uncompacted, dry_run, yes):
    """Delete messages older than DURATION that a session summary covers.

    A message is covered when compaction has summarised it: it belongs to a
    COMPLETED job, and a summary of the same session key and agent ends at
    or after it (end_time >= its created_at). Messages no summary covers —
    of conversations never compacted, of FAILED or CANCELLED jobs — are kept;
    --include-uncompacted deletes those too, after a question of its own on a
    terminal. Messages of PENDING or RUNNING jobs are never deleted.

    Batched like every bulk change, safe beside a running nitejar. Asks on a
    terminal; elsewhere --yes is required. The deleted messages are printed
    (id, job_id, role, created_at).

    \b
    Examples:
      nitejarctl compaction run && nitejarctl messages prune --older-than 30d --yes
      nitejarctl messages prune --older-than 90d --dry-run -o json
      nitejarctl messages prune --older-than 1y --include-uncompacted
    """
    from nitejarctl.db import now
    from nitejarctl.durations import format_duration
    from nitejarctl.maintenance import retention
    from nitejarctl.output.words import plural

    require_confirmation(settings, yes, dry_run)
    db, cutoff = settings.database(), now() - older_than
    age = format_duration(older_than)
    if not (dry_run or yes):
        covered = retention.count_prunable(db, cutoff)
        if include_uncompacted:
            every = retention.count_prunable(db, cutoff, include_uncompacted=True)
            if every > covered:
                confirm(settings, f"Delete {plural(every, 'message')} older than {age}, {every - covered:,} of them "
                                  "in no summary (never compacted, or of failed or cancelled jobs: lost for good)?",
                        yes)
            elif every:
                confirm(settings, f"Delete {plural(every, 'message')} older than {age} covered by a summary?", yes)
        elif covered:
            confirm(settings, f"Delete {plural(covered, 'message')} older than {age} covered by a summary?", yes)
    run_bulk(settings, lambda bulk: retention.prune_messages(db, cutoff, bulk,
                                                             include_uncompacted=include_uncompacted),
             fields=retention.MESSAGE_COLUMNS, columns=message_columns(), words=WORDS, dry_run=dry_run,
             remaining=lambda: retention.count_prunable(db, cutoff, include_uncompacted=include_uncompacted))
    if not include_uncompacted and not settings.quiet:
        kept = retention.count_prunable(db, cutoff, include_uncompacted=True)
        if dry_run:
            kept -= retention.count_prunable(db, cutoff)
        if kept:
            settings.info(f"kept {plural(kept, 'message')} older than {age} that no summary covers "
                          "('compaction run' first, or --include-uncompacted)")
