"""Reliability on a database large enough that each maintenance command takes
seconds (SPEC §3.2), on the benchmark generator's data.

* Beside a process that writes as nitejar does (WAL, busy timeout 5 s, short
  transactions inserting messages, touching sessions and memories), `sessions
  close --stale`, `sessions purge`, `memories decay` and `compaction run`
  succeed, the writer never fails to get the lock, and none of its writes is
  lost or undone.
* `compaction run` killed with SIGKILL at random moments, again and again, never
  leaves a summary without its sessions closed or the reverse, nor a duplicate;
  `PRAGMA integrity_check` stays ok; a rerun finishes the work exactly as an
  uninterrupted run does.

On PostgreSQL, where writers wait only for the rows another transaction
holds, the same writer runs beside the same commands on the same data: none
of its transactions waits more than 2 s (each batch holds its rows for about
a second), and nothing it writes is lost. The kills are SQLite cases (crash
safety on PostgreSQL is covered by tests/test_compaction.py on both backends).

CI runs them at the generator's "ci" size (about a minute in all); for the
full size set NITEJARCTL_RELIABILITY_SCALE=large (see bench/README.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import factories as f
from tests.helpers.generated import generator

ROOT = Path(__file__).resolve().parents[1]
SCALE = os.environ.get("NITEJARCTL_RELIABILITY_SCALE", "ci")
KILLS = int(os.environ.get("NITEJARCTL_RELIABILITY_KILLS", "8" if SCALE == "ci" else "25"))
# nitejar's writers give up after 5 s; with one command at a time, whose batches
# commit after ~0.25 s of work each, the writer should never come near that.
LONGEST_WAIT = 3.0
# PostgreSQL: a batch holds the rows it changes for about 0.4 s; the writer
# waits on no one row longer than this.
LONGEST_ROW_WAIT = 2.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The generator's database at SCALE (made once; each test works on a copy)."""
    path = tmp_path_factory.mktemp("reliability") / f"{SCALE}.db"
    meta = generator().generate(str(path), SCALE, 1)
    return path, meta


def copy_of(generated, tmp_path, name="nitejar.db") -> str:
    source, _ = generated
    target = tmp_path / name
    shutil.copyfile(source, target)
    return str(target)


def nitejarctl() -> list[str]:
    exe = shutil.which("nitejarctl")
    return [exe] if exe else [sys.executable, "-m", "nitejarctl"]


def integrity(path: str) -> list:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


def _bench(name: str):
    """A module of bench/ (pg.py and pg_server.py import their neighbours)."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def pg_generated(generated, pg_server):
    """The generator's data on PostgreSQL, as bench/pg.py loads it: (server,
    template); each test works on a copy (`server.copy_database`)."""
    if pg_server is None:
        pytest.skip("PostgreSQL server binaries (initdb) not found on this machine")
    module = _bench("pg_server")
    path, meta = generated
    template = f"reliability_{os.getpid()}"
    server = module.Server(pg_server.admin_url, template=template)
    module.load(server, str(path), meta, nitejarctl()[0] if len(nitejarctl()) == 1 else "nitejarctl",
                lambda message: None)
    yield server, template
    server.drop(template)


class Database:
    """Queries on the test's database, SQLite file or PostgreSQL URL alike."""

    def __init__(self, db: str):
        self.postgres = db.startswith("postgresql://")
        if self.postgres:
            import psycopg2

            self.conn = psycopg2.connect(db)
        else:
            self.conn = sqlite3.connect(db)

    def one(self, sql: str, params=()):
        cursor = self.conn.cursor()
        cursor.execute(sql.replace("?", "%s") if self.postgres else sql, params)
        return cursor.fetchone()

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------- the writer


