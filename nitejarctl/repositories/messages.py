"""Messages and the conversations they form — nitejar's messages repository.

A conversation is a (work_items.session_key, jobs.agent_id) pair; its messages
are those of its COMPLETED jobs.
"""

from __future__ import annotations

from peewee import JOIN, Case, fn

from nitejarctl.models import Agent, Job, Message, SessionSummary, WorkItem


def _conversations(session_key: str | None = None, agent_id: str | None = None):
    """One row per conversation: message_count and last_message_at."""
    query = (Message
             .select(WorkItem.session_key, Job.agent_id,
                     fn.COUNT(Message.id).alias("message_count"),
                     fn.MAX(Message.created_at).alias("last_message_at"))
             .join(Job, on=(Job.id == Message.job_id))
             .join(WorkItem, on=(WorkItem.id == Job.work_item_id))
             .where(Job.status == "COMPLETED")
             .group_by(WorkItem.session_key, Job.agent_id))
    if session_key is not None:
        query = query.where(WorkItem.session_key == session_key)
    if agent_id is not None:
        query = query.where(Job.agent_id == agent_id)
    return query


def idle_conversations_query(*, cutoff: int, include_compacted: bool = False,
                             session_key: str | None = None, agent_id: str | None = None):
    """Conversations whose newest message is older than `cutoff`, with
    session_key, agent_id, agent_name, message_count, last_message_at and
    compacted (a summary's end_time reaches the newest message)."""
    conv = _conversations(session_key, agent_id).alias("c")
    # Each conversation's latest summary end, joined once (hash join or automatic
    # index) rather than probed per conversation: a correlated EXISTS let SQLite,
    # without statistics, walk every summary of the agent for each conversation.
    until = (SessionSummary
             .select(SessionSummary.session_key, SessionSummary.agent_id,
                     fn.MAX(SessionSummary.end_time).alias("until"))
             .group_by(SessionSummary.session_key, SessionSummary.agent_id))
    if session_key is not None:
        until = until.where(SessionSummary.session_key == session_key)
    if agent_id is not None:
        until = until.where(SessionSummary.agent_id == agent_id)
    until = until.alias("s")
    compacted = until.c.until.is_null(False) & (until.c.until >= conv.c.last_message_at)
    query = (Agent
             .select(conv.c.session_key, conv.c.agent_id, Agent.name.alias("agent_name"),
                     conv.c.message_count, conv.c.last_message_at,
                     Case(None, [(compacted, 1)], 0).alias("compacted"))
             .from_(conv)
             .join(Agent, on=(Agent.id == conv.c.agent_id))
             .join(until, JOIN.LEFT_OUTER, on=((until.c.session_key == conv.c.session_key)
                                               & (until.c.agent_id == conv.c.agent_id)))
             .where(conv.c.last_message_at < cutoff)
             .order_by(conv.c.session_key, conv.c.agent_id))
    if not include_compacted:
        query = query.where(until.c.until.is_null() | (until.c.until < conv.c.last_message_at))
    return query


def count_idle_conversations(db, *, cutoff: int) -> int:
    return idle_conversations_query(cutoff=cutoff).count()


def _json_value(text: str):
    """json.loads(text), sooner for the usual message (an object, nothing
    around it): scanned as it is, without looking for white space first."""
    import json

    global _scan_once
    if text[:1] == "{":
        if _scan_once is None:
            _scan_once = json.decoder.JSONDecoder().scan_once
        try:
            value, end = _scan_once(text, 0)
        except (ValueError, StopIteration):
            value, end = None, -1
        if end == len(text):
            return value
    return json.loads(text)


_scan_once = None


def message_text(content) -> str:
    """The text of a message's `content`: `content.text`, else `content.content`
    (when the content is a JSON object), else the raw content when it is not
    JSON. A JSON string is its own text, a bare number or boolean its raw text;
    an object or array without text gives ''."""
    if content is None:
        return ""
    if isinstance(content, (bytes, bytearray, memoryview)):
        content = bytes(content).decode("utf-8", "replace")
    try:
        parsed = _json_value(content)
    except ValueError:
        return content
    if isinstance(parsed, dict):
        for key in ("text", "content"):
            if isinstance(parsed.get(key), str):
                return parsed[key]
        return ""
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, list):
        return ""
    return content


def session_history_query(db, session_key: str, *, agent_id: str | None = None,
                          include_incomplete: bool = False):
    """nitejar's listMessagesBySession: the messages of the COMPLETED jobs (all
    jobs with `include_incomplete`) of the work items with `session_key`,
    ordered by job created_at, then message created_at; ties (times are whole
    seconds) by job, then in the order the messages were written.
    Fields: id, created_at, job_id, agent_id, job_status, role, content."""
    written = db.insertion_order(Message)
    query = (Message
             .select(Message.id, Message.created_at, Message.job_id, Job.agent_id,
                     Job.status.alias("job_status"), Message.role, Message.content)
             .join(Job, on=(Job.id == Message.job_id))
             .join(WorkItem, on=(WorkItem.id == Job.work_item_id))
             .where(WorkItem.session_key == session_key)
             .order_by(Job.created_at, Message.created_at, Message.job_id, written))
    if agent_id is not None:
        query = query.where(Job.agent_id == agent_id)
    if not include_incomplete:
        query = query.where(Job.status == "COMPLETED")
    return query.dicts()
