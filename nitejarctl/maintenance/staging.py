"""Compaction's two temporary tables — the keys of the conversations to
compact, and the summaries of a batch before they are written — and the
statements that write a batch from them (maintenance.compaction)."""

from __future__ import annotations

import uuid

import peewee as pw
from peewee import SQL, Value, fn

from nitejarctl.models import SessionSummary, SpriteSession, database_proxy


class _Temp(pw.Model):
    class Meta:
        database = database_proxy


class Key(_Temp):
    seq = pw.IntegerField(primary_key=True)
    session_key = pw.TextField()
    agent_id = pw.TextField()
    last_message_at = pw.IntegerField()
    enabled = pw.IntegerField(constraints=[SQL("DEFAULT 1")])

    class Meta:
        table_name = "nitejarctl_compaction_keys"


class Out(_Temp):
    id = pw.TextField(primary_key=True)
    session_key = pw.TextField()
    agent_id = pw.TextField()
    summary = pw.TextField(null=True)
    turn_count = pw.IntegerField()
    start_time = pw.IntegerField()
    end_time = pw.IntegerField()

    class Meta:
        table_name = "nitejarctl_compaction_out"


def create(db) -> None:
    drop(db)
    Key.create_table(safe=False, temporary=True)
    Out.create_table(safe=False, temporary=True)


def drop(db) -> None:
    for model in (Out, Key):
        db.execute_sql(f"DROP TABLE IF EXISTS {db.temp_schema}.{model._meta.table_name}")


def stage(db, pending) -> None:
    """The batch's summaries (outcomes) into Out."""
    names = ("id", "session_key", "agent_id", "summary", "turn_count", "start_time", "end_time")
    sql = (f"INSERT INTO {Out._meta.table_name} ({', '.join(names)}) "
           f"VALUES ({', '.join([db.param] * len(names))})")
    rows = [(o.id or str(uuid.uuid4()), o.session_key, o.agent_id, o.summary, o.turn_count,
             o.start_time, o.end_time) for o in pending]
    cursor = db.cursor()
    try:
        with pw.__exception_wrapper__:
            cursor.executemany(sql, rows)
    finally:
        cursor.close()
    # Without statistics the planner guesses the table from its pages, which its
    # deleted rows keep: it would then hash every active session to join them.
    db.analyze_temporary(Out._meta.table_name)


def clear() -> None:
    Out.delete().execute()


def insert_summaries(db, now: int) -> set[str]:
    """Write the staged summaries of conversations no summary reaches yet
    (checked again here, inside the write transaction: two runs never both
    write); returns the ids written."""
    existing = SessionSummary.alias("existing")
    compacted = fn.EXISTS(existing.select(SQL("1")).where(
        (existing.session_key == Out.session_key) & (db.unindexed(existing.agent_id) == Out.agent_id)
        & (existing.end_time >= Out.end_time)))
    source = (Out.select(Out.id, Out.session_key, Out.agent_id, Out.summary, Out.turn_count,
                         Out.start_time, Out.end_time, Value(now))
              .where(~compacted))
    SessionSummary.insert_from(source, fields=[
        SessionSummary.id, SessionSummary.session_key, SessionSummary.agent_id, SessionSummary.summary,
        SessionSummary.turn_count, SessionSummary.start_time, SessionSummary.end_time,
        SessionSummary.compacted_at]).execute()
    return {r[0] for r in Out.select(Out.id).join(SessionSummary, on=(SessionSummary.id == Out.id)).tuples()}


def sessions_to_close(*, written_only: bool):
    """The active sprite sessions of the staged conversations (of those whose
    summary this transaction wrote, when `written_only`)."""
    active = SpriteSession.alias("active")
    query = (active.select(active.id)
             .join(Out, on=((Out.session_key == active.session_key) & (Out.agent_id == active.agent_id)))
             .where(active.status == "active"))
    if written_only:
        query = query.join(SessionSummary, on=(SessionSummary.id == Out.id))
    return query
