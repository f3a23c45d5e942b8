"""The PostgreSQL baselines: the same work as each nitejarctl command, done with
psycopg2 as directly as possible — one set-based statement in one transaction
for each bulk change, a straightforward loop (one query and one transaction per
conversation) for compaction.

    python bench/pg_baselines.py SCENARIO URL

They use "now" from the clock, like nitejarctl, the same semantics as
bench/baselines.py (SQLite), and the server's own commit settings (durable).
"""

from __future__ import annotations

import json
import sys
import uuid

import baselines as sqlite_baselines  # bench/baselines.py: the shared semantics

HOUR, DAY, WEEK = 3600, 86400, 7 * 86400
SESSION_FIELDS = sqlite_baselines.SESSION_FIELDS


def connect(url: str):
    import psycopg2

    return psycopg2.connect(url)


def sessions_list_stale(conn, now):
    """`sessions list --stale 1h -o json`: one SELECT through a server-side
    cursor, streamed as the same JSON document."""
    cursor = conn.cursor(name="stale")
    cursor.itersize = 2000
    cursor.execute(f"SELECT {', '.join(SESSION_FIELDS)} FROM sprite_sessions "
                   "WHERE status = 'active' AND last_active_at < %s ORDER BY last_active_at, id",
                   (now - HOUR,))
    write = sys.stdout.write
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    write("[")
    count = 0
    for row in cursor:
        write(("\n" if count == 0 else ",\n") + dumps(dict(zip(SESSION_FIELDS, row))))
        count += 1
    write("\n]\n" if count else "]\n")
    conn.rollback()
    return count


def _one(conn, sql: str, params) -> int:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        n = cur.rowcount
    conn.commit()
    return n


def sessions_close_stale(conn, now):
    return _one(conn, "UPDATE sprite_sessions SET status = 'closed', last_active_at = %s "
                      "WHERE status = 'active' AND last_active_at < %s", (now, now - HOUR))


def sessions_purge(conn, now):
    return _one(conn, "DELETE FROM sprite_sessions WHERE status IN ('closed', 'error') AND last_active_at < %s",
                (now - DAY,))


def nothing_to_do(conn, now):
    """`idempotency prune --older-than 3650d`, as a nightly job often finds it:
    the same DELETE, which finds nothing."""
    return _one(conn, "DELETE FROM idempotency_keys WHERE created_at < %s", (now - 3650 * DAY,))


def nothing_to_find(conn, now):
    """`sessions purge --older-than 3650d`: the same DELETE, which finds nothing
    but, no index covering its condition, reads the whole table to be sure."""
    return _one(conn, "DELETE FROM sprite_sessions WHERE status IN ('closed', 'error') AND last_active_at < %s",
                (now - 3650 * DAY,))


def _agents(conn) -> list:
    with conn.cursor() as cur:
        cur.execute(sqlite_baselines.AGENTS)
        return cur.fetchall()


def _settings(conn) -> dict:
    return sqlite_baselines.memory_settings(_agents(conn))


def memories_decay(conn, now):
    """`memories decay`: one UPDATE, each agent's rate from a CASE."""
    by_rate: dict[float, list[str]] = {}
    for agent_id, (rate, _) in _settings(conn).items():
        if rate > 0:
            by_rate.setdefault(rate, []).append(agent_id)
    whens = " ".join(f"WHEN agent_id = ANY(%s) THEN {rate / WEEK!r}::float8" for rate in sorted(by_rate))
    per_second = f"(CASE {whens} ELSE 0::float8 END)"
    anchor = "GREATEST(created_at, COALESCE(last_accessed_at, created_at), updated_at)"
    groups = [by_rate[rate] for rate in sorted(by_rate)]
    return _one(conn, f"UPDATE agent_memories SET strength = GREATEST(0.0, strength - (%s - {anchor}) * {per_second}), "
                      f"updated_at = %s WHERE permanent = 0 AND strength > %s AND (%s - {anchor}) * {per_second} > %s",
                (now, *groups, now, sqlite_baselines.MIN_CHANGE, now, *groups, sqlite_baselines.MIN_CHANGE))