class Writer:
    """tests/helpers/nitejar_writer.py, running until stopped."""

    def __init__(self, db: str, tmp_path: Path):
        self.db = db
        self.out = tmp_path / "writer.json"
        self.stop_file = tmp_path / "writer.stop"
        self.messages_before = self._messages()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.nitejar_writer", db, "--seconds", "900",
             "--stop-file", str(self.stop_file), "--touch-memories", "--out", str(self.out), "--seed", "7",
             *(["--lock-timeout", str(LONGEST_ROW_WAIT)] if db.startswith("postgresql://") else [])],
            cwd=ROOT)

    def _messages(self) -> int:
        conn = Database(self.db)
        try:
            return conn.one("SELECT count(*) FROM messages")[0]
        finally:
            conn.close()

    def under_way(self, timeout: float = 60.0) -> None:
        """Once the writer has committed (each of its transactions inserts a
        message and touches a session), and half a second more."""
        deadline = time.monotonic() + timeout
        while self._messages() == self.messages_before:
            assert self.proc.poll() is None, "the writer stopped"
            assert time.monotonic() < deadline, "the writer committed nothing"
            time.sleep(0.05)
        time.sleep(0.5)

    def stop(self) -> dict:
        self.stop_file.write_text("")
        self.proc.wait(timeout=60)
        assert self.proc.returncode == 0
        with open(self.out) as fh:
            return json.load(fh)


MAINTENANCE = [
    ("sessions", "close", "--stale", "1h"),
    ("sessions", "purge", "--older-than", "1d", "--yes"),
    ("memories", "decay"),
    ("compaction", "run"),
]


def run_command(args, db: str, *extra) -> dict:
    started = time.time()
    done = subprocess.run([*nitejarctl(), *args, "-d", db, "-q", "-o", "ids", *extra], capture_output=True,
                          text=True, timeout=900)
    return {"args": args, "code": done.returncode, "stderr": done.stderr, "ids": done.stdout.split(),
            "start": started, "end": time.time()}


def check_the_writer(db: str, written: dict, runs: list[dict], longest_wait: float = LONGEST_WAIT) -> dict:
    """Everything the writer did is still there; returns figures for the report."""
    assert written["failures"] == [], written["failures"][:3]
    assert written["committed"] > 0
    if db.startswith("postgresql://"):
        # Each wait is for one row a batch holds; one transaction may meet two
        # changes' rows (a session, then a memory), each waited for on its own.
        assert written["slowest_statement"] < longest_wait, (written["slowest_statement"], written["slowest_sql"])
    else:
        assert written["slowest_transaction"] < longest_wait, written["slowest_transaction"]
    for run in runs:
        during = sum(run["start"] <= t <= run["end"] for t in written["commits"])
        # the command never held the write lock for long: nitejar kept writing meanwhile
        assert during >= 1, f"no write committed during {' '.join(run['args'])}"
        run["writes_during"] = during
    conn = Database(db)
    try:
        kept = 0
        ids = written["inserted"]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            kept += conn.one(f"SELECT count(*) FROM messages WHERE id IN ({','.join('?' * len(chunk))})", chunk)[0]
        assert kept == len(ids), f"{len(ids) - kept} of the writer's messages are gone"
        last_touch: dict = {}
        for session, value, _ in written["session_touches"]:
            last_touch[session] = max(value, last_touch.get(session, 0))
        for session, value in last_touch.items():
            row = conn.one("SELECT last_active_at FROM sprite_sessions WHERE id = ?", (session,))
            assert row is not None, f"session {session} the writer touched is gone"
            assert row[0] >= value, f"session {session}: the writer's touch was undone"
        counts: dict = {}
        for memory, _ in written["memory_touches"]:
            counts[memory] = counts.get(memory, 0) + 1
        for memory, n in counts.items():
            row = conn.one("SELECT access_count FROM agent_memories WHERE id = ?", (memory,))
            assert row is not None and row[0] == written["memories_before"][memory] + n, (
                f"memory {memory}: an access the writer recorded was lost")
    finally:
        conn.close()
    if not conn.postgres:
        assert integrity(db) == [("ok",)]
    return {"transactions": written["committed"], "messages_kept": kept,
            "sessions_touched": len(last_touch), "memory_accesses": sum(counts.values()),
            "slowest_transaction_s": round(written["slowest_transaction"], 3),
            "longest_wait_s": round(written["slowest_statement"], 3),
            "slowest_statement": written["slowest_sql"] and [written["slowest_sql"][0][:40], written["slowest_sql"][1]]}


