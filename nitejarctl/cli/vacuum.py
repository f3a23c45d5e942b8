"""`nitejarctl vacuum`: give back the space deleted rows left behind."""

from __future__ import annotations

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import NitejarCommand, confirm, require_confirmation, yes_option
from nitejarctl.errors import UsageProblem


@click.command(cls=NitejarCommand)
@click.option("--into", metavar="PATH",
              help="SQLite: write a compact copy to PATH (VACUUM INTO, no write lock) instead.")
@click.option("--force", is_flag=True, help="With --into: replace PATH when it is there.")
@yes_option
@pass_settings
def vacuum(settings, into, force, yes):
    """Reclaim the free space in the database, and say how much.

    SQLite: reports the reclaimable space first (free pages × page size),
    then runs VACUUM, which rewrites the file without it — holding the write
    lock for its whole run, so nitejar's writes wait meanwhile and fail after
    their busy timeout (5 s): stop nitejar, or pick a quiet moment. It asks
    on a terminal and needs --yes elsewhere. It needs free disk space about
    twice the database's size. Then the WAL is folded into the file, which
    shrinks. --into PATH writes a compact, checked copy instead (VACUUM
    INTO, from a read snapshot: no write lock in WAL mode), created new as
    'nitejarctl backup' creates its files.

    PostgreSQL: VACUUM (ANALYZE) table by table, with a progress bar; writes
    go on meanwhile. It makes dead rows' space reusable and refreshes the
    planner's statistics; the files seldom shrink.

    Reports the bytes before and after (-o json: the whole report).

    \b
    Examples:
      nitejarctl vacuum
      nitejarctl vacuum --yes -q -o json
      nitejarctl vacuum --into /backups/nitejar-compact.db
    """
    import os
    import shutil

    from nitejarctl.maintenance.vacuum import reclaimable_share, total_bytes
    from nitejarctl.maintenance.vacuum import vacuum as run_vacuum
    from nitejarctl.output.words import size

    db = settings.database()
    if into is not None and not db.backups().can_compact:
        raise UsageProblem("--into is for SQLite databases (for a copy of a PostgreSQL database: "
                           "nitejarctl backup PATH)")
    if into is None and db.vacuum_locks_writers:
        require_confirmation(settings, yes, action="vacuum")
    display = settings.target.display
    before = db.storage()
    share = reclaimable_share(before)
    if share is not None:
        wal = f", WAL {size(before['wal_bytes'])}" if before.get("wal_bytes") else ""
        settings.info(f"{display}: {size(before['bytes'])}{wal}; {size(before['reclaimable_bytes'])} "
                      f"({share:.0%}) is free pages that VACUUM reclaims")
    else:
        settings.info(f"{display}: {size(before['bytes'])}")
    if into is not None:
        from nitejarctl.cli.backup import copying
        from nitejarctl.maintenance.backup import backup

        with copying(settings, "VACUUM INTO") as step:
            copy = backup(db, into, force=force, compact=True, progress=step,
                          force_hint="use --force to replace it")
        report = {"database": display, "into": into, "before": before, "bytes": copy["bytes"],
                  "reclaimed_bytes": total_bytes(before) - copy["bytes"], "seconds": copy["seconds"],
                  "integrity": copy["integrity"], "rows": copy["rows"]}
        settings.info(f"wrote a compact copy to {into}: {size(copy['bytes'])} "
                      f"({size(report['reclaimed_bytes'])} less), integrity {copy['integrity']} "
                      f"({copy['seconds']:.1f}s)")
    else:
        if db.vacuum_locks_writers:
            path = db.file_path()
            if path is not None and shutil.disk_usage(os.path.dirname(path)).free < 2 * before["bytes"]:
                settings.warn(f"less free disk space than twice the database's size beside {path}: "
                              "VACUUM may fail for want of it (and then change nothing)")
            confirm(settings, "VACUUM holds the database's write lock for its whole run: nitejar's writes "
                              "wait meanwhile and fail after their busy timeout. Vacuum now?", yes,
                    declined="nothing vacuumed", action="vacuum")
            settings.info("vacuuming: the write lock is held until it ends")
        with settings.turn(db), settings.progress("vacuuming", lambda: len(db.vacuum_steps())) as bar:
            result = run_vacuum(db, step=lambda done, _: bar.update(done))
        report = {"database": display, **result}
        after = result["after"]
        settings.info(f"vacuumed {display} in {result['seconds']:.1f}s: {size(total_bytes(before))} before, "
                      f"{size(total_bytes(after))} after ({size(result['reclaimed_bytes'])} reclaimed)")
        if not result["checkpointed"]:
            settings.info("a reader kept part of the WAL: the file shrinks at the next checkpoint")
    if settings.fmt in ("json", "jsonl"):
        settings.emit_report(report)
