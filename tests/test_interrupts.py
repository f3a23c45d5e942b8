"""The contract of a bulk change that is stopped half-way (SIGINT, SIGTERM),
and of one that waits for another's turn: run as an operator runs them, in a
subprocess, on SQLite and PostgreSQL."""

import fcntl
import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest

from tests import factories as f
from tests.test_reliability import nitejarctl

STALE = 300_000
INTERRUPTED = re.compile(r"^interrupted: closed ([\d,]+) of ([\d,]+) stale sessions; "
                         r"the others are unchanged \(rerun to finish\)$")


def _fill(backend, url, n: int) -> None:
    """n stale active sessions, set-based."""
    old = int(time.time()) - 7200
    if backend == "sqlite":
        conn = sqlite3.connect(url)
        conn.execute(f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
            INSERT INTO sprite_sessions (id, sprite_name, session_id, session_key, agent_id, status,
                                         created_at, last_active_at)
            SELECT printf('s%07d', i), 'sprite', 'api-' || i, 'k' || (i % 100), 'agent', 'active', {old}, {old}
            FROM n""")
        conn.commit()
        conn.close()
        return
    import psycopg2

    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(f"""INSERT INTO sprite_sessions (id, sprite_name, session_id, session_key, agent_id, status,
                                                     created_at, last_active_at)
            SELECT 's' || lpad(i::text, 7, '0'), 'sprite', 'api-' || i, 'k' || (i % 100), 'agent', 'active',
                   {old}, {old}
            FROM generate_series(1, {n}) AS i""")
    conn.close()


def _closed(backend, url) -> set[str]:
    if backend == "sqlite":
        conn = sqlite3.connect(url)
        try:
            return {r[0] for r in conn.execute("SELECT id FROM sprite_sessions WHERE status = 'closed'")}
        finally:
            conn.close()
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM sprite_sessions WHERE status = 'closed'")
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def _any_closed(backend, url) -> bool:
    sql = "SELECT 1 FROM sprite_sessions WHERE status = 'closed' LIMIT 1"
    if backend == "sqlite":
        conn = sqlite3.connect(url)
        try:
            return conn.execute(sql).fetchone() is not None
        finally:
            conn.close()
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone() is not None
    finally:
        conn.close()


def _stop_half_way(backend, url, signum):
    """Start closing every stale session; send `signum` once a batch has committed."""
    proc = subprocess.Popen([*nitejarctl(), "sessions", "close", "--stale", "1h", "-o", "ids", "-d", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _any_closed(backend, url):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_change_prints_what_it_committed(backend, db_url, signum, code):
    _fill(backend, db_url, STALE)
    returncode, out, err = _stop_half_way(backend, db_url, signum)
    closed = _closed(backend, db_url)
    assert returncode == code, err
    assert 0 < len(closed) < STALE, "the change should have been stopped half-way"
    assert set(out.split()) == closed and len(out.split()) == len(closed)  # every committed row, once
    lines = err.splitlines()
    assert len(lines) == 1, err
    done, total = (int(n.replace(",", "")) for n in INTERRUPTED.match(lines[0]).groups())
    assert (done, total) == (len(closed), STALE)
    rerun = subprocess.run([*nitejarctl(), "sessions", "close", "--stale", "1h", "-q", "-o", "ids", "-d", db_url],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len(rerun.stdout.split()) == STALE - done and len(_closed(backend, db_url)) == STALE


def test_sigterm_kills_the_summarizer_with_its_process_group(backend, db, db_url, tmp_path):
    start = int(time.time()) - 7200
    agent = f.agent("ops")
    f.conversation("tg:1", agent["id"], [("user", "q"), ("assistant", "a")], start=start)
    pidfile = tmp_path / "summarizer.pid"
    proc = subprocess.Popen([*nitejarctl(), "compaction", "run", "-d", db_url, "--summarizer",
                             f"sleep 60 & echo $! > {pidfile}; wait"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    child = int(pidfile.read_text())
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert err.splitlines()[-1] == "interrupted: nothing was changed"
    for _ in range(100):  # the grandchild is gone (or a zombie nobody reaped yet)
        try:
            with open(f"/proc/{child}/stat") as stat:
                if stat.read().split(") ", 1)[1].startswith("Z"):
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the summarizer's child {child} outlived nitejarctl")


def test_waiting_for_another_change_is_said_and_bounded(backend, db_url):
    f_args = ["sessions", "close", "--stale", "1h", "-o", "ids", "-d", db_url, "--lock-wait", "1.5"]
    if backend == "postgresql":  # row locks: bulk changes need not take turns there
        result = subprocess.run([*nitejarctl(), *f_args], capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stderr) == (0, "closed 0 sessions\n")
        return
    fd = os.open(db_url + "-nitejarctl.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another bulk change's turn
    try:
        result = subprocess.run([*nitejarctl(), *f_args], capture_output=True, text=True, timeout=60)
        quiet = subprocess.run([*nitejarctl(), *f_args, "-q"], capture_output=True, text=True, timeout=60)
    finally:
        os.close(fd)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("waiting for another nitejarctl bulk change on this database to finish…\n"
                             "Error: another nitejarctl bulk change on this database did not finish within "
                             "1.5 s (--lock-wait); nothing was changed\n")
    assert quiet.returncode == 1 and quiet.stderr.count("\n") == 1 and quiet.stderr.startswith("Error: ")


def test_a_symlink_in_place_of_the_lock_file_is_refused(sqlite_url, tmp_path):
    """The turn lock is a file next to a SQLite database (PostgreSQL has none)."""
    target = tmp_path / "victim"
    os.symlink(target, sqlite_url + "-nitejarctl.lock")
    result = subprocess.run([*nitejarctl(), "sessions", "close", "--stale", "1h", "-d", sqlite_url],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "is a symbolic link: refusing to follow it" in result.stderr and not target.exists()