def report(title: str, figures: dict, runs: list[dict]) -> None:
    print(f"\n{title} ({SCALE} scale): {json.dumps(figures)}")
    for run in runs:
        print(f"  {' '.join(run['args']):<40} exit {run['code']}  {run['end'] - run['start']:6.2f}s  "
              f"{len(run['ids']):>7} rows  {run.get('writes_during', '-')} writer commits meanwhile")


def test_maintenance_beside_a_nitejar_writer(generated, tmp_path):
    db = copy_of(generated, tmp_path)
    writer = Writer(db, tmp_path)
    try:
        writer.under_way()  # the writer is under way
        runs = [run_command(args, db) for args in MAINTENANCE]
        time.sleep(0.3)
    finally:
        written = writer.stop()
    for run in runs:
        assert (run["code"], run["stderr"]) == (0, ""), run["args"]
        assert run["ids"], f"{' '.join(run['args'])} changed nothing: the test would prove nothing"
    figures = check_the_writer(db, written, runs)
    # A session the writer touched before the close began was not stale any more: not closed.
    close = runs[0]
    touched_before = {s for s, _, done in written["session_touches"] if done < close["start"]}
    assert touched_before, "the writer touched nothing before the close"
    assert not touched_before & set(close["ids"]), "sessions closed although just touched"
    report("beside a writer, one command after the other", figures, runs)


def test_maintenance_beside_a_nitejar_writer_on_postgresql(pg_generated, tmp_path):
    server, template = pg_generated
    db = server.copy_database(f"{template}_one", template)
    try:
        writer = Writer(db, tmp_path)
        try:
            writer.under_way()
            runs = [run_command(args, db) for args in MAINTENANCE]
            time.sleep(0.3)
        finally:
            written = writer.stop()
        for run in runs:
            assert (run["code"], run["stderr"]) == (0, ""), run["args"]
            assert run["ids"], f"{' '.join(run['args'])} changed nothing: the test would prove nothing"
        figures = check_the_writer(db, written, runs, longest_wait=LONGEST_ROW_WAIT)
        close = runs[0]
        touched_before = {s for s, _, done in written["session_touches"] if done < close["start"]}
        assert touched_before and not touched_before & set(close["ids"]), "sessions closed although just touched"
    finally:
        server.drop(f"{template}_one")
    report("PostgreSQL, beside a writer, one command after the other", figures, runs)


def test_all_four_at_once_beside_a_nitejar_writer_on_postgresql(pg_generated, tmp_path):
    """Bulk changes on PostgreSQL do not take turns: they lock the rows they
    change in one order (their physical order), so that they never deadlock
    each other, and nitejar's writer waits no longer than beside one alone."""
    from concurrent.futures import ThreadPoolExecutor

    server, template = pg_generated
    db = server.copy_database(f"{template}_four", template)
    try:
        writer = Writer(db, tmp_path)
        try:
            writer.under_way()
            with ThreadPoolExecutor(len(MAINTENANCE)) as pool:
                runs = list(pool.map(lambda args: run_command(args, db), MAINTENANCE))
            time.sleep(0.3)
        finally:
            written = writer.stop()
        for run in runs:
            assert (run["code"], run["stderr"]) == (0, ""), run["args"]
        figures = check_the_writer(db, written, runs, longest_wait=LONGEST_ROW_WAIT)
    finally:
        server.drop(f"{template}_four")
    report("PostgreSQL, beside a writer, all four at once", figures, runs)


def test_all_four_at_once_beside_a_nitejar_writer(generated, tmp_path):
    db = copy_of(generated, tmp_path)
    writer = Writer(db, tmp_path)
    try:
        writer.under_way()
        from concurrent.futures import ThreadPoolExecutor

        # Each of the four waits for the other three's batches as well as for nitejar's
        # writes: like an operator running several at once, give them a longer busy
        # timeout. nitejar's writer keeps its 5 s.
        with ThreadPoolExecutor(len(MAINTENANCE)) as pool:
            runs = list(pool.map(lambda args: run_command(args, db, "--busy-timeout", "60"), MAINTENANCE))
        time.sleep(0.3)
    finally:
        written = writer.stop()
    for run in runs:
        assert (run["code"], run["stderr"]) == (0, ""), run["args"]
    # Four bulk writers and nitejar's compete for one lock, with no fairness between
    # them: only nitejar's own limit holds (its transactions never fail).
    figures = check_the_writer(db, written, runs, longest_wait=5.0)
    report("beside a writer, all four at once", figures, runs)


