"""`nitejarctl cleanup`: nitejar's POST /api/jobs/cleanup, as one command for cron."""

from __future__ import annotations

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import DURATION, NitejarCommand, dry_run_option
from nitejarctl.errors import PartialFailure


@click.command(cls=NitejarCommand)
@click.option("--idle", type=DURATION, default="30m", show_default=True, metavar="DURATION",
              help="Compact conversations whose newest message is older than this.")
@click.option("--stale", type=DURATION, default="1h", show_default=True, metavar="DURATION",
              help="Close active sprite sessions last active longer ago than this.")
@click.option("--purge-older-than", type=DURATION, default="24h", show_default=True, metavar="DURATION",
              help="Delete closed and error sprite sessions last active longer ago than this.")
@click.option("--retain", type=DURATION, metavar="DURATION",
              help="Then delete messages older than this that summaries cover (see 'messages prune').")
@dry_run_option
@pass_settings
def cleanup(settings, idle, stale, purge_older_than, retain, dry_run):
    """Compact idle conversations, close stale and purge old sprite sessions.

    What nitejar's POST /api/jobs/cleanup does, in order: compact the idle
    conversations (closing their sprite sessions; see 'compaction run'),
    close the sprite sessions that stayed active past --stale, delete the
    closed and error ones older than --purge-older-than. Asks nothing: it is
    meant for cron (e.g. every 10 minutes). A step that fails is listed under
    errors, the next steps still run, and the exit code is 4.

    With --retain D, once compaction has run, the messages older than D that
    a summary covers are deleted as 'messages prune --older-than D' does
    (never what no summary covers), reported as prunedMessages.

    Prints nitejar's response keys: compactedSessions, closedStale, deleted,
    errors (-o json: one JSON object). A dry run changes nothing and reports
    what would change; its closedStale also counts stale sessions of
    conversations that compaction would close first, and its prunedMessages
    only the messages summaries cover already.

    \b
    Examples:
      nitejarctl cleanup
      nitejarctl cleanup --idle 1h --stale 2h --purge-older-than 7d -o json
      nitejarctl cleanup --retain 30d -q
      nitejarctl -d /srv/nitejar/data/nitejar.db cleanup -q -o json >> /var/log/nitejar-cleanup.log
    """
    from nitejarctl.db import now
    from nitejarctl.maintenance.cleanup import KEYS, RETENTION_KEY
    from nitejarctl.maintenance.cleanup import cleanup as run_cleanup
    from nitejarctl.output.words import plural

    db = settings.database()
    # Every step works on sprite sessions: without the table nothing can be done
    # (a schema problem, exit 1), which is not a partial failure.
    db.require_table("sprite_sessions")
    with settings.progress("cleaning up") as bar:
        result = run_cleanup(db, idle=idle, stale=stale, purge_older_than=purge_older_than, now=now(),
                             bulk=settings.bulk(dry_run=dry_run), compacted=bar.advance, retain=retain)
    errors = result["errors"]
    lines = [f"{key}: {result[key]}" for key in (*KEYS[:3], RETENTION_KEY) if key in result]
    lines.append(f"errors: {len(errors)}")
    lines += [f"  {error}" for error in errors]
    settings.emit_report(result, lines=lines)
    n, closed, deleted = result["compactedSessions"], result["closedStale"], result["deleted"]
    pruned = plural(result[RETENTION_KEY], "old message") if RETENTION_KEY in result else None
    if dry_run:
        tail = f", delete {plural(deleted, 'old sprite session')} and prune {pruned}" if pruned else \
            f" and delete {plural(deleted, 'old sprite session')}"
        settings.info(f"would compact {plural(n, 'conversation')}, close {plural(closed, 'stale sprite session')}"
                      f"{tail} (dry run)")
    else:
        settings.info(f"compacted {plural(n, 'conversation')}, closed {plural(closed, 'stale sprite session')}, "
                      f"deleted {plural(deleted, 'old sprite session')}" + (f", pruned {pruned}" if pruned else ""))
    if errors:
        raise PartialFailure(f"cleanup finished with {len(errors)} error(s) (listed in its output)")
