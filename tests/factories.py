"""Rows for tests: each helper inserts one row with sensible defaults and
returns its values as a dict. Times default to the (possibly frozen) clock."""

from __future__ import annotations

import json
import time
import uuid

from nitejarctl import models


def _now() -> int:
    return int(time.time())


def _insert(model, values: dict) -> dict:
    model.insert(values).execute()
    return values


def _id() -> str:
    return str(uuid.uuid4())


def agent(name=None, *, config=None, status="idle", sprite_id=None, id=None, created_at=None):
    t = _now() if created_at is None else created_at
    return _insert(models.Agent, {
        "id": id or _id(), "name": name or f"agent-{uuid.uuid4().hex[:8]}", "sprite_id": sprite_id,
        "config": json.dumps(config) if isinstance(config, (dict, list)) else config,
        "status": status, "created_at": t, "updated_at": t})


def integration(type="telegram", name=None, *, config=None, scope="global", enabled=1, id=None):
    t = _now()
    return _insert(models.Integration, {
        "id": id or _id(), "type": type, "name": name or f"int-{uuid.uuid4().hex[:6]}",
        "config": json.dumps(config) if isinstance(config, dict) else config,
        "scope": scope, "enabled": enabled, "created_at": t, "updated_at": t})


def work_item(session_key="tg:chat-1", *, source="telegram", source_ref=None, status="NEW",
              title="a work item", payload=None, id=None, created_at=None):
    t = _now() if created_at is None else created_at
    return _insert(models.WorkItem, {
        "id": id or _id(), "session_key": session_key, "source": source,
        "source_ref": source_ref or _id(), "status": status, "title": title,
        "payload": json.dumps(payload) if isinstance(payload, dict) else payload,
        "created_at": t, "updated_at": t})


def job(work_item_id, agent_id, *, status="COMPLETED", error_text=None, id=None, created_at=None):
    t = _now() if created_at is None else created_at
    return _insert(models.Job, {
        "id": id or _id(), "work_item_id": work_item_id, "agent_id": agent_id, "status": status,
        "error_text": error_text, "started_at": t, "completed_at": t if status == "COMPLETED" else None,
        "created_at": t, "updated_at": t})


def message(job_id, role="user", text="hello", *, content=None, id=None, created_at=None):
    """`content` overrides the default `{"text": text}` JSON (pass a raw string to store it as is)."""
    t = _now() if created_at is None else created_at
    if content is None:
        content = json.dumps({"text": text})
    elif isinstance(content, (dict, list)):
        content = json.dumps(content)
    return _insert(models.Message, {"id": id or _id(), "job_id": job_id, "role": role,
                                    "content": content, "created_at": t})


def memory(agent_id, content="remembers a fact", *, strength=1.0, permanent=0, access_count=0,
           last_accessed_at=None, id=None, created_at=None, updated_at=None):
    t = _now() if created_at is None else created_at
    return _insert(models.AgentMemory, {
        "id": id or _id(), "agent_id": agent_id, "content": content, "strength": strength,
        "access_count": access_count, "permanent": permanent, "last_accessed_at": last_accessed_at,
        "created_at": t, "updated_at": t if updated_at is None else updated_at})


def summary(session_key, agent_id, *, summary="Conversation topics: x", turn_count=1,
            start_time=None, end_time=None, id=None, compacted_at=None):
    t = _now()
    return _insert(models.SessionSummary, {
        "id": id or _id(), "session_key": session_key, "agent_id": agent_id, "summary": summary,
        "turn_count": turn_count, "start_time": t if start_time is None else start_time,
        "end_time": t if end_time is None else end_time,
        "compacted_at": t if compacted_at is None else compacted_at})


def sprite_session(agent_id="agent-1", session_key="tg:chat-1", *, status="active", sprite_name="sprite-a",
                   session_id=None, last_active_at=None, created_at=None, id=None):
    t = _now()
    return _insert(models.SpriteSession, {
        "id": id or _id(), "sprite_name": sprite_name, "session_id": session_id or _id(),
        "session_key": session_key, "agent_id": agent_id, "status": status,
        "created_at": t if created_at is None else created_at,
        "last_active_at": t if last_active_at is None else last_active_at})


def idempotency_key(key=None, *, work_item_id=None, created_at=None):
    return _insert(models.IdempotencyKey, {
        "key": key or _id(), "work_item_id": work_item_id,
        "created_at": _now() if created_at is None else created_at})


def conversation(session_key, agent_id, turns, *, start, step=60, job_status="COMPLETED"):
    """A work item, one job and messages for [(role, text), …] starting at `start`."""
    wi = work_item(session_key, created_at=start)
    jb = job(wi["id"], agent_id, status=job_status, created_at=start)
    msgs = [message(jb["id"], role, text, created_at=start + i * step)
            for i, (role, text) in enumerate(turns)]
    return wi, jb, msgs


def free_pages(path: str, rows: int = 1500, *, keep: str | None = None) -> int:
    """Leave free pages in the SQLite file `path`: `rows` wide agents written,
    then deleted (but `keep`, an id), the WAL checkpointed. Returns the free bytes."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        conn.executemany("INSERT INTO agents (id, name, config) VALUES (?, ?, ?)",
                         [(f"a-{i}", f"agent-{i}", "x" * 2000) for i in range(rows)])
        conn.commit()
        conn.execute("DELETE FROM agents WHERE id IS NOT ?", (keep,))
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("freelist_count", "page_size"))
        return pages * size
    finally:
        conn.close()