def test_backup_beside_a_nitejar_writer(generated, tmp_path):
    """`backup` while nitejar writes: the writer never fails nor waits long, and
    the copy is one consistent snapshot — of the writer's messages it holds
    exactly those committed up to one moment."""
    db = copy_of(generated, tmp_path)
    dest = tmp_path / "backup.db"
    writer = Writer(db, tmp_path)
    try:
        time.sleep(0.5)
        started = time.time()
        done = subprocess.run([*nitejarctl(), "backup", str(dest), "-d", db, "-q", "-o", "json"],
                              capture_output=True, text=True, timeout=900)
        run = {"args": ["backup", "DEST"], "code": done.returncode, "stderr": done.stderr, "ids": [],
               "start": started, "end": time.time()}
        time.sleep(0.3)
    finally:
        written = writer.stop()
    assert (run["code"], run["stderr"]) == (0, "")
    figures = check_the_writer(db, written, [run])
    copied = json.loads(done.stdout)
    assert integrity(str(dest)) == [("ok",)]
    conn = sqlite3.connect(dest)
    try:
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in copied["rows"]}
        inserted = written["inserted"]
        present = set()
        for start in range(0, len(inserted), 500):
            chunk = inserted[start:start + 500]
            present |= {r[0] for r in conn.execute(
                f"SELECT id FROM messages WHERE id IN ({','.join('?' * len(chunk))})", chunk)}
    finally:
        conn.close()
    assert counts == copied["rows"]
    assert present == set(inserted[:len(present)]), "the backup is not one snapshot of the writer's commits"
    assert 0 < len(present) < len(inserted), (len(present), len(inserted))
    figures.update(backup_bytes=copied["bytes"], writer_messages_in_backup=len(present))
    report_line = {**run, "ids": [None] * sum(counts.values())}
    report("backup beside a writer", figures, [report_line])


# ------------------------------------------------------------- SIGKILL


def new_summaries(db: str, original: set) -> dict:
    """(session_key, agent_id) -> [(summary, turn_count, start_time, end_time)] of the
    summaries written since `original` (the ids there were)."""
    conn = sqlite3.connect(db)
    try:
        found: dict = {}
        for sid, key, agent, summary, turns, start, end in conn.execute(
                "SELECT id, session_key, agent_id, summary, turn_count, start_time, end_time "
                "FROM session_summaries"):
            if sid not in original:
                found.setdefault((key, agent), []).append((summary, turns, start, end))
        return found
    finally:
        conn.close()


def check_consistent(db: str, original: set, active_before: dict) -> int:
    """No duplicate, and for every conversation: a new summary if and only if all
    the sprite sessions that were active before are closed. Returns how many
    conversations are compacted."""
    summaries = new_summaries(db, original)
    duplicates = [k for k, v in summaries.items() if len(v) > 1]
    assert not duplicates, f"duplicate summaries: {duplicates[:3]}"
    conn = sqlite3.connect(db)
    try:
        for conv, ids in active_before.items():
            marks = ",".join("?" * len(ids))
            statuses = {r[0] for r in conn.execute(f"SELECT status FROM sprite_sessions WHERE id IN ({marks})", ids)}
            if conv in summaries:
                assert statuses == {"closed"}, f"{conv}: summary written but sessions {statuses}"
            else:
                assert statuses == {"active"}, f"{conv}: no summary but sessions {statuses}"
    finally:
        conn.close()
    return len(summaries)


