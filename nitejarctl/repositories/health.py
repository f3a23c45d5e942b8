"""What `doctor` reports: server, schema drift, migrations, counts."""

from __future__ import annotations

from nitejarctl import migrations, models, schema


def server_info(db) -> dict:
    return {"backend": db.backend, "server_version": db.version_text()}


def row_counts(db) -> dict[str, int]:
    present = db.tables()
    return {m._meta.table_name: m.select().count()
            for m in models.MODELS if m._meta.table_name in present}


def counts_of_work(db, *, stale: int, idle: int, now: int) -> dict:
    """Stale sprite sessions and idle, un-compacted conversations (when the tables exist)."""
    from nitejarctl.repositories import messages, sprite_sessions

    present = db.tables()
    result = {}
    if "sprite_sessions" in present:
        result["stale_sessions"] = sprite_sessions.count_stale(db, stale, now)
    needed = {"messages", "jobs", "work_items", "agents", "session_summaries"}
    if needed <= present:
        result["idle_conversations"] = messages.count_idle_conversations(db, cutoff=now - idle)
    return result


def drift_report(db, managed: bool) -> schema.Drift:
    return schema.drift(db, managed=managed, internal_tables=(migrations.MIGRATIONS_TABLE,))


def orphans(db) -> dict[str, int]:
    """{"jobs.agent_id": rows} of the foreign keys with values no parent row has
    (nitejar writes SQLite without enforcing its keys), by key name."""
    found: dict[str, int] = {}
    for fk, n in db.dangling_references().items():
        found[fk.name] = found.get(fk.name, 0) + n
    return dict(sorted(found.items()))
