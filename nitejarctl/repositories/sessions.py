"""Session summaries — nitejar's sessionSummaries repository.

A summary is what compaction leaves of an idle conversation (a
(session_key, agent_id) pair): its text, how many turns it had and the times
of its first and last message. `compaction run` writes them
(repositories/compaction.py); this module lists, shows and deletes them.
"""

from __future__ import annotations

from peewee import JOIN

from nitejarctl.errors import NotFound
from nitejarctl.models import Agent, SessionSummary

# The listed fields, in this order (the embedding blob is never listed).
FIELDS = ("id", "session_key", "agent_id", "turn_count", "start_time", "end_time",
          "compacted_at", "summary")

DELETE_CHUNK = 500


def fields(db) -> list:
    present = {f.name: f for f in db.present_fields(SessionSummary)}
    return [present[name] for name in FIELDS if name in present]


def list_query(db, *, agent_id: str | None = None, session_key: str | None = None):
    """Summaries, newest compaction first."""
    query = SessionSummary.select(*fields(db))
    if agent_id is not None:
        query = query.where(SessionSummary.agent_id == agent_id)
    if session_key is not None:
        query = query.where(SessionSummary.session_key == session_key)
    return query.order_by(SessionSummary.compacted_at.desc(), SessionSummary.id).dicts()


def get(db, summary_id: str) -> dict:
    """One summary with its agent's name; NotFound when there is none."""
    query = (SessionSummary
             .select(*fields(db), Agent.name.alias("agent_name"))
             .join(Agent, on=(Agent.id == SessionSummary.agent_id), join_type=JOIN.LEFT_OUTER)
             .where(SessionSummary.id == summary_id)
             .dicts())
    row = query.first()
    if row is None:
        raise NotFound(f"no session summary with id {summary_id!r}")
    ordered = {name: row.get(name) for name in FIELDS[:3]}
    ordered["agent_name"] = row.get("agent_name")
    ordered.update((name, row.get(name)) for name in FIELDS[3:] if name in row)
    return ordered


def find(db, ids) -> list[dict]:
    """The summaries among `ids` (ids an operator typed: already in memory), in
    the order given, each once."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, dict] = {}
    for start in range(0, len(wanted), DELETE_CHUNK):
        chunk = wanted[start:start + DELETE_CHUNK]
        for row in SessionSummary.select(*fields(db)).where(SessionSummary.id.in_(chunk)).dicts():
            found[row["id"]] = row
    return [found[i] for i in wanted if i in found]


def delete(db, ids) -> int:
    """Delete the summaries with these ids, in one transaction; returns how many."""
    wanted = list(dict.fromkeys(ids))
    total = 0
    with db.atomic():
        for start in range(0, len(wanted), DELETE_CHUNK):
            chunk = wanted[start:start + DELETE_CHUNK]
            total += SessionSummary.delete().where(SessionSummary.id.in_(chunk)).execute()
    return total


def latest(db, session_key: str, agent_id: str) -> dict | None:
    """nitejar's findLatestSessionSummary: the conversation's most recent summary."""
    return (SessionSummary.select(*fields(db))
            .where((SessionSummary.session_key == session_key) & (SessionSummary.agent_id == agent_id))
            .order_by(SessionSummary.end_time.desc(), SessionSummary.compacted_at.desc())
            .dicts().first())
