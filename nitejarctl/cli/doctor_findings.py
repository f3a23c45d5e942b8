"""What doctor finds, each with its remedy, and doctor's report as rows.

A finding is a problem (doctor exits 1) or a notice (worth doing something
about, exit 0): its level, a short code scripts can match, the message, and
the command that deals with it. The machine formats (tsv, csv, jsonl) write
the report as rows of kind, name, value and remedy: the figures first, then
one row per notice and problem, then whether the database is ok.
"""

from __future__ import annotations

RECLAIMABLE_NOTICE = 0.25  # of the file: past this, doctor suggests a VACUUM

COLUMNS = ("kind", "name", "value", "remedy")


def finding(level: str, code: str, message: str, remedy: str) -> dict:
    return {"level": level, "code": code, "message": message, "remedy": remedy}


def schema_problems(drift, *, managed: bool, pending: list[str], integrity: str | None) -> list[dict]:
    """The problems of the schema and the file: failed integrity check,
    missing tables, columns and indexes, pending migrations."""
    found = []
    if integrity is not None and integrity != "ok":
        found.append(finding("problem", "integrity", f"integrity check failed: {integrity}",
                             "restore a backup taken before the damage: 'nitejarctl restore BACKUP' "
                             "(sqlite3's .recover salvages what is still readable)"))
    if managed:  # nitejar's migrator owns the schema; nitejarctl does not migrate it
        migrate = "nitejar's migrator creates it: upgrade or restart nitejar"
    else:
        migrate = "run 'nitejarctl migrate'"
    found += [finding("problem", "missing_table", f"missing table {t}", migrate) for t in drift.missing_tables]
    found += [finding("problem", "missing_column", f"missing column {t}.{c}", migrate)
              for t, c in drift.missing_columns]
    found += [finding("problem", "missing_index", f"missing index {i}", migrate) for _, i in drift.missing_indexes]
    if pending:
        found.append(finding("problem", "pending_migrations", "pending migrations: " + ", ".join(pending),
                             "run 'nitejarctl migrate' ('nitejarctl migrate --backup' keeps a copy first)"))
    return found


def notices(report: dict, *, stale: int, idle: int) -> list[dict]:
    """What is worth doing something about, though nothing is broken."""
    from nitejarctl.durations import format_duration
    from nitejarctl.maintenance.vacuum import reclaimable_share
    from nitejarctl.output.words import plural, size

    found = []
    sessions = report.get("stale_sessions") or 0
    if sessions:
        d = format_duration(stale)
        cleanup = "nitejarctl cleanup" + ("" if d == "1h" else f" --stale {d}")
        found.append(finding("notice", "stale_sessions",
                             f"{plural(sessions, 'stale sprite session')} (active, last active over {d} ago)",
                             f"'nitejarctl sessions close --stale {d}' or '{cleanup}'"))
    conversations = report.get("idle_conversations") or 0
    if conversations:
        d = format_duration(idle)
        cleanup = "nitejarctl cleanup" + ("" if d == "30m" else f" --idle {d}")
        found.append(finding("notice", "idle_conversations",
                             f"{plural(conversations, 'idle conversation')} not compacted (idle over {d})",
                             f"'nitejarctl compaction run --idle {d}' or '{cleanup}'"))
    orphans = report.get("orphans") or {}
    if orphans:
        # nitejar itself leaves them (it writes without enforcing the keys): worth
        # a repair, not an alarm.
        found.append(finding("notice", "orphans",
                             f"{plural(sum(orphans.values()), 'dangling reference')} in "
                             f"{plural(len(orphans), 'foreign key')} (rows whose parent is gone)",
                             "'nitejarctl repair orphans --dry-run' shows what a repair changes, "
                             "'nitejarctl repair orphans' makes it"))
    storage = report["size"]
    share = reclaimable_share(storage)
    if share is not None and share > RECLAIMABLE_NOTICE:
        found.append(finding("notice", "reclaimable",
                             f"{share:.0%} of the file ({size(storage['reclaimable_bytes'])}) is free pages",
                             "'nitejarctl vacuum' gives them back (it holds the write lock while it runs: stop "
                             "nitejar or pick a quiet moment), or 'nitejarctl vacuum --into PATH' writes a "
                             "compact copy without the lock"))
    return found


def rows(r: dict):
    """Doctor's report as rows of COLUMNS, for tsv, csv and jsonl."""
    def row(kind, name, value, remedy=None):
        return {"kind": kind, "name": name, "value": value, "remedy": remedy}

    yield row("database", "url", r["database"])
    yield row("database", "source", r["source"])
    yield row("backend", r["backend"], r["server_version"])
    for key, value in (r.get("sqlite") or {}).items():
        yield row("sqlite", key, value)
    for key, value in r["size"].items():
        yield row("size", key, value)
    for table, n in (r["table_bytes"] or {}).items():
        yield row("table_bytes", table, n)
    yield row("migrations", "nitejar_managed", r["nitejar_managed"])
    if r["nitejar_managed"]:
        yield row("migrations", "nitejar_migrations", r["nitejar_migrations"])
    for name in r["pending_migrations"]:
        yield row("migrations", "pending", name)
    yield row("extra", "tables", r["drift"]["extra_tables"])
    yield row("extra", "columns", len(r["drift"]["extra_columns"]))
    for table, n in r["counts"].items():
        yield row("rows", table, n)
    for status, n in (r.get("sessions_by_status") or {}).items():
        yield row("sessions", status, n)
    if "stale_sessions" in r:
        yield row("sessions", "stale", r["stale_sessions"])
    if "idle_conversations" in r:
        yield row("conversations", "idle", r["idle_conversations"])
    for key, n in r["orphans"].items():
        yield row("orphans", key, n)
    for f in r["findings"]:
        yield row(f["level"], f["code"], f["message"], f["remedy"])
    yield row("ok", "problems", len(r["problems"]))


# How the text of each level stands out on a terminal (never in a pipe or with NO_COLOR).
STYLES = {"problem": "bold red", "notice": "yellow", "ok": "green"}


def finding_lines(r: dict) -> list:
    """The text lines of the findings and the verdict, styled for a terminal."""
    from rich.text import Text

    from nitejarctl.visible import visible

    lines = []
    for f in r["findings"]:
        label = "PROBLEM" if f["level"] == "problem" else "notice"
        line = Text()
        line.append(label, style=STYLES[f["level"]])
        line.append(" " * (14 - len(label)))
        line.append(visible(f["message"]), style=STYLES[f["level"]])
        line.append(f" — {f['remedy']}")
        lines.append(line)
    if r["ok"]:
        lines.append(Text("ok", style=STYLES["ok"]))
    else:
        n = len(r["problems"])
        lines.append(Text(f"{n} problem{'' if n == 1 else 's'} found", style=STYLES["problem"]))
    return lines
