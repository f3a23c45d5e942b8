"""The benchmarks' baselines: the same work as each nitejarctl command, done with
the standard library's sqlite3 module, as directly as possible.

    python bench/baselines.py SCENARIO DB_PATH

Each baseline is what an operator would write by hand: one set-based SQL
statement (in one transaction) for the bulk commands, and a straightforward
loop — one query and one transaction per conversation — for compaction.
They use "now" from the clock, like nitejarctl, and the connection settings a
nitejar process uses (foreign keys on, 5 s busy timeout, the file's WAL mode).
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
import time
import uuid

HOUR, DAY, WEEK = 3600, 86400, 7 * 86400

SESSION_FIELDS = ("id", "sprite_name", "session_id", "session_key", "agent_id", "status",
                  "created_at", "last_active_at")


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


# ------------------------------------------------------------------- sessions


def sessions_list_stale(conn, now):
    """`sessions list --stale 1h -o json`: one SELECT, streamed as a JSON array."""
    cursor = conn.execute(
        f"SELECT {', '.join(SESSION_FIELDS)} FROM sprite_sessions "
        "WHERE status = 'active' AND last_active_at < ? ORDER BY last_active_at, id",
        (now - HOUR,))
    write = sys.stdout.write
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    write("[")
    count = 0
    for row in cursor:
        write(("\n" if count == 0 else ",\n") + dumps(dict(zip(SESSION_FIELDS, row))))
        count += 1
    write("\n]\n" if count else "]\n")
    return count


def sessions_close_stale(conn, now):
    """`sessions close --stale 1h`: one UPDATE."""
    return conn.execute(
        "UPDATE sprite_sessions SET status = 'closed', last_active_at = ? "
        "WHERE status = 'active' AND last_active_at < ?", (now, now - HOUR)).rowcount


def sessions_purge(conn, now):
    """`sessions purge --older-than 1d`: one DELETE."""
    return conn.execute(
        "DELETE FROM sprite_sessions WHERE status IN ('closed', 'error') AND last_active_at < ?",
        (now - DAY,)).rowcount


# ------------------------------------------------------------------- memories

AGENTS = "SELECT id, config FROM agents"
DEFAULT_DECAY_RATE = 0.1
DEFAULT_MAX_STORED = 200
MIN_CHANGE = 0.001


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def memory_settings(agents) -> dict[str, tuple[float, int]]:
    """agent id -> (decay rate, memory cap) from config.memorySettings of the
    (id, config) rows `agents`, as nitejar validates them: decayRate in [0, 1]
    else 0.1; maxStoredMemories > 0 else 200."""
    settings = {}
    for agent_id, config in agents:
        try:
            parsed = json.loads(config) if config else {}
        except ValueError:
            parsed = {}
        ms = parsed.get("memorySettings") if isinstance(parsed, dict) else None
        ms = ms if isinstance(ms, dict) else {}
        rate, cap = ms.get("decayRate"), ms.get("maxStoredMemories")
        settings[agent_id] = (float(rate) if _number(rate) and 0 <= rate <= 1 else DEFAULT_DECAY_RATE,
                              int(math.floor(cap)) if _number(cap) and cap > 0 else DEFAULT_MAX_STORED)
    return settings


def memories_decay(conn, now):
    """`memories decay`: one UPDATE per distinct decay rate.
    strength = max(0, strength - weeks since the later of last access, creation
    and last change x rate), on non-permanent memories it lowers by > 0.001."""
    by_rate: dict[float, list[str]] = {}
    for agent_id, (rate, _) in memory_settings(conn.execute(AGENTS)).items():
        if rate > 0:
            by_rate.setdefault(rate, []).append(agent_id)
    anchor = "max(created_at, coalesce(last_accessed_at, created_at), updated_at)"
    total = 0
    conn.execute("BEGIN IMMEDIATE")
    for rate, agent_ids in sorted(by_rate.items()):
        per_second = rate / WEEK
        marks = ", ".join("?" * len(agent_ids))
        total += conn.execute(
            f"UPDATE agent_memories SET strength = max(0.0, strength - (? - {anchor}) * ?), "
            f"updated_at = ? WHERE agent_id IN ({marks}) AND permanent = 0 AND strength > ? "
            f"AND (? - {anchor}) * ? > ?",
            (now, per_second, now, *agent_ids, MIN_CHANGE, now, per_second, MIN_CHANGE)).rowcount
    conn.execute("COMMIT")
    return total


def memories_prune(conn, now, below=0.1):
    """`memories prune --below 0.1 --keep 1000000`: no agent reaches a cap of a
    million memories, so the weak ones go: one DELETE."""
    return conn.execute("DELETE FROM agent_memories WHERE permanent = 0 AND strength < ?", (below,)).rowcount


def memories_prune_capped(conn, now, below=0.1):
    """`memories prune --below 0.1`: one DELETE of the non-permanent memories
    below the threshold and of those beyond the agent's cap
    (config.memorySettings.maxStoredMemories, else 200). The survivors within
    the cap are the permanent ones first, then the strongest, most recently
    used first among equals."""
    caps = {agent_id: cap for agent_id, (_, cap) in memory_settings(conn.execute(AGENTS)).items()}
    values = ", ".join("(?, ?)" for _ in caps)
    params = [x for item in caps.items() for x in item]
    return conn.execute(
        f"WITH caps(agent_id, cap) AS (VALUES {values}), "
        "ranked AS (SELECT m.rowid AS rid, m.permanent, m.strength, c.cap, row_number() OVER ("
        "  PARTITION BY m.agent_id ORDER BY m.permanent DESC, m.strength DESC, "
        "  coalesce(m.last_accessed_at, m.created_at) DESC, m.created_at DESC, m.id) AS n "
        "  FROM agent_memories m JOIN caps c ON c.agent_id = m.agent_id) "
        "DELETE FROM agent_memories WHERE rowid IN "
        "(SELECT rid FROM ranked WHERE permanent = 0 AND (strength < ? OR n > cap))",
        (*params, below)).rowcount


# ---------------------------------------------------------------- idempotency


def idempotency_prune(conn, now):
    """`idempotency prune --older-than 30d`: one DELETE."""
    return conn.execute("DELETE FROM idempotency_keys WHERE created_at < ?",
                        (now - 30 * DAY,)).rowcount


# ----------------------------------------------------------------- compaction

IDLE_CONVERSATIONS = """
SELECT c.session_key, c.agent_id FROM (
    SELECT w.session_key, j.agent_id, max(m.created_at) AS last_message_at
    FROM messages m
    JOIN jobs j ON j.id = m.job_id
    JOIN work_items w ON w.id = j.work_item_id
    WHERE j.status = 'COMPLETED'
    GROUP BY w.session_key, j.agent_id) c
