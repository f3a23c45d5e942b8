"""A PostgreSQL server for the benchmarks, and the generated data loaded into it.

`Server` is the one given (`--pg URL`, a superuser's) or a throwaway one
(initdb as the postgres user when run as root, a free loopback port) with
durable commits: fsync, synchronous_commit and full_page_writes stay on, as on
a production server. `load()` puts a generated SQLite file into a template
database: schema by `nitejarctl migrate`, rows by COPY (times shifted to the
current clock, as bench/run.py rebases the SQLite file), secondary indexes
built after the load, FK triggers off during it, then VACUUM (ANALYZE) — what
autovacuum does on a live server, so the planner has statistics. Each run
works on a fresh copy (`copy_database`: CREATE DATABASE … TEMPLATE).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

import run as sqlite_bench  # bench/run.py

TABLES = ("agents", "integrations", "agent_integrations", "work_items", "jobs", "messages",
          "agent_memories", "session_summaries", "sprite_sessions", "idempotency_keys")
TEMPLATE = "nitejarctl_bench"


class Server:
    """A PostgreSQL server: the one given, or a throwaway one."""

    def __init__(self, url: str | None, template: str = TEMPLATE):
        self.template = template  # the loaded database each run copies
        self.proc_dir = None
        self.bindir = None
        if url:
            self.admin_url = url
            return
        self.bindir = _pg_bindir()
        if self.bindir is None:
            sys.exit("no PostgreSQL server binaries (initdb) found; pass --pg URL")
        self.proc_dir = tempfile.mkdtemp(prefix="nitejarctl-bench-pg-")
        os.chmod(self.proc_dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.proc_dir, "postgres", "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        data = f"{self.proc_dir}/data"
        _as_postgres(f"{self.bindir}/initdb -D {data} -A trust -U postgres -E UTF8")
        opts = (f"-p {port} -k {self.proc_dir} -c listen_addresses=127.0.0.1 "
                "-c shared_buffers=512MB -c maintenance_work_mem=512MB -c max_wal_size=8GB")
        _as_postgres(f"{self.bindir}/pg_ctl -D {data} -l {self.proc_dir}/log -w -t 60 -o '{opts}' start")
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def url(self, dbname: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{dbname}"

    def admin(self):
        import psycopg2

        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        return conn

    def execute(self, sql: str) -> None:
        conn = self.admin()
        try:
            conn.cursor().execute(sql)
        finally:
            conn.close()

    def version(self) -> str:
        conn = self.admin()
        try:
            cur = conn.cursor()
            cur.execute("SHOW server_version")
            return cur.fetchone()[0]
        finally:
            conn.close()

    def copy_database(self, name: str, template: str | None = None) -> str:
        """A fresh copy of `template` (the loaded data), written out by a
        checkpoint before anything is timed on it."""
        template = template or self.template
        self.execute(f'DROP DATABASE IF EXISTS "{name}"')
        try:
            self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        except Exception:  # before PostgreSQL 15
            self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.execute("CHECKPOINT")
        return self.url(name)

    def drop(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}"')

    def stop(self) -> None:
        if self.proc_dir:
            _as_postgres(f"{self.bindir}/pg_ctl -D {self.proc_dir}/data -m fast stop", check=False)
            shutil.rmtree(self.proc_dir, ignore_errors=True)


def _pg_bindir() -> str | None:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    import glob

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(candidates[-1]) if candidates else None


def _as_postgres(cmd: str, check: bool = True) -> None:
    argv = ["su", "postgres", "-s", "/bin/sh", "-c", cmd] if os.geteuid() == 0 else ["/bin/sh", "-c", cmd]
    subprocess.run(argv, check=check, capture_output=True)


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, str):
        return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                .replace("\r", "\\r"))
    return repr(value) if isinstance(value, float) else str(value)


class _Lines(io.RawIOBase):
    """A readable stream over an iterator of text lines (COPY FROM STDIN's input)."""

    def __init__(self, lines):
        self.lines = lines
        self.buffer = b""

    def readable(self):
        return True

    def read(self, size=-1):
        while size < 0 or len(self.buffer) < size:
            chunk = "".join(itertools.islice(self.lines, 2000))
            if not chunk:
                break
            self.buffer += chunk.encode("utf-8")
        if size < 0:
            size = len(self.buffer)
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


def load(server: Server, sqlite_path: str, meta: dict, nitejarctl: str, log, template: str | None = None) -> dict:
    """The SQLite file into the template database; returns timings and the clock."""
    import psycopg2

    template = template or server.template
    started = time.perf_counter()
    server.drop(template)
    server.execute(f'CREATE DATABASE "{template}"')
    url = server.url(template)
    done = subprocess.run([nitejarctl, "-d", url, "-q", "migrate"], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"nitejarctl migrate: {done.stderr.strip()}")
    t0 = int(time.time())
    delta = t0 - meta["t0"]
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    times = sqlite_bench.time_columns(source)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))")
    indexes = cur.fetchall()
    for name, _ in indexes:
        cur.execute(f'DROP INDEX "{name}"')
    with contextlib.suppress(psycopg2.Error):
        cur.execute("SET session_replication_role = replica")  # no FK checks while loading (superuser)
    steps = {}
    rows = 0
    for table in TABLES:
        began = time.perf_counter()
        cols = [r[1] for r in source.execute(f'PRAGMA table_info("{table}")')]
        shifted = {i for i, c in enumerate(cols) if c in times.get(table, ())}
        cursor = source.execute(f'SELECT {", ".join(cols)} FROM "{table}"')

        def lines(cursor=cursor, shifted=shifted):
            for row in cursor:
                yield "\t".join(_copy_text(v + delta if i in shifted and v is not None else v)
                                for i, v in enumerate(row)) + "\n"

        cur.execute("SET synchronous_commit = off")
        cur.copy_expert(f'COPY "{table}" ({", ".join(cols)}) FROM STDIN', _Lines(lines()))
        rows += cur.rowcount if cur.rowcount > 0 else 0
        steps[table] = round(time.perf_counter() - began, 1)
        log(f"  {table:<20} {steps[table]:6.1f}s")
    began = time.perf_counter()
    cur.execute("SET maintenance_work_mem = '512MB'")
    for _, definition in indexes:
        cur.execute(definition)
    steps["indexes"] = round(time.perf_counter() - began, 1)
    log(f"  {'indexes':<20} {steps['indexes']:6.1f}s")
    began = time.perf_counter()
    cur.execute("VACUUM (ANALYZE)")
    steps["vacuum analyze"] = round(time.perf_counter() - began, 1)
    log(f"  {'vacuum analyze':<20} {steps['vacuum analyze']:6.1f}s")
    conn.close()
    source.close()
    server.execute("CHECKPOINT")
    return {"t0": t0, "seconds": round(time.perf_counter() - started, 1), "steps": steps}
