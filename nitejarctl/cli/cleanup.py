"""`nitejarctl cleanup`: nitejar's POST /api/jobs/cleanup, as one command for cron."""

from __future__ import annotations

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import DURATION, NitejarCommand, dry_run_option
from nitejarctl.errors import NitejarError, PartialFailure

KEYS = ("compactedSessions", "closedStale", "deleted", "errors")


@click.command(cls=NitejarCommand)
@click.option("--idle", type=DURATION, default="30m", show_default=True, metavar="DURATION",
              help="Compact conversations whose newest message is older than this.")
@click.option("--stale", type=DURATION, default="1h", show_default=True, metavar="DURATION",
              help="Close active sprite sessions last active longer ago than this.")
@click.option("--purge-older-than", type=DURATION, default="24h", show_default=True, metavar="DURATION",
              help="Delete closed and error sprite sessions last active longer ago than this.")
@dry_run_option
@pass_settings
def cleanup(settings, idle, stale, purge_older_than, dry_run):
    """Compact idle conversations, close stale and purge old sprite sessions.

    What nitejar's POST /api/jobs/cleanup does, in order: compact the idle
    conversations (closing their sprite sessions; see 'compaction run'),
    close the sprite sessions that stayed active past --stale, delete the
    closed and error ones older than --purge-older-than. Asks nothing: it is
    meant for cron (e.g. every 10 minutes). A step that fails is listed under
    errors, the next steps still run, and the exit code is 4.

    Prints nitejar's response keys: compactedSessions, closedStale, deleted,
    errors (-o json: one JSON object). A dry run changes nothing and reports
    what would change; its closedStale also counts stale sessions of
    conversations that compaction would close first.

    \b
    Examples:
      nitejarctl cleanup
      nitejarctl cleanup --idle 1h --stale 2h --purge-older-than 7d -o json
      nitejarctl -d /srv/nitejar/data/nitejar.db cleanup -q -o json >> /var/log/nitejar-cleanup.log
    """
    import sqlite3

    import peewee

    from nitejarctl.db import now, require_table
    from nitejarctl.repositories import sprite_sessions

    failures = (NitejarError, peewee.PeeweeException, sqlite3.Error)
    db = settings.database()
    # Every step works on sprite sessions: without the table nothing can be done
    # (a schema problem, exit 1), which is not a partial failure.
    require_table(db, "sprite_sessions")
    t = now()
    result = {"compactedSessions": 0, "closedStale": 0, "deleted": 0, "errors": []}
    errors = result["errors"]

    try:
        _compact(settings, db, cutoff=t - idle, dry_run=dry_run, result=result)
    except failures as exc:
        errors.append(f"Compaction failed: {_message(exc)}")
    try:
        require_table(db, "sprite_sessions")
        result["closedStale"] = sprite_sessions.close_stale(db, stale, t, dry_run=dry_run)
        result["deleted"] = sprite_sessions.purge(db, purge_older_than, t, dry_run=dry_run)
    except failures as exc:
        errors.append(f"Sprite cleanup failed: {_message(exc)}")

    lines = [f"{key}: {result[key]}" for key in KEYS[:3]]
    lines.append(f"errors: {len(errors)}")
    lines += [f"  {error}" for error in errors]
    settings.emit_report(result, lines=lines)
    n, closed, deleted = result["compactedSessions"], result["closedStale"], result["deleted"]
    if dry_run:
        settings.info(f"would compact {_plural(n, 'conversation')}, close {_plural(closed, 'stale sprite session')} "
                      f"and delete {_plural(deleted, 'old sprite session')} (dry run)")
    else:
        settings.info(f"compacted {_plural(n, 'conversation')}, closed {_plural(closed, 'stale sprite session')}, "
                      f"deleted {_plural(deleted, 'old sprite session')}")
    if errors:
        raise PartialFailure(f"cleanup finished with {len(errors)} error(s) (listed in its output)")


def _compact(settings, db, *, cutoff: int, dry_run: bool, result: dict) -> None:
    """Compaction with the default summary; what it compacted counts even when a
    later batch fails (each batch commits on its own)."""
    from nitejarctl.cli.compaction import CONVERSATION_TABLES, Progress
    from nitejarctl.db import require_table
    from nitejarctl.repositories.compaction import CompactionRun

    for table in (*CONVERSATION_TABLES, "sprite_sessions"):
        require_table(db, table)
    run = CompactionRun(db, cutoff=cutoff, dry_run=dry_run)
    try:
        with run, Progress(settings, run.total) as progress:
            for outcome in progress.track(run.outcomes()):
                if outcome.status == "failed":
                    result["errors"].append(f"Failed to compact session {outcome.session_key}: "
                                            f"{outcome.reason}")
    finally:
        result["compactedSessions"] = run.counts["compacted"]


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(text.split())