def memories_prune(conn, now, below=0.1):
    """`memories prune --below 0.1 --keep 1000000`: no agent reaches a cap of a
    million, so the weak ones go: one DELETE."""
    return _one(conn, "DELETE FROM agent_memories WHERE permanent = 0 AND strength < %s", (below,))


def memories_prune_capped(conn, now, below=0.1):
    """`memories prune --below 0.1`: one DELETE over a row_number() window per
    agent (see bench/baselines.py)."""
    caps = {agent_id: cap for agent_id, (_, cap) in _settings(conn).items()}
    values = ", ".join("(%s, %s)" for _ in caps)
    params = [x for item in caps.items() for x in item]
    return _one(conn, (
        f"WITH caps(agent_id, cap) AS (VALUES {values}), "
        "ranked AS (SELECT m.id, m.permanent, m.strength, c.cap, row_number() OVER ("
        "  PARTITION BY m.agent_id ORDER BY m.permanent DESC, m.strength DESC, "
        "  coalesce(m.last_accessed_at, m.created_at) DESC, m.created_at DESC, m.id) AS n "
        "  FROM agent_memories m JOIN caps c ON c.agent_id = m.agent_id) "
        "DELETE FROM agent_memories WHERE id IN "
        "(SELECT id FROM ranked WHERE permanent = 0 AND (strength < %s OR n > cap))"), (*params, below))


def idempotency_prune(conn, now):
    return _one(conn, "DELETE FROM idempotency_keys WHERE created_at < %s", (now - 30 * DAY,))


CONVERSATION_MESSAGES = """
SELECT m.role, m.content, m.created_at
FROM work_items w
JOIN jobs j ON j.work_item_id = w.id
JOIN messages m ON m.job_id = j.id
WHERE w.session_key = %s AND j.agent_id = %s AND j.status = 'COMPLETED'
ORDER BY j.created_at, m.created_at, m.id
"""


def compaction_run(conn, now, idle=30 * 60):
    """`compaction run`: the loop of bench/baselines.py, on PostgreSQL."""
    disabled = sqlite_baselines.compaction_disabled(_agents(conn))
    with conn.cursor() as cur:
        cur.execute(sqlite_baselines.IDLE_CONVERSATIONS.replace("?", "%s"), (now - idle,))
        conversations = cur.fetchall()
    conn.commit()
    written = 0
    for session_key, agent_id in conversations:
        if agent_id in disabled:
            continue
        with conn.cursor() as cur:
            cur.execute(CONVERSATION_MESSAGES, (session_key, agent_id))
            rows = cur.fetchall()
        turns, open_turn = [], None
        for role, content, _ in rows:
            if role not in ("user", "assistant"):
                continue
            text = sqlite_baselines.message_text(content)
            if not text:
                continue
            if role == "user":
                open_turn = text
            elif open_turn is not None:
                turns.append(open_turn)
                open_turn = None
        if not turns:
            conn.rollback()
            continue
        with conn.cursor() as cur:
            cur.execute("INSERT INTO session_summaries (id, session_key, agent_id, summary, turn_count, "
                        "start_time, end_time, compacted_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (str(uuid.uuid4()), session_key, agent_id, sqlite_baselines.default_summary(turns),
                         len(turns), min(r[2] for r in rows), max(r[2] for r in rows), now))
            cur.execute("UPDATE sprite_sessions SET status = 'closed', last_active_at = %s "
                        "WHERE session_key = %s AND agent_id = %s AND status = 'active'",
                        (now, session_key, agent_id))
        conn.commit()
        written += 1
    return written


SCENARIOS = {
    "sessions-list-stale": sessions_list_stale,
    "sessions-close-stale": sessions_close_stale,
    "sessions-purge": sessions_purge,
    "memories-decay": memories_decay,
    "memories-prune": memories_prune,
    "memories-prune-capped": memories_prune_capped,
    "idempotency-prune": idempotency_prune,
    "compaction-run": compaction_run,
    "nothing-to-do": nothing_to_do,
    "nothing-to-find": nothing_to_find,
}


def main(argv=None) -> int:
    return sqlite_baselines.run_scenario(SCENARIOS, connect, "pg_baselines.py {scenarios} URL", argv)

if __name__ == "__main__":
    sys.exit(main())
