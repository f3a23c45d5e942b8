"""`nitejarctl transfer`: copy the SQLite database into PostgreSQL."""

from __future__ import annotations

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import NitejarCommand, dry_run_option, yes_option
from nitejarctl.errors import CheckFailed, Declined, UsageProblem

COLUMNS = ["table", "action", "rows", "rejected", "seconds", "source_rows", "target_rows", "verified"]


def _names(ctx, param, value):
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give one or more table names, separated by commas")
    return names


@click.command("transfer", cls=NitejarCommand)
@click.option("--to", "to_url", required=True, metavar="URL",
              help="The PostgreSQL database to fill (postgresql://user:password@host/db).")
@click.option("--resume", is_flag=True, help="Continue an interrupted transfer into the same target.")
@click.option("--only", metavar="T,…", callback=_names, help="Only these tables.")
@click.option("--skip", metavar="T,…", callback=_names, help="All tables but these.")
@click.option("--on-bad-value", type=click.Choice(["fail", "reject"]), default="fail", show_default=True,
              help="A value PostgreSQL cannot take (text in an integer column, invalid UTF-8, NUL): "
                   "stop (fail), or leave its row out (reject). Either way it is listed in the reject file.")
@click.option("--reject-file", metavar="PATH",
              help="Where bad values are listed [default: DATABASE-transfer-rejects.tsv].")
@click.option("--verify-only", is_flag=True,
              help="Only compare row counts and checksums of every table on both sides.")
@dry_run_option
@yes_option
@pass_settings
def transfer(settings, to_url, resume, only, skip, on_bad_value, reject_file, verify_only, dry_run, yes):
    """Copy the SQLite database (-d) into a PostgreSQL database, exactly.

    An empty target gets the schema first (nitejarctl's, or nitejar's own
    tables translated, with kysely_migration copied so that nitejar's migrator
    sees an up-to-date database); a target that has the schema already is
    checked column by column. Rows are read from one consistent snapshot, so
    nitejar may keep running: what it writes after the start is not copied
    (stop nitejar for the final cut). Every table is verified at the end (row
    counts and checksums on both sides): a difference exits 1.

    \b
    Examples:
      nitejarctl -d data/nitejar.db transfer --to postgresql://nitejar@db/nitejar
      nitejarctl transfer --to "$PG_URL" --dry-run
      nitejarctl transfer --to "$PG_URL" --resume
      nitejarctl transfer --to "$PG_URL" --verify-only
      nitejarctl transfer --to "$PG_URL" --skip audit_logs,spans --on-bad-value reject
    """
    from nitejarctl.db import parse_url
    from nitejarctl.maintenance.transfer import engine

    source = settings.target
    if not source.is_sqlite or source.is_memory:
        raise UsageProblem("transfer copies a SQLite database file: -d names "
                           f"{source.display}")
    destination = parse_url(to_url)
    if destination.is_sqlite:
        raise UsageProblem(f"--to must be a PostgreSQL URL (postgresql://…), not {destination.display}")
    if only and skip:
        raise UsageProblem("--only and --skip cannot be used together")
    if verify_only and (resume or dry_run):
        raise UsageProblem("--verify-only cannot be used with --resume or --dry-run")
    options = engine.Options(resume=resume, only=only, skip=skip, dry_run=dry_run, verify_only=verify_only,
                             on_bad_value=on_bad_value,
                             reject_file=reject_file or f"{source.path}-transfer-rejects.tsv")
    db = settings.database()
    snapshot, conn = _open(settings, db, destination)
    try:
        if snapshot.journal_mode != "wal" and not verify_only:
            settings.warn(f"{source.display} is not in WAL mode: nitejar's writers wait while the "
                          "transfer reads it; stop nitejar first")
        if not (verify_only or dry_run or yes) and settings.interactive():
            if not click.confirm(f"Copy {source.display} into {destination.display}?", default=False,
                                 err=True):
                raise Declined("nothing transferred")
        if not (verify_only or dry_run):
            settings.info(f"transferring {source.display} to {destination.display} from a snapshot taken "
                          "now: writes after this moment are not included (stop nitejar for the final cut)")
        with settings.progress_bars() as bars:
            result = engine.run(snapshot, conn, destination.params, options, _Hooks(settings, bars),
                                lambda: _peewee(destination))
    finally:
        snapshot.close()
        conn.close()
    _report(settings, result, destination, options)


def _open(settings, db, destination):
    from nitejarctl.db import open_database
    from nitejarctl.maintenance.transfer.source import Snapshot

    snapshot = Snapshot(db.connection())
    peewee = open_database(destination)  # checks the URL and the server, masks the password
    conn = peewee.connection()
    conn.autocommit = False
    with conn.cursor() as cur:
        # Safe here: a batch and its progress row are lost (or kept) together.
        cur.execute("SET synchronous_commit = off")
    conn.commit()
    return snapshot, conn


def _peewee(destination):
    from nitejarctl.db import open_database

    return open_database(destination)


class _Hooks:
    def __init__(self, settings, bars):
        self.settings, self.bars = settings, bars

    def progress(self, table, total):
        return self.bars.bar(table, total)

    def info(self, message):
        self.settings.info(message)

    def warn(self, message):
        self.settings.warn(message)


def _report(settings, result, destination, options) -> None:
    from nitejarctl.output.words import plural

    rows = [{"table": t.table, "action": t.action, "rows": t.rows, "rejected": t.rejected,
             "seconds": round(t.seconds, 2), "source_rows": t.source_rows, "target_rows": t.target_rows,
             "verified": t.verified} for t in result.tables]
    settings.emit(rows, COLUMNS, id_field="table")
    for warning in result.warnings:
        settings.warn(warning)
    if result.rejects:
        total = sum(t.rejected for t in result.tables)
        settings.warn(f"{plural(total, 'row')} left out for bad values, each listed in {result.rejects}")
    if result.differences:
        raise CheckFailed("verification failed: " + "; ".join(result.differences))
    if options.dry_run:
        settings.info(f"would transfer {plural(len(rows), 'table')} into {destination.display} "
                      f"({'creating the schema' if result.schema == 'create' else 'into its schema'}); "
                      "nothing changed")
    elif options.verify_only or result.schema == "finished":
        settings.info(f"verified {plural(len(rows), 'table')}: the same rows on both sides")
    else:
        total = sum(t.rows for t in result.tables)
        settings.info(f"transferred {plural(total, 'row')} of {plural(len(rows), 'table')} into "
                      f"{destination.display} in {result.seconds:.1f}s; verified")
