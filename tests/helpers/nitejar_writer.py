"""Writes to a SQLite database the way nitejar does, for concurrency tests.

WAL, busy timeout 5 s, short write transactions: each inserts a message into a
job and touches an active sprite session (and, with --touch-memories, records
an access to a memory, as nitejar's memory retrieval does). Runs for --seconds
or until --stop-file exists, then writes one JSON document to --out: the ids it
inserted, how many transactions committed and how many failed (a failure is
SQLite giving up on the lock after the busy timeout), the slowest transaction,
when each commit happened, and what it touched (with the values it wrote).

    python -m tests.helpers.nitejar_writer DB --seconds 10 --out result.json
    python -m tests.helpers.nitejar_writer DB --stop-file stop --touch-memories --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--seconds", type=float, default=10.0, help="stop after this long at the latest")
    parser.add_argument("--stop-file", help="stop as soon as this file exists")
    parser.add_argument("--out", required=True)
    parser.add_argument("--pause", type=float, default=0.005)
    parser.add_argument("--touch-memories", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    conn = sqlite3.connect(args.db, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA foreign_keys = ON")
    jobs = [r[0] for r in conn.execute("SELECT id FROM jobs WHERE status = 'COMPLETED' LIMIT 500")]
    sessions = [r[0] for r in conn.execute(
        "SELECT id FROM sprite_sessions WHERE status = 'active' ORDER BY random() LIMIT 500")]
    memories = {}
    if args.touch_memories:
        memories = dict(conn.execute(
            "SELECT id, access_count FROM agent_memories ORDER BY random() LIMIT 500").fetchall())
    memory_ids = list(memories)
    inserted, committed, failures, slowest = [], 0, [], 0.0
    commits, session_touches, memory_touches = [], [], []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and not (args.stop_file and os.path.exists(args.stop_file)):
        message_id = str(uuid.uuid4())
        session = rng.choice(sessions) if sessions else None
        memory = rng.choice(memory_ids) if memory_ids else None
        start = time.monotonic()
        try:
            conn.execute("BEGIN IMMEDIATE")
            now = int(time.time())
            conn.execute("INSERT INTO messages (id, job_id, role, content, created_at) "
                         "VALUES (?, ?, 'user', ?, ?)",
                         (message_id, rng.choice(jobs), json.dumps({"text": "ping"}), now))
            if session:
                conn.execute("UPDATE sprite_sessions SET last_active_at = ? WHERE id = ?", (now, session))
            if memory:
                conn.execute("UPDATE agent_memories SET access_count = access_count + 1, "
                             "last_accessed_at = ? WHERE id = ?", (now, memory))
            conn.execute("COMMIT")
            done = time.time()
            inserted.append(message_id)
            committed += 1
            commits.append(done)
            if session:
                session_touches.append((session, now, done))
            if memory:
                memory_touches.append((memory, now))
        except sqlite3.OperationalError as exc:
            failures.append(str(exc))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        slowest = max(slowest, time.monotonic() - start)
        time.sleep(args.pause)
    conn.close()
    with open(args.out, "w") as fh:
        json.dump({"inserted": inserted, "committed": committed, "failures": failures,
                   "slowest_transaction": slowest, "commits": commits,
                   "session_touches": session_touches, "memories_before": memories,
                   "memory_touches": memory_touches}, fh)


if __name__ == "__main__":
    main()