def test_sigkill_during_compaction_at_random_moments(generated, tmp_path):
    reference = copy_of(generated, tmp_path, "reference.db")
    conn = sqlite3.connect(reference)
    original = {r[0] for r in conn.execute("SELECT id FROM session_summaries")}
    active_before: dict = {}
    for sid, key, agent in conn.execute(
            "SELECT s.id, s.session_key, s.agent_id FROM sprite_sessions s WHERE s.status = 'active' "
            "AND EXISTS (SELECT 1 FROM work_items w WHERE w.session_key = s.session_key)"):
        active_before.setdefault((key, agent), []).append(sid)
    conn.close()
    # batches of 20 conversations: many commits, so that kills land in and between them
    cmd = [*nitejarctl(), "compaction", "run", "-q", "-o", "ids", "--batch-size", "20"]

    # The uninterrupted run, in two parts: up to the first summary (start-up and the
    # search for idle conversations), then the rest.
    began = time.monotonic()
    first = subprocess.run([*cmd, "--limit", "1", "-d", reference], capture_output=True, text=True, timeout=900)
    startup = time.monotonic() - began
    began = time.monotonic()
    rest = subprocess.run([*cmd, "-d", reference], capture_output=True, text=True, timeout=900)
    work = measured = time.monotonic() - began - startup
    assert (first.returncode, rest.returncode) == (0, 0), first.stderr + rest.stderr
    expected = new_summaries(reference, original)
    assert len(expected) > 100

    rng = random.Random(int(os.environ.get("NITEJARCTL_RELIABILITY_SEED", str(os.getpid()))))
    chain_length = 4
    kills, chains, mid_run = [], 0, 0
    # KILLS kills, and more (up to three times as many) until two of them landed mid-run:
    # the uninterrupted run's timing is one measurement on a machine that may be busy.
    while len(kills) < KILLS or (mid_run < 2 and len(kills) < 3 * KILLS):
        # A chain: kill, check, kill the next run (it resumes), … then a run to the end.
        db = copy_of(generated, tmp_path, f"killed-{chains}.db")
        chains += 1
        done = 0
        for _ in range(min(chain_length, max(KILLS - len(kills), 1))):
            left = 1 - done / len(expected)
            moment = rng.uniform(0.05, startup + 1.2 * work * left)
            proc = subprocess.Popen([*cmd, "-d", db], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(moment)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert integrity(db) == [("ok",)]
            now_done = check_consistent(db, original, active_before)
            assert now_done >= done
            mid_run += 0 < now_done - done and now_done < len(expected)
            kills.append((round(moment, 2), now_done))
            if now_done == len(expected) and moment > startup:
                # that run was done by this moment: the writing takes no longer than that
                work = min(work, (moment - startup) / (1.2 * left))
            done = now_done
            if done == len(expected):  # the killed run had finished: no kill is left to land in this chain
                break
        final = subprocess.run([*cmd, "-d", db], capture_output=True, text=True, timeout=900)
        assert final.returncode == 0, final.stderr
        assert integrity(db) == [("ok",)]
        assert check_consistent(db, original, active_before) == len(expected)
        assert new_summaries(db, original) == expected  # the same summaries as an uninterrupted run
    assert mid_run >= 2, kills  # kills landed while summaries were being written
    again = subprocess.run([*cmd, "-d", db], capture_output=True, text=True, timeout=900)
    assert (again.returncode, again.stdout) == (0, "")
    print(f"\nSIGKILL ({SCALE} scale): {len(kills)} kills in {chains} chains, (moment s, summaries) = {kills}; "
          f"{mid_run} mid-run; uninterrupted: start-up {startup:.2f}s + {measured:.2f}s, {len(expected)} summaries; "
          "every chain's rerun wrote exactly those")


# ------------------------------------------------------ PostgreSQL plans


def test_postgresql_batches_read_their_range(pg_generated):
    """The same data on PostgreSQL: the batches of close --stale, purge and
    decay read their own range of rows (Tid Range Scan) or go through an index
    (EXPLAIN ANALYZE of a batch from the middle), never a full scan; prune,
    which the planner expects to be small, is one statement (its rows found
    the planner's way, then changed by address: a Tid Scan)."""
    pg = _bench("pg")
    server, template = pg_generated
    plans = {s.name: pg.check_plans(server, template, s) for s in pg.SCENARIOS
             if s.name in ("sessions-close-stale", "sessions-purge", "memories-decay", "memories-prune")}
    print(f"\nPostgreSQL plans ({SCALE} scale):")
    for scenario, (head, plan, _) in plans.items():
        print(f"-- {scenario}: {head}\n{plan}")
    for scenario, (head, plan, ok) in plans.items():
        assert ok, f"{scenario}: a batch reads the table without its range or an index:\n{plan}"
        if not head.startswith("1 batch;"):
            assert "Seq Scan" not in plan, plan
    # A change the planner expects to be small is one statement, not a walk over every page.
    assert plans["memories-prune"][0].startswith("1 batch;"), plans["memories-prune"][0]


def test_compaction_closes_sessions_with_the_time_it_got_the_lock(sqlite_url):
    """A session nitejar touches while compaction waits for the write lock is
    closed with a last_active_at no older than that touch."""
    from nitejarctl.db import open_database, parse_url

    open_database(parse_url(sqlite_url))
    start = int(time.time()) - 2 * 3600
    agent = f.agent("ops")
    f.conversation("tg:lock", agent["id"], [("user", "deploy"), ("assistant", "done")], start=start)
    session = f.sprite_session(agent["id"], "tg:lock", last_active_at=start)
    holder = sqlite3.connect(sqlite_url, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # nitejar holds the write lock
        proc = subprocess.Popen([*nitejarctl(), "compaction", "run", "-q", "-o", "ids", "-d", sqlite_url,
                                 "--busy-timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)  # compaction has found the conversation and waits for the lock
        time.sleep(1 - time.time() % 1)  # a second compaction's clock has not reached yet
        touched = int(time.time())
        holder.execute("UPDATE sprite_sessions SET last_active_at = ? WHERE id = ?", (touched, session["id"]))
        holder.execute("COMMIT")
        out, err = proc.communicate(timeout=60)
    finally:
        holder.close()
    assert (proc.returncode, err, len(out.split())) == (0, "", 1)
    conn = sqlite3.connect(sqlite_url)
    try:
        status, last = conn.execute("SELECT status, last_active_at FROM sprite_sessions WHERE id = ?",
                                    (session["id"],)).fetchone()
    finally:
        conn.close()
    assert status == "closed" and last >= touched


def test_compaction_on_postgresql_closes_sessions_with_the_time_it_locked_them(pg_url):
    """On PostgreSQL nitejar may touch a session until compaction has locked
    its row: the session is closed with a last_active_at no older than that touch."""
    import psycopg2

    from nitejarctl.db import open_database, parse_url

    database = open_database(parse_url(pg_url))
    start = int(time.time()) - 2 * 3600
    agent = f.agent("ops")
    f.conversation("tg:lock", agent["id"], [("user", "deploy"), ("assistant", "done")], start=start)
    session = f.sprite_session(agent["id"], "tg:lock", last_active_at=start)
    database.close()
    holder = psycopg2.connect(pg_url)
    try:
        with holder.cursor() as cur:  # nitejar's touch, not committed yet: the row is locked
            cur.execute("UPDATE sprite_sessions SET last_active_at = %s WHERE id = %s", (start, session["id"]))
            proc = subprocess.Popen([*nitejarctl(), "compaction", "run", "-q", "-o", "ids", "-d", pg_url],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 60
            while not _waits_for_a_row_lock(pg_url):  # compaction waits for the session's row
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.05)
            time.sleep(1 - time.time() % 1)  # a second compaction's clock had not reached yet
            touched = int(time.time())
            cur.execute("UPDATE sprite_sessions SET last_active_at = %s WHERE id = %s", (touched, session["id"]))
        holder.commit()
        out, err = proc.communicate(timeout=60)
    finally:
        holder.close()
    assert (proc.returncode, err, len(out.split())) == (0, "", 1)
    check = psycopg2.connect(pg_url)
    try:
        with check.cursor() as cur:
            cur.execute("SELECT status, last_active_at FROM sprite_sessions WHERE id = %s", (session["id"],))
            status, last = cur.fetchone()
    finally:
        check.close()
    assert status == "closed" and last >= touched


def _waits_for_a_row_lock(url: str) -> bool:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND query ILIKE '%FOR UPDATE%'")
            return cur.fetchone()[0] > 0
    finally:
        conn.close()
