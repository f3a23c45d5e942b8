"""nitejar's POST /api/jobs/cleanup, as one function: compact idle
conversations, close stale sprite sessions, purge old closed and error ones
(and, with a retention, prune the old messages compaction has summarised).
A step that fails is listed under `errors`; the next steps still run."""

from __future__ import annotations

import sqlite3

import peewee

from nitejarctl.db.batches import Bulk
from nitejarctl.errors import NitejarError
from nitejarctl.maintenance.compaction import CompactionRun
from nitejarctl.maintenance.retention import prune_messages
from nitejarctl.repositories import sprite_sessions

KEYS = ("compactedSessions", "closedStale", "deleted", "errors")
RETENTION_KEY = "prunedMessages"
CONVERSATION_TABLES = ("agents", "work_items", "jobs", "messages", "session_summaries", "sprite_sessions")
FAILURES = (NitejarError, peewee.PeeweeException, sqlite3.Error)


def cleanup(db, *, idle: int, stale: int, purge_older_than: int, now: int, bulk: Bulk,
            compacted=None, retain: int | None = None) -> dict:
    """nitejar's response keys: compactedSessions, closedStale, deleted,
    errors (and prunedMessages with `retain`: messages older than that which
    summaries cover are deleted once compaction has run). `compacted()` is
    called for each conversation compaction finishes with (a progress bar's
    step)."""
    result = {"compactedSessions": 0, "closedStale": 0, "deleted": 0, "errors": []}
    errors = result["errors"]
    try:
        _compact(db, cutoff=now - idle, dry_run=bulk.dry_run, result=result, compacted=compacted)
    except FAILURES as exc:
        errors.append(f"Compaction failed: {_message(exc)}")
    if retain is not None:
        result[RETENTION_KEY] = 0
        try:
            result[RETENTION_KEY] = prune_messages(db, now - retain, bulk)
        except FAILURES as exc:
            errors.append(f"Message pruning failed: {_message(exc)}")
    try:
        db.require_table("sprite_sessions")
        result["closedStale"] = sprite_sessions.close_stale(db, stale, now, bulk)
        result["deleted"] = sprite_sessions.purge(db, purge_older_than, now, bulk)
    except FAILURES as exc:
        errors.append(f"Sprite cleanup failed: {_message(exc)}")
    return result


def _compact(db, *, cutoff: int, dry_run: bool, result: dict, compacted) -> None:
    """Compaction with the default summary; what it compacted counts even when a
    later batch fails (each batch commits on its own)."""
    for table in CONVERSATION_TABLES:
        db.require_table(table)
    run = CompactionRun(db, cutoff=cutoff, dry_run=dry_run)
    try:
        with run:
            for outcome in run.outcomes():
                if compacted is not None:
                    compacted()
                if outcome.status == "failed":
                    result["errors"].append(f"Failed to compact session {outcome.session_key}: "
                                            f"{outcome.reason}")
    finally:
        result["compactedSessions"] = run.counts["compacted"]


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(text.split())
