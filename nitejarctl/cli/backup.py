"""`nitejarctl backup DEST` and `nitejarctl restore SRC`: the whole database,
copied while nitejar runs, checked, and put back."""

from __future__ import annotations

import contextlib

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import NitejarCommand, confirm, dry_run_option, require_confirmation, yes_option
from nitejarctl.errors import DatabaseMissing


@click.command(cls=NitejarCommand)
@click.argument("dest", metavar="DEST")
@click.option("--force", is_flag=True,
              help="Replace DEST when it is there (once the new backup is complete and checked).")
@pass_settings
def backup(settings, dest, force):
    """Write a consistent, checked backup of the database to DEST.

    SQLite: an online copy while nitejar keeps writing — SQLite's backup
    API, a step at a time, from one read snapshot (WAL mode), so nitejar's
    writers never wait for it — then PRAGMA integrity_check on the copy.
    The copy is one self-contained file (no -wal beside it), created new
    with the database file's read and write bits and owner (0600 from a
    private database), never through a symbolic link.

    PostgreSQL: pg_dump -Fc (its custom format, for 'nitejarctl restore' or
    pg_restore), from the snapshot the rows are counted in; the archive is
    read back whole. Needs pg_dump on PATH, of the server's version or later;
    the password reaches it through its environment, never its command line.

    DEST appears only once the backup is complete and checked: a failed or
    interrupted backup leaves nothing there. An existing DEST is refused
    unless --force. A progress bar on a terminal; -o json reports the path,
    bytes, seconds and rows per table.

    \b
    Examples:
      nitejarctl backup /backups/nitejar-$(date +%F).db
      nitejarctl backup /backups/nightly.db --force -q -o json
      nitejarctl -d 'postgresql:///?service=prod' backup /backups/nitejar.dump
    """
    from nitejarctl.maintenance.backup import backup as write_backup
    from nitejarctl.output.words import plural, size

    db = settings.database()
    with copying(settings, "backing up") as step:
        report = write_backup(db, dest, force=force, progress=step, batching=settings.batching,
                              force_hint="use --force to replace it")
    report = {"database": settings.target.display, **report}
    rows = report["rows"]
    settings.info(f"backed up {settings.target.display} to {dest}: {size(report['bytes'])}, "
                  f"{plural(sum(n or 0 for n in rows.values()), 'row')} in {plural(len(rows), 'table')}, "
                  f"integrity {report['integrity']} ({report['seconds']:.1f}s)")
    if settings.fmt in ("json", "jsonl"):
        settings.emit_report(report)


@click.command(cls=NitejarCommand)
@click.argument("src", metavar="SRC")
@click.option("--safety-backup", "safety", metavar="PATH",
              help="Where the current database is backed up first [default: DATABASE.YYYYMMDD-HHMMSS.bak "
                   "beside a SQLite file, DBNAME.YYYYMMDD-HHMMSS.dump here for PostgreSQL].")
@dry_run_option
@yes_option
@pass_settings
def restore(settings, src, safety, dry_run, yes):
    """Replace the whole database with the backup SRC.

    SRC is checked first: a SQLite file must pass PRAGMA integrity_check, a
    pg_dump archive must read back whole, and either must be a nitejar
    database (nitejar's migration table, or nitejarctl's). Then the current
    database is backed up (--safety-backup), and replaced:

    SQLite: through SQLite's backup API on a connection to the live file, in
    one write transaction (a restore stopped half-way leaves the database as
    it was); its -wal and -shm stay SQLite's to handle, never a file copied
    over a live database. PostgreSQL: pg_restore --clean --if-exists in one
    transaction (needs pg_restore on PATH).

    Stop nitejar first: the restore holds SQLite's write lock for its whole
    run (nitejar's writes would fail after their busy timeout), and nitejar
    would carry on from what it held in memory. Asks on a terminal; needs
    --yes elsewhere. --dry-run checks SRC and changes nothing.

    \b
    Examples:
      nitejarctl restore /backups/nitejar-2026-09-20.db --dry-run
      nitejarctl restore /backups/nitejar-2026-09-20.db --yes
      nitejarctl -d postgresql://ops@db/nitejar restore nitejar.dump --safety-backup /backups/before.dump
    """
    import time

    from nitejarctl.maintenance.backup import backup as write_backup
    from nitejarctl.maintenance.backup import check_source, safety_path
    from nitejarctl.output.words import plural

    require_confirmation(settings, yes, dry_run, action="restore")
    display = settings.target.display
    try:
        db = settings.database()
    except DatabaseMissing:
        raise DatabaseMissing(f"database file {settings.target.path} does not exist: nothing to replace "
                              "(a SQLite backup is a whole database file: copy it there)") from None
    checked = check_source(db, src)
    safety = safety or safety_path(db)
    known = [n for n in checked.rows.values() if n is not None]
    contents = plural(len(checked.tables), "table") + (f", {plural(sum(known), 'row')}" if known else "")
    report = {"database": display, "source": src, "source_tables": len(checked.tables),
              "source_rows": sum(known) if known else None, "safety_backup": safety}
    if dry_run:
        settings.info(f"would replace {display} with {src} ({contents}), after a backup to {safety} (dry run)")
        if settings.fmt in ("json", "jsonl"):
            settings.emit_report({**report, "restored": False})
        return
    confirm(settings, f"Replace the whole database {display} with {src} ({contents})? Stop nitejar first. "
                      f"The current database is backed up to {safety} before.", yes,
            declined="nothing restored", action="restore")
    started = time.monotonic()
    with settings.turn(db):
        with copying(settings, "safety backup") as step:
            write_backup(db, safety, progress=step, batching=settings.batching, what="safety backup")
        settings.info(f"backed up the current database to {safety}")
        with copying(settings, "restoring") as step:
            rows = db.backups().restore(src, progress=step)
    settings.info(f"restored {display} from {src}: {plural(sum(rows.values()), 'row')} in "
                  f"{plural(len(rows), 'table')} ({time.monotonic() - started:.1f}s); the previous database "
                  f"is in {safety}")
    if settings.fmt in ("json", "jsonl"):
        settings.emit_report({**report, "restored": True, "seconds": round(time.monotonic() - started, 3),
                              "rows": rows})


@contextlib.contextmanager
def copying(settings, label: str):
    """A progress bar for a copy: yields `step(done, total)` (total None when unknown)."""
    state: dict = {"total": None}
    with settings.progress(label, lambda: state["total"]) as bar:
        def step(done: int, total: int | None) -> None:
            state["total"] = total
            bar.update(done)

        yield step
