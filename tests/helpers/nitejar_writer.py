"""Writes to a database the way nitejar does, for concurrency tests.

Short write transactions: each inserts a message into a job and touches an
active sprite session (and, with --touch-memories, records an access to a
memory, as nitejar's memory retrieval does). On SQLite: WAL, busy timeout
5 s, BEGIN IMMEDIATE; on PostgreSQL (a postgresql:// URL) the driver's
default transaction, where a row another transaction holds is waited for.
Runs for --seconds or until --stop-file exists, then writes one JSON document
to --out: the ids it inserted, how many transactions committed and how many
failed (on SQLite: giving up on the lock after the busy timeout), the slowest
transaction, the slowest single statement (how long the writer waited on one
lock, at most: SQLite's write lock at BEGIN, a row on PostgreSQL; with the
statement and when it ended), when each commit happened, and what it
touched (with the values it wrote). On PostgreSQL `--lock-timeout S` makes a
statement that waits longer than S seconds for a lock fail (a failure in the
document), which tells a wait for a lock from a statement slow for another
reason (a busy disk).

    python -m tests.helpers.nitejar_writer DB --seconds 10 --out result.json
    python -m tests.helpers.nitejar_writer postgresql://… --stop-file stop --touch-memories --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid


class Sqlite:
    param = "?"
    begin = "BEGIN IMMEDIATE"
    slowest_statement = 0.0
    slowest_sql = None  # (statement, when it ended)

    def __init__(self, path: str):
        import sqlite3

        self.errors = (sqlite3.OperationalError,)
        self.conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.conn.execute("PRAGMA foreign_keys = ON")

    def _timed(self, sql: str, seconds: float) -> None:
        if seconds > self.slowest_statement:
            self.slowest_statement, self.slowest_sql = seconds, (sql, time.time())

    def rows(self, sql: str, params=()) -> list:
        return self.conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params=()) -> None:
        started = time.monotonic()
        try:
            self.conn.execute(sql, params)
        finally:
            self._timed(sql, time.monotonic() - started)

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()


class Postgres(Sqlite):
    param = "%s"
    begin = None  # psycopg2 begins a transaction with the first statement

    def __init__(self, url: str, lock_timeout: float | None = None):
        import psycopg2

        self.errors = (psycopg2.Error,)
        self.conn = psycopg2.connect(url)
        self.cursor = self.conn.cursor()
        if lock_timeout is not None:
            self.cursor.execute(f"SET lock_timeout = {int(lock_timeout * 1000)}")
            self.conn.commit()

    def rows(self, sql: str, params=()) -> list:
        self.cursor.execute(sql.replace("?", "%s"), params)
        rows = self.cursor.fetchall()
        self.conn.commit()
        return rows

    def execute(self, sql: str, params=()) -> None:
        started = time.monotonic()
        try:
            self.cursor.execute(sql.replace("?", "%s"), params)
        finally:
            self._timed(sql, time.monotonic() - started)

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db", help="a SQLite file or a postgresql:// URL")
    parser.add_argument("--seconds", type=float, default=10.0, help="stop after this long at the latest")
    parser.add_argument("--stop-file", help="stop as soon as this file exists")
    parser.add_argument("--out", required=True)
    parser.add_argument("--pause", type=float, default=0.005)
    parser.add_argument("--touch-memories", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--lock-timeout", type=float, default=None, help="PostgreSQL: seconds")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    db = Postgres(args.db, args.lock_timeout) if args.db.startswith(("postgres://", "postgresql://")) else Sqlite(args.db)
    jobs = [r[0] for r in db.rows("SELECT id FROM jobs WHERE status = 'COMPLETED' ORDER BY id LIMIT 500")]
    sessions = [r[0] for r in db.rows(
        "SELECT id FROM sprite_sessions WHERE status = 'active' ORDER BY random() LIMIT 500")]
    memories = {}
    if args.touch_memories:
        memories = dict(db.rows("SELECT id, access_count FROM agent_memories ORDER BY random() LIMIT 500"))
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
            if db.begin:
                db.execute(db.begin)
            now = int(time.time())
            db.execute("INSERT INTO messages (id, job_id, role, content, created_at) VALUES (?, ?, 'user', ?, ?)",
                       (message_id, rng.choice(jobs), json.dumps({"text": "ping"}), now))
            if session:
                db.execute("UPDATE sprite_sessions SET last_active_at = ? WHERE id = ?", (now, session))
            if memory:
                db.execute("UPDATE agent_memories SET access_count = access_count + 1, "
                           "last_accessed_at = ? WHERE id = ?", (now, memory))
            db.commit()
            done = time.time()
            inserted.append(message_id)
            committed += 1
            commits.append(done)
            if session:
                session_touches.append((session, now, done))
            if memory:
                memory_touches.append((memory, now))
        except db.errors as exc:
            failures.append(str(exc))
            db.rollback()
        slowest = max(slowest, time.monotonic() - start)
        time.sleep(args.pause)
    db.close()
    with open(args.out, "w") as fh:
        json.dump({"inserted": inserted, "committed": committed, "failures": failures,
                   "slowest_transaction": slowest,
                   "slowest_statement": db.slowest_statement, "slowest_sql": db.slowest_sql, "commits": commits,
                   "session_touches": session_touches, "memories_before": memories,
                   "memory_touches": memory_touches}, fh)


if __name__ == "__main__":
    main()