JOIN agents a ON a.id = c.agent_id
WHERE c.last_message_at < ?
  AND NOT EXISTS (SELECT 1 FROM session_summaries s
                  WHERE s.session_key = c.session_key AND s.agent_id = c.agent_id
                    AND s.end_time >= c.last_message_at)
ORDER BY c.session_key, c.agent_id
"""

# The unary + keeps SQLite (no statistics) from walking every job of the agent
# through idx_jobs_agent: the conversation is reached through its work items.
CONVERSATION_MESSAGES = """
SELECT m.role, m.content, m.created_at
FROM work_items w
JOIN jobs j ON j.work_item_id = w.id
JOIN messages m ON m.job_id = j.id
WHERE w.session_key = ? AND +j.agent_id = ? AND j.status = 'COMPLETED'
ORDER BY j.created_at, m.created_at, m.id
"""


def message_text(content) -> str:
    if content is None:
        return ""
    try:
        parsed = json.loads(content)
    except ValueError:
        return content
    if isinstance(parsed, dict):
        for key in ("text", "content"):
            if isinstance(parsed.get(key), str):
                return parsed[key]
        return ""
    if isinstance(parsed, str):
        return parsed
    return "" if isinstance(parsed, list) else content


def default_summary(turns: list[str]) -> str:
    """nitejar's summary: the first 50 characters of the first 5 turns' user messages."""
    topics = [text[:50] + ("..." if len(text) > 50 else "") for text in turns[:5]]
    summary = "Conversation topics: " + "; ".join(topics)
    if len(turns) > 5:
        summary += f" (and {len(turns) - 5} more exchanges)"
    return summary


def compaction_disabled(agents) -> set[str]:
    """The agents of the (id, config) rows `agents` whose config turns compaction off."""
    disabled = set()
    for agent_id, config in agents:
        try:
            compaction = (json.loads(config or "{}").get("sessionSettings") or {}).get("compaction") or {}
        except (ValueError, AttributeError):
            continue
        if compaction.get("enabled") is False:
            disabled.add(agent_id)
    return disabled


def compaction_run(conn, now, idle=30 * 60):
    """`compaction run`: every idle, un-compacted conversation -> one summary,
    and its active sprite sessions closed, one query and one transaction each."""
    disabled = compaction_disabled(conn.execute(AGENTS))
    conversations = conn.execute(IDLE_CONVERSATIONS, (now - idle,)).fetchall()
    written = 0
    for session_key, agent_id in conversations:
        if agent_id in disabled:
            continue
        rows = conn.execute(CONVERSATION_MESSAGES, (session_key, agent_id)).fetchall()
        turns, open_turn = [], None
        for role, content, _ in rows:
            if role not in ("user", "assistant"):
                continue
            text = message_text(content)
            if not text:
                continue
            if role == "user":
                open_turn = text
            elif open_turn is not None:
                turns.append(open_turn)
                open_turn = None
        if not turns:
            continue
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO session_summaries (id, session_key, agent_id, summary, turn_count, "
            "start_time, end_time, compacted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (str(uuid.uuid4()), session_key, agent_id, default_summary(turns), len(turns),
             min(r[2] for r in rows), max(r[2] for r in rows), now))
        # `+status`: through idx_sprite_sessions_session_key_agent, not every
        # active session through idx_sprite_sessions_status.
        conn.execute(
            "UPDATE sprite_sessions SET status = 'closed', last_active_at = ? "
            "WHERE session_key = ? AND agent_id = ? AND +status = 'active'",
            (now, session_key, agent_id))
        conn.execute("COMMIT")
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
}


def run_scenario(scenarios: dict, connect, usage: str, argv=None) -> int:
    """`SCENARIO WHERE` from the command line: run it on `connect(WHERE)` with
    "now" from the clock; its count on stderr (pg_baselines.py runs its own
    scenarios through this too)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in scenarios:
        print(f"usage: {usage.format(scenarios='{' + ','.join(scenarios) + '}')}", file=sys.stderr)
        return 2
    conn = connect(args[1])
    count = scenarios[args[0]](conn, int(time.time()))
    conn.close()
    print(f"{args[0]}: {count}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    return run_scenario(SCENARIOS, connect, "baselines.py {scenarios} DB_PATH", argv)


if __name__ == "__main__":
    sys.exit(main())
