"""`nitejarctl doctor` (alias `status`): is this database healthy?"""

from __future__ import annotations

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import DURATION, NitejarCommand
from nitejarctl.errors import CheckFailed


@click.command(cls=NitejarCommand, formats=("prometheus",))
@click.option("--stale", type=DURATION, default="1h", show_default=True,
              help="Age of last activity that makes an active session stale.")
@click.option("--idle", type=DURATION, default="30m", show_default=True,
              help="Age of the newest message that makes a conversation idle.")
@pass_settings
def doctor(settings, stale, idle):
    """Check the database: connection, schema drift, migrations, counts, size.

    Exits 1 when something is wrong (unreachable, failed integrity check,
    missing tables, columns or indexes, pending migrations). Dangling
    references (rows whose parent is gone, per foreign key: "orphans") are
    reported with a notice, not as a problem: nitejar itself leaves them.
    Reports the file's, the WAL's and the reclaimable bytes (SQLite's free
    pages) and the largest tables by bytes, with a notice when more than a
    quarter of the file is reclaimable.

    -o json for monitoring scripts; -o prometheus for Prometheus' text
    format (node_exporter's textfile collector): nitejar_db_up is 0 when the
    database cannot be read at all.

    \b
    Examples:
      nitejarctl doctor
      nitejarctl doctor -o json | jq .problems
      nitejarctl doctor -o prometheus > /var/lib/node_exporter/nitejar.prom.tmp
      nitejarctl -d postgresql://ops@db/nitejar status
    """
    if settings.fmt == "prometheus":
        from nitejarctl.cli.doctor_metrics import emit_metrics

        emit_metrics(settings, lambda: examine(settings, stale=stale, idle=idle), stale=stale, idle=idle)
        return
    report = examine(settings, stale=stale, idle=idle)
    if settings.fmt in ("tsv", "csv", "jsonl", "ids"):
        from nitejarctl.cli import doctor_findings as findings

        settings.emit(findings.rows(report), list(findings.COLUMNS), id_field="name")
    else:
        settings.emit_report(report, lines=_lines(report))
    if report["problems"]:
        raise CheckFailed("")


def examine(settings, *, stale: int, idle: int) -> dict:
    """Everything doctor reports, as one dict (its JSON)."""
    from nitejarctl import migrations
    from nitejarctl.cli import doctor_findings as findings
    from nitejarctl.db import now
    from nitejarctl.repositories import health

    target = settings.target
    db = settings.database()
    report = {"database": target.display, "source": settings.url_source}
    report.update(health.server_info(db))
    file_info = db.file_info()
    if file_info is not None:
        report["sqlite"] = file_info
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
    report["counts"] = health.row_counts(db)
    report.update(health.counts_of_work(db, stale=stale, idle=idle, now=now()))
    report["orphans"] = health.orphans(db)
    report.update(health.size_report(db))
    found = findings.schema_problems(drift, managed=st.managed, pending=report["pending_migrations"],
                                     integrity=None if file_info is None else file_info["integrity"])
    found += findings.notices(report, stale=stale, idle=idle)
    report["findings"] = found
    report["notices"] = [f["message"] for f in found if f["level"] == "notice"]
    report["problems"] = [f["message"] for f in found if f["level"] == "problem"]
    report["ok"] = not report["problems"]
    return report


def _lines(r: dict) -> list:
    from nitejarctl.cli import doctor_findings as findings
    from nitejarctl.output.words import size

    lines = [f"database      {r['database']}  (from {r['source']})",
             f"backend       {r['backend']} {r['server_version']}"]
    if "sqlite" in r:
        s = r["sqlite"]
        lines.append(f"sqlite        journal_mode={s['journal_mode']}, integrity {s['integrity']}")
    z = r["size"]
    wal = f", WAL {size(z['wal_bytes'])}" if z.get("wal_bytes") is not None else ""
    free = (f", {size(z['reclaimable_bytes'])} reclaimable ({z['reclaimable_bytes'] / z['bytes']:.0%})"
            if z.get("reclaimable_bytes") is not None and z["bytes"] else "")
    lines.append(f"size          {size(z['bytes'])} ({z['bytes']:,} bytes){wal}{free}")
    for t in (r["largest_tables"] or [])[:LARGEST_SHOWN]:
        lines.append(f"bytes         {t['table']:<20} {size(t['bytes']):>12}")
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
    return lines + findings.finding_lines(r)


LARGEST_SHOWN = 5
