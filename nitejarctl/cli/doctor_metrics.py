"""`doctor -o prometheus`: doctor's report as Prometheus metrics.

Written for node_exporter's textfile collector (or a push to a Pushgateway)
from cron: every metric has its HELP and TYPE lines; `nitejar_db_up` is 0
when the database cannot be read at all (with the error on stderr and exit
1), so that an alert fires instead of a stale file being read as healthy.
"""

from __future__ import annotations

import sys

from nitejarctl.errors import CheckFailed


def emit_metrics(settings, examine, *, stale: int, idle: int) -> None:
    """Print the metrics of `examine()` (doctor's report); exit 1 as doctor does."""
    import sqlite3

    import peewee

    from nitejarctl.errors import NitejarError
    from nitejarctl.output.prometheus import render

    try:
        report = examine()
    except (NitejarError, peewee.PeeweeException, sqlite3.Error):
        sys.stdout.write(render([_up(0)]))
        sys.stdout.flush()
        raise
    sys.stdout.write(render(metrics(report, stale=stale, idle=idle)))
    sys.stdout.flush()
    if report["problems"]:
        raise CheckFailed("")


def _up(value: int):
    from nitejarctl.output.prometheus import Metric

    return Metric("nitejar_db_up", "1 when nitejarctl could open and read the database, else 0.").add(value)


def metrics(report: dict, *, stale: int, idle: int) -> list:
    """The metric families of a doctor report."""
    from nitejarctl.durations import format_duration
    from nitejarctl.output.prometheus import Metric

    size = report["size"]
    families = [
        _up(1),
        Metric("nitejar_db_ok", "1 when doctor found no problem, else 0.").add(report["ok"]),
        Metric("nitejar_db_problems", "Problems doctor found: failed integrity check, schema drift, "
                                      "pending migrations.").add(len(report["problems"])),
        Metric("nitejar_db_info", "The database's backend and server version (always 1).").add(
            1, backend=report["backend"], version=report["server_version"],
            nitejar_managed=str(report["nitejar_managed"]).lower()),
        Metric("nitejar_db_pending_migrations", "nitejarctl migrations not applied yet.").add(
            len(report["pending_migrations"])),
        Metric("nitejar_db_rows", "Rows per table."),
        Metric("nitejar_sprite_sessions", "Sprite sessions by status."),
        Metric("nitejar_sprite_sessions_stale", f"Active sprite sessions last active more than "
                                                f"{format_duration(stale)} ago."),
        Metric("nitejar_conversations_idle", f"Conversations idle for more than {format_duration(idle)} "
                                             "and not compacted."),
        Metric("nitejar_db_size_bytes", "Bytes of the database: its file (SQLite) or pg_database_size "
                                        "(PostgreSQL).").add(size["bytes"]),
        Metric("nitejar_db_wal_bytes", "Bytes of the SQLite write-ahead log (-wal file)."),
        Metric("nitejar_db_reclaimable_bytes", "Bytes of SQLite free pages, which VACUUM gives back."),
        Metric("nitejar_db_table_bytes", "Bytes of each table with its indexes."),
        Metric("nitejar_db_orphans", "Dangling references (rows whose parent is gone) per foreign key."),
    ]
    by_name = {m.name: m for m in families}
    for table, n in report["counts"].items():
        by_name["nitejar_db_rows"].add(n, table=table)
    for status, n in report.get("sessions_by_status", {}).items():
        by_name["nitejar_sprite_sessions"].add(n, status="" if status is None else status)
    if "stale_sessions" in report:
        by_name["nitejar_sprite_sessions_stale"].add(report["stale_sessions"])
    if "idle_conversations" in report:
        by_name["nitejar_conversations_idle"].add(report["idle_conversations"])
    for key, name in (("wal_bytes", "nitejar_db_wal_bytes"), ("reclaimable_bytes", "nitejar_db_reclaimable_bytes")):
        if size.get(key) is not None:
            by_name[name].add(size[key])
    for table, n in (report["table_bytes"] or {}).items():
        by_name["nitejar_db_table_bytes"].add(n, table=table)
    for key, n in report.get("orphans", {}).items():
        by_name["nitejar_db_orphans"].add(n, key=key)
    return families
