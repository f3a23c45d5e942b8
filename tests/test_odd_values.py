"""Values nitejar's databases hold that the schema does not promise — text in
an integer time column, a NULL status, a NUL in a session key, text that is
not UTF-8, a message of ten million characters — never crash a command: they
are shown as they are, one bad conversation fails alone (exit 4), and no
listing or bulk change stops for one row. On the SQLite fixture and its
PostgreSQL translation; where PostgreSQL cannot hold such a value (typed
integer columns, no NUL and only valid UTF-8 in text), the test shows that it
refuses it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from freezegun import freeze_time

from tests.conftest import Run
from tests.helpers.nitejar_rows import connect, execute
from tests.test_upstream import FROZEN, NOW, nitejar_url, populate  # noqa: F401  (nitejar_url: the fixture)

HOUR = 3600


@pytest.fixture
def populated(nitejar_url):  # noqa: F811
    populate(nitejar_url)
    return nitejar_url


def refused_by_postgresql(url, statement, params=()):
    """PostgreSQL will not store such a value: it cannot arise there."""
    import psycopg2

    conn, _ = connect(url)
    try:
        with pytest.raises((psycopg2.Error, ValueError)):
            conn.cursor().execute(statement, params)
    finally:
        conn.close()


def failures(run, commands, outputs=("json", "table")) -> list[str]:
    found = []
    for args in commands:
        for fmt in outputs:
            result = run(*args, "-o", fmt, env={"COLUMNS": "160"})
            if result.exit_code != 0 or "Traceback" in result.stderr or "unexpected" in result.stderr:
                found.append(f"{' '.join(args)} -o {fmt}: exit {result.exit_code}: {result.stderr.strip()[:300]}")
    return found


@freeze_time(FROZEN)
def test_text_in_an_integer_time_column(populated, backend):
    if backend == "postgresql":
        refused_by_postgresql(populated, "UPDATE agents SET created_at = '2024-01-01'")
        return
    execute(populated, "UPDATE agents SET created_at = '2024-01-01' WHERE id = 'ag-ops'",
            "UPDATE sprite_sessions SET last_active_at = 'yesterday' WHERE id = 'ss-stale'",
            "UPDATE messages SET created_at = 'soon' WHERE id = 'msg-2-sub'",
            "UPDATE agent_memories SET last_accessed_at = 'last week' WHERE id = 'mem-1'")
    run = Run(populated)
    commands = [("agents", "list"), ("agents", "show", "ops"), ("sessions", "list", "--status", "all"),
                ("sessions", "show", "ss-stale"), ("jobs", "show", "job-2-sub"), ("memories", "list"),
                ("memories", "show", "mem-1"), ("sessions", "stats"), ("doctor",)]
    assert failures(run, commands) == []
    assert json.loads(run("agents", "show", "ops", "-o", "json").stdout)["created_at"] == "2024-01-01"
    table = run("sessions", "show", "ss-stale", "-o", "table", env={"COLUMNS": "160"}).stdout
    assert "yesterday" in table
    # such a row is never taken for stale, idle or old: its age is unknown
    assert "ss-stale" not in run("sessions", "list", "--stale", "1h", "-o", "ids").stdout
    decay = run("memories", "decay", "--dry-run", "-o", "ids")
    assert decay.exit_code == 0 and "mem-1" not in decay.stdout.split()
    closed = run("sessions", "close", "--stale", "1h", "-o", "ids")
    assert (closed.exit_code, closed.stdout) == (0, "ss-conv\n")


def _nullable_status(url, backend):
    tables = ("agents", "sprite_sessions", "jobs", "work_items")
    if backend == "postgresql":
        execute(url, *(f"ALTER TABLE {t} ALTER COLUMN status DROP NOT NULL" for t in tables))
        return
    import re
    import sqlite3

    conn = sqlite3.connect(url)
    conn.execute("PRAGMA writable_schema = ON")
    for t in tables:  # as an older schema had it: the column without NOT NULL
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (t,)).fetchone()[0]
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = ?",
                     (re.sub(r'("status" text default \'\w+\') not null', r"\1", sql), t))
    conn.commit()
    conn.close()


def test_a_null_status(populated, backend):
    _nullable_status(populated, backend)
    execute(populated, "UPDATE agents SET status = NULL WHERE id = 'ag-dev'",
            "UPDATE sprite_sessions SET status = NULL WHERE id IN ('ss-misc', 'ss-stale')",
            "UPDATE jobs SET status = NULL WHERE id = 'job-1-sub'",
            "UPDATE work_items SET status = NULL WHERE id = 'wi-2'")
    run = Run(populated)
    commands = [("agents", "list"), ("agents", "show", "dev"), ("sessions", "list", "--status", "all"),
                ("sessions", "show", "ss-misc"), ("sessions", "stats"), ("jobs", "list"), ("jobs", "show", "job-1-sub"),
                ("work-items", "list"), ("work-items", "show", "wi-2"), ("compaction", "idle", "--all"), ("doctor",)]
    assert failures(run, commands) == []
    assert json.loads(run("agents", "show", "dev", "-o", "json").stdout)["status"] is None
    assert json.loads(run("sessions", "stats", "-o", "json").stdout)["by_status"]["null"] == 2
    closed = run("sessions", "close", "ss-misc", "-o", "json")
    assert closed.exit_code == 0, closed.stderr
    assert json.loads(closed.stdout)[0]["status"] == "closed"
    marked = run("sessions", "error", "ss-stale", "-o", "ids")
    assert (marked.exit_code, marked.stdout) == (0, "ss-stale\n")


SUMMARIZER = "cat"


@freeze_time(FROZEN)
def test_a_nul_in_a_session_key_fails_that_conversation_alone(populated, backend):
    if backend == "postgresql":
        refused_by_postgresql(populated, "UPDATE work_items SET session_key = %s WHERE id = 'wi-2'", ("k\x00x",))
        return
    execute(populated, "UPDATE work_items SET session_key = 'github:' || char(0) || '3' WHERE id = 'wi-2'")
    run = Run(populated)
    listed = run("compaction", "idle", "-o", "table", env={"COLUMNS": "160"})
    assert listed.exit_code == 0 and "github:\\x003" in listed.stdout
    result = run("compaction", "run", "--summarizer", SUMMARIZER, "-o", "json")
    assert result.exit_code == 4, result.stderr
    report = json.loads(result.stdout)
    assert [c["session_key"] for c in report["compacted"]] == ["telegram:1"]
    assert report["failed"] == [{"session_key": "github:\x003", "agent_id": "ag-dev", "turn_count": 2,
                                 "reason": "cannot run the summarizer: NITEJAR_SESSION_KEY would hold a NUL "
                                           "character, which no environment variable can"}]
    default = run("compaction", "run", "-o", "ids")  # nitejar's own summary needs no environment
    assert default.exit_code == 0, default.stderr


INVALID = b'\xff{"text": "caf\xe9"}'  # Latin-1, not UTF-8


@freeze_time(FROZEN)
def test_text_that_is_not_utf8(populated, backend):
    if backend == "postgresql":
        refused_by_postgresql(populated, "UPDATE messages SET content = convert_from(%s, 'UTF8')", (INVALID,))
        return
    import sqlite3

    conn = sqlite3.connect(populated)
    conn.execute("UPDATE messages SET content = CAST(? AS TEXT) WHERE id = 'msg-2-0'", (INVALID,))
    conn.execute("UPDATE agent_memories SET content = CAST(? AS TEXT) WHERE id = 'mem-6'", (b"repo \xe9",))
    conn.commit()
    conn.close()
    run = Run(populated)
    commands = [("jobs", "show", "job-2"), ("sessions", "history", "github:nitejar#3"), ("memories", "list"),
                ("memories", "show", "mem-6"), ("compaction", "run", "--dry-run")]
    assert failures(run, commands) == []
    history = run("sessions", "history", "github:nitejar#3", "-o", "json")
    assert json.loads(history.stdout)[0]["text"] == '\\xff{"text": "caf\\xe9"}'
    assert history.stderr == "note: some text in this database is not valid UTF-8; its bytes are shown as \\x escapes\n"
    assert run("memories", "list", "-o", "ids").stdout.split()[-1] == "mem-2"  # every row, the bad one too
    compacted = run("compaction", "run", "-o", "json")
    assert compacted.exit_code == 0, compacted.stderr
    assert compacted.stderr.startswith("note: some text in this database is not valid UTF-8")
    assert len(json.loads(compacted.stdout)["compacted"]) == 2
    ids = [c["id"] for c in json.loads(compacted.stdout)["compacted"]]
    assert run("compaction", "delete", "--yes", *ids).exit_code == 0  # then again, with a summarizer
    summarized = run("compaction", "run", "--summarizer", SUMMARIZER, "-o", "json")
    assert summarized.exit_code == 0, summarized.stderr
    assert '\\xff{"text": "caf\\xe9"}' in json.loads(summarized.stdout)["compacted"][0]["summary"]


# --------------------------------------------------------------- huge messages

HUGE = 10_000_000


@pytest.fixture
def huge(populated):
    conn, mark = connect(populated)
    conn.cursor().execute(f"UPDATE messages SET content = {mark} WHERE id = 'msg-0-1'",
                          (json.dumps({"text": "Z" * HUGE}),))
    conn.commit()
    conn.close()
    return populated


def test_a_huge_message_is_cut_to_what_a_table_shows(huge, backend):
    run = Run(huge)
    table = run("jobs", "show", "job-0", "-o", "table", env={"COLUMNS": "100"})
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) < 80 and max(map(len, lines)) <= 100
    assert "".join(f"… {HUGE - 800:,} more characters; -o json shows all".split()) in "".join(table.stdout.split())
    assert table.stdout.count("Z") == 800  # eight lines of 100 columns
    full = json.loads(run("jobs", "show", "job-0", "-o", "json").stdout)
    assert len(full["messages"][1]["text"]) == HUGE
    history = run("sessions", "history", "telegram:1", "-o", "table", env={"COLUMNS": "100"})
    assert history.exit_code == 0 and len(history.stdout.splitlines()) < 80


def test_a_huge_message_on_a_terminal(huge, backend):
    """Through a pseudo-terminal, as an operator sees it."""
    if shutil.which("script") is None:
        pytest.skip("script(1) is not installed")
    from tests.test_reliability import nitejarctl

    command = " ".join([*nitejarctl(), "-d", huge, "sessions", "history", "telegram:1"])
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm"}, timeout=120)
    assert result.returncode == 0, result.stdout
    note = f"… {HUGE - 120 * 8:,} more characters; -o json shows all"  # eight lines of 120 columns
    assert "".join(note.split()) in "".join(result.stdout.split())
    assert result.stdout.count("Z") == 120 * 8 and len(result.stdout.splitlines()) < 60


# ------------------------------------------------------------- read-only places


def _as_nobody(url, commands):
    """Run `commands` in-process as user nobody (65534) in a forked child
    (an interpreter under /root could not start as nobody); the results as
    (exit code, stdout, stderr) each."""
    from click.testing import CliRunner

    from nitejarctl.cli import cli

    warm = url + ".warm"  # the same commands as root first: every module they need is imported
    shutil.copy(url, warm)
    for args in commands:
        CliRunner().invoke(cli, ["-d", warm, *args])
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            out = []
            for args in commands:
                r = CliRunner().invoke(cli, ["-d", url, *args])
                out.append((r.exit_code, r.stdout, r.stderr))
            os.write(write, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        data = pipe.read()
    os.waitpid(child, 0)
    return [tuple(r) for r in json.loads(data)]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
@pytest.mark.parametrize("nitejar_running", [False, True])
def test_a_wal_database_in_a_directory_its_reader_cannot_write(sqlite_url, nitejar_running):
    """Read commands read it read-only, saying so in one line; a write fails
    with one clear line and changes nothing. With nitejar running (its -wal
    and -shm there, readable) the reader sees the WAL's latest commits; with
    neither, the file is read as immutable."""
    import sqlite3
    import tempfile

    place = tempfile.mkdtemp(prefix="nitejarctl-readonly-")  # pytest's own are private to root
    request_cleanup = place
    path = os.path.join(place, "nitejar.db")
    shutil.copy(sqlite_url, path)
    os.chmod(place, 0o755)
    os.chmod(path, 0o644)
    writer = None
    if nitejar_running:  # a connection that keeps the WAL: its files stay, readable by others
        writer = sqlite3.connect(path)
        writer.execute("INSERT INTO agents (id, name, status, created_at, updated_at) "
                       "VALUES ('a-new', 'fresh', 'idle', 0, 0)")
        writer.commit()
        os.chmod(path + "-shm", 0o644)
        os.chmod(path + "-wal", 0o644)
    try:
        listed, created, closed = _as_nobody(path, [["agents", "list", "-o", "ids"], ["agents", "create", "x"],
                                                    ["sessions", "close", "--stale", "1h"]])
    finally:
        if writer is not None:
            writer.close()
        os.remove(path + ".warm")
    if nitejar_running:  # SQLite reads it as it is, through the -shm nitejar keeps
        assert listed == (0, "a-new\n", "")
        refusal = f"Error: cannot change the database: it could only be opened read-only (this user cannot write {path})\n"
        assert created == (1, "", refusal)
        assert closed == (1, "", refusal)
    else:
        reason = f"this user cannot write to {place}, where SQLite creates the database's -shm file"
        note = (f"note: opened {path} read-only: {reason} (as an immutable file: changes made meanwhile "
                "are not seen)\n")
        assert listed == (0, "", note)
        refusal = f"Error: cannot change the database: it could only be opened read-only ({reason})\n"
        assert created == (1, "", note + refusal)
        assert closed == (1, "", note + refusal)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM agents WHERE name = 'x'").fetchone() == (0,)
    finally:
        conn.close()
        shutil.rmtree(request_cleanup)
