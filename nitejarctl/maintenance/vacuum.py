"""Reclaiming the space deleted rows leave behind: VACUUM.

SQLite keeps a deleted row's pages as free pages inside the file, which never
shrinks by itself; VACUUM rewrites the file without them, holding the write
lock for its whole run (VACUUM INTO writes a compact copy instead, from a
read snapshot). PostgreSQL's VACUUM (ANALYZE), table by table, makes dead
rows' space reusable and refreshes the planner's statistics while writes go
on; its files seldom shrink.
"""

from __future__ import annotations

import time


def total_bytes(storage: dict) -> int:
    """The database's bytes on disk, its WAL included."""
    return storage["bytes"] + (storage.get("wal_bytes") or 0)


def reclaimable_share(storage: dict) -> float | None:
    """The part of the file that is free pages (None when unknown)."""
    free = storage.get("reclaimable_bytes")
    if free is None or not storage["bytes"]:
        return None
    return free / storage["bytes"]


def vacuum(db, *, step=None) -> dict:
    """VACUUM the database as its backend does it (db.vacuum_steps), then
    fold the WAL into the file. `step(done, total)` after each statement.
    Returns the storage before and after, the bytes reclaimed, the seconds."""
    before = db.storage()
    started = time.monotonic()
    steps = db.vacuum_steps()
    for done, (_, sql) in enumerate(steps, 1):
        db.execute_sql(sql)
        if step is not None:
            step(done, len(steps))
    checkpointed = db.after_vacuum()
    after = db.storage()
    return {"before": before, "after": after, "reclaimed_bytes": total_bytes(before) - total_bytes(after),
            "seconds": round(time.monotonic() - started, 3), "checkpointed": checkpointed,
            "statements": len(steps)}
