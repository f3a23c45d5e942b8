"""What `doctor` reports: server, schema drift, migrations, counts."""

from __future__ import annotations

import os

from nitejarctl import migrations, models, schema
from nitejarctl.db import dialect, table_names


def server_info(db) -> dict:
    if dialect(db) == "postgresql":
        version = db.execute_sql("SHOW server_version").fetchone()[0]
        return {"backend": "postgresql", "server_version": version}
    version = db.execute_sql("SELECT sqlite_version()").fetchone()[0]
    return {"backend": "sqlite", "server_version": version}


def sqlite_info(db, path: str | None) -> dict:
    journal = db.execute_sql("PRAGMA journal_mode").fetchone()[0]
    check = [r[0] for r in db.execute_sql("PRAGMA quick_check").fetchall()]
    info = {"journal_mode": journal, "integrity": "ok" if check == ["ok"] else "; ".join(check[:5])}
    if path and path != ":memory:" and os.path.exists(path):
        info["file_size"] = os.path.getsize(path)
    return info


def row_counts(db) -> dict[str, int]:
    present = table_names(db)
    return {m._meta.table_name: m.select().count()
            for m in models.MODELS if m._meta.table_name in present}


def counts_of_work(db, *, stale: int, idle: int, now: int) -> dict:
    """Stale sprite sessions and idle, un-compacted conversations (when the tables exist)."""
    from nitejarctl.repositories import messages, sprite_sessions

    present = table_names(db)
    result = {}
    if "sprite_sessions" in present:
        result["stale_sessions"] = sprite_sessions.count_stale(db, stale, now)
    needed = {"messages", "jobs", "work_items", "agents", "session_summaries"}
    if needed <= present:
        result["idle_conversations"] = messages.count_idle_conversations(db, cutoff=now - idle)
    return result


def drift_report(db, managed: bool) -> schema.Drift:
    return schema.drift(db, managed=managed, internal_tables=(migrations.MIGRATIONS_TABLE,))
