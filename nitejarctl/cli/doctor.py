"""`nitejarctl doctor` (alias `status`): is this database healthy?"""

from __future__ import annotations

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import DURATION, NitejarCommand
from nitejarctl.errors import CheckFailed


@click.command(cls=NitejarCommand)
@click.option("--stale", type=DURATION, default="1h", show_default=True,
              help="Age of last activity that makes an active session stale.")
@click.option("--idle", type=DURATION, default="30m", show_default=True,
              help="Age of the newest message that makes a conversation idle.")
@pass_settings
def doctor(settings, stale, idle):
    """Check the database: connection, schema drift, migrations, counts.

    Exits 1 when something is wrong (unreachable, failed integrity check,
    missing tables, columns or indexes, pending migrations). Dangling
    references (rows whose parent is gone, per foreign key: "orphans") are
    reported with a notice, not as a problem: nitejar itself leaves them.

    \b
    Examples:
      nitejarctl doctor
      nitejarctl doctor -o json | jq .problems
      nitejarctl -d postgresql://ops@db/nitejar status
    """
    from nitejarctl import migrations
    from nitejarctl.db import now
    from nitejarctl.repositories import health

    target = settings.target
    db = settings.database()
    report = {"database": target.display, "source": settings.url_source}
    report.update(health.server_info(db))
    problems = []
    file_info = db.file_info()
    if file_info is not None:
        report["sqlite"] = file_info
        if file_info["integrity"] != "ok":
            problems.append(f"integrity check failed: {file_info['integrity']}")
    st = migrations.status(db)
    report["nitejar_managed"] = st.managed
    report["nitejar_migrations"] = st.nitejar_migrations
    report["pending_migrations"] = [] if st.managed else st.pending
    drift = health.drift_report(db, st.managed)
    report["drift"] = {
        "missing_tables": drift.missing_tables,
        "missing_columns": [f"{t}.{c}" for t, c in drift.missing_columns],
        "missing_indexes": [i for _, i in drift.missing_indexes],
        "extra_tables": len(drift.extra_tables),
        "extra_columns": [f"{t}.{c}" for t, c in drift.extra_columns],
    }
    problems += [f"missing table {t}" for t in drift.missing_tables]
    problems += [f"missing column {t}.{c}" for t, c in drift.missing_columns]
    problems += [f"missing index {i}" for _, i in drift.missing_indexes]
    if report["pending_migrations"]:
        problems.append("pending migrations: " + ", ".join(report["pending_migrations"]))
    report["counts"] = health.row_counts(db)
    report.update(health.counts_of_work(db, stale=stale, idle=idle, now=now()))
    report["orphans"] = health.orphans(db)
    notices = []
    if report["orphans"]:
        # nitejar itself leaves them (it writes without enforcing the keys): worth
        # a repair, not an alarm.
        from nitejarctl.output.words import plural

        total = sum(report["orphans"].values())
        notices.append(f"{plural(total, 'dangling reference')} in {plural(len(report['orphans']), 'foreign key')} "
                       "(rows whose parent is gone): see 'nitejarctl repair orphans --dry-run'")
    report["notices"] = notices
    report["problems"] = problems
    report["ok"] = not problems
    settings.emit_report(report, lines=_lines(report))
    if problems:
        raise CheckFailed("")


def _lines(r: dict) -> list[str]:
    lines = [f"database      {r['database']}  (from {r['source']})",
             f"backend       {r['backend']} {r['server_version']}"]
    if "sqlite" in r:
        s = r["sqlite"]
        size = f", {s['file_size']:,} bytes" if "file_size" in s else ""
        lines.append(f"sqlite        journal_mode={s['journal_mode']}, integrity {s['integrity']}{size}")
    if r["nitejar_managed"]:
        lines.append(f"managed by    nitejar's migrator ({r['nitejar_migrations']} migrations applied)")
    else:
        pending = ", ".join(r["pending_migrations"]) or "none pending"
        lines.append(f"migrations    nitejarctl ({pending})")
    d = r["drift"]
    if d["extra_tables"] or d["extra_columns"]:
        lines.append(f"extra         {d['extra_tables']} tables, {len(d['extra_columns'])} columns "
                     "(not nitejarctl's; informational)")
    for table, n in r["counts"].items():
        lines.append(f"rows          {table:<20} {n:>12,}")
    if "stale_sessions" in r:
        lines.append(f"stale         {r['stale_sessions']:,} active sprite sessions")
    if "idle_conversations" in r:
        lines.append(f"idle          {r['idle_conversations']:,} conversations not compacted")
    for key, n in r["orphans"].items():
        lines.append(f"orphans       {key:<48} {n:>12,}")
    lines += [f"notice        {n}" for n in r["notices"]]
    lines += [f"PROBLEM       {p}" for p in r["problems"]]
    lines.append("ok" if r["ok"] else f"{len(r['problems'])} problem(s) found")
    return lines
