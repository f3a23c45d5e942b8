"""Writes to a SQLite database the way nitejar does, for concurrency tests.

WAL, busy timeout 5 s, short write transactions: each inserts a message into a
job and touches an active sprite session. Runs for --seconds, then prints one
JSON line: the ids it inserted, how many transactions committed and how many
failed (a failure is SQLite giving up on the lock after the busy timeout).

    python -m tests.helpers.nitejar_writer DB --seconds 10 --out result.json
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--pause", type=float, default=0.005)
    args = parser.parse_args()

    conn = sqlite3.connect(args.db, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA foreign_keys = ON")
    jobs = [r[0] for r in conn.execute("SELECT id FROM jobs WHERE status = 'COMPLETED' LIMIT 500")]
    sessions = [r[0] for r in conn.execute(
        "SELECT id FROM sprite_sessions WHERE status = 'active' LIMIT 500")]
    inserted, committed, failures, slowest = [], 0, [], 0.0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        message_id = str(uuid.uuid4())
        start = time.monotonic()
        try:
            conn.execute("BEGIN IMMEDIATE")
            now = int(time.time())
            conn.execute("INSERT INTO messages (id, job_id, role, content, created_at) "
                         "VALUES (?, ?, 'user', ?, ?)",
                         (message_id, random.choice(jobs), json.dumps({"text": "ping"}), now))
            if sessions:
                conn.execute("UPDATE sprite_sessions SET last_active_at = ? WHERE id = ?",
                             (now, random.choice(sessions)))
            conn.execute("COMMIT")
            inserted.append(message_id)
            committed += 1
        except sqlite3.OperationalError as exc:
            failures.append(str(exc))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        slowest = max(slowest, time.monotonic() - start)
        time.sleep(args.pause)
    conn.close()
    with open(args.out, "w") as fh:
        json.dump({"inserted": inserted, "committed": committed, "failures": failures,
                   "slowest_transaction": slowest}, fh)


if __name__ == "__main__":
    main()
