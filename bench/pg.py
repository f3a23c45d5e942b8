"""The benchmark scenarios on PostgreSQL, beside SQLite, on the same data.

    python bench/pg.py --db PATH (--pg URL | --start-server) [--only a,b] [--repeat N] [--json]

1. Load: the generated SQLite file (bench/generate.py) goes into a PostgreSQL
   template database: schema by `nitejarctl migrate`, rows by COPY (times
   shifted to the current clock, as run.py's rebase does), secondary indexes
   built after the load, then VACUUM ANALYZE (what autovacuum does on a live
   server). The load is timed.
2. For each scenario: the SQLite numbers from run.py's runner (nitejarctl and
   the raw sqlite3 baseline, on fresh copies), then nitejarctl on a fresh copy
   of the template (CREATE DATABASE … TEMPLATE, not timed) with
   `-d postgresql://… -q`. The work done (rows listed, changed, deleted,
   summaries written) must be the same on both backends.
3. Set-based check: one more, untimed run of each bulk command per backend with
   -v counts the SQL statements nitejarctl sent; a loop over rows would send
   one or more per row.
4. Plans: on PostgreSQL, the statements of `sessions close --stale`,
   `sessions purge` and `memories decay` are captured (in-process, with their
   parameters) and EXPLAINed on an unchanged copy: the batch key scans and the
   batched changes must use an index, not scan the table.

--start-server runs a throwaway server (initdb as the postgres user when run
as root, a free loopback port, synchronous_commit off — SQLite's WAL with
synchronous NORMAL does not wait for the disk at commit either) and removes it
at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import os
import platform
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as sqlite_bench  # noqa: E402  (bench/run.py)

TABLES = ("agents", "integrations", "agent_integrations", "work_items", "jobs", "messages",
          "agent_memories", "session_summaries", "sprite_sessions", "idempotency_keys")
TEMPLATE = "nitejarctl_bench"
RELOAD_AFTER = 15 * 60  # the data leaves a 20-minute gap around each cutoff
BULK = {"sessions-close-stale", "sessions-purge", "memories-decay", "memories-prune",
        "idempotency-prune", "compaction-run"}
PLANNED = {  # scenario -> the table its batches scan
    "sessions-close-stale": "sprite_sessions",
    "sessions-purge": "sprite_sessions",
    "memories-decay": "agent_memories",
}


# ------------------------------------------------------------------- server


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
        opts = (f"-p {port} -k {self.proc_dir} -c listen_addresses=127.0.0.1 -c synchronous_commit=off "
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

    def copy_database(self, name: str) -> str:
        self.execute(f'DROP DATABASE IF EXISTS "{name}"')
        try:
            self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}" STRATEGY FILE_COPY')
        except Exception:  # before PostgreSQL 15
            self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
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


# --------------------------------------------------------------------- load


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


def load(server: Server, sqlite_path: str, meta: dict, nitejarctl: str, log) -> dict:
    """The SQLite file into the template database; returns timings and the clock."""
    import psycopg2

    started = time.perf_counter()
    server.drop(server.template)
    server.execute(f'CREATE DATABASE "{server.template}"')
    url = server.url(server.template)
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


# ------------------------------------------------------------------ measure


def pg_work(scenario: str, url: str, t0: int, counts: dict, out_path: str | None) -> int:
    """The work done, as run.verify counts it on SQLite."""
    import psycopg2

    if scenario == "sessions-list-stale":
        with open(out_path, encoding="utf-8") as f:
            return len(json.load(f))
    queries = {
        "sessions-close-stale": ("SELECT count(*) FROM sprite_sessions WHERE last_active_at > %s", (t0,), 0),
        "sessions-purge": ("SELECT count(*) FROM sprite_sessions", (), counts["sprite_sessions"]),
        "memories-decay": ("SELECT count(*) FROM agent_memories WHERE updated_at > %s", (t0,), 0),
        "memories-prune": ("SELECT count(*) FROM agent_memories", (), counts["agent_memories"]),
        "idempotency-prune": ("SELECT count(*) FROM idempotency_keys", (), counts["idempotency_keys"]),
        "compaction-run": ("SELECT count(*) FROM session_summaries", (), counts["session_summaries"]),
    }
    sql, params, before = queries[scenario]
    conn = psycopg2.connect(url)
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        n = cur.fetchone()[0]
    finally:
        conn.close()
    if scenario == "compaction-run":
        return n - before
    return before - n if before else n


def count_statements(argv: list[str]) -> int:
    """SQL statements a command sends (its -v log)."""
    done = subprocess.run([*argv, "-v"], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(sqlite_bench.last_line(done.stderr))
    return sum(line.startswith("-- ") and " ms: " in line for line in done.stderr.splitlines())


def capture_sql(args: list[str], url: str) -> list[tuple[str, tuple]]:
    """The statements (with parameters) a command sends, run in this process."""
    from nitejarctl.cli import cli

    captured = []

    class Capture(logging.Handler):
        def emit(self, record):
            if isinstance(record.msg, tuple) and len(record.msg) == 2:
                captured.append(record.msg)

    logger = logging.getLogger("peewee")
    handler = Capture(logging.DEBUG)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), \
                contextlib.redirect_stderr(devnull):
            cli.main([*args, "-d", url, "-q"], standalone_mode=False)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return captured


def plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


def explain(url: str, sql: str, params) -> list[dict]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        cur = conn.cursor()
        cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        return list(plan_nodes(cur.fetchone()[0][0]["Plan"]))
    finally:
        conn.rollback()
        conn.close()


def describe(nodes: list[dict], table: str) -> tuple[str, bool]:
    """('Index Scan using x', whether every read of `table` goes through an index)."""
    words, indexed = set(), True
    for node in nodes:
        if node.get("Relation Name") != table or node["Node Type"] == "ModifyTable":
            continue
        kind = node["Node Type"]
        if kind == "Bitmap Heap Scan":
            names = sorted({n["Index Name"] for n in plan_nodes(node) if "Index Name" in n})
            words.add(f"Bitmap Heap Scan on {', '.join(names)}")
        elif "Index Name" in node:
            words.add(f"{kind} using {node['Index Name']}")
        else:
            words.add(kind)
            indexed = False
    return "; ".join(sorted(words)) or "-", indexed and bool(words)


def check_plans(server: Server, scenario: str, nitejarctl_args: list[str]) -> dict:
    """EXPLAIN the key scans and the batched changes of a bulk command on PostgreSQL:
    {'statements': n, 'key scan': (plan, indexed), 'change': (plan, indexed)}."""
    table = PLANNED[scenario]
    ran = server.copy_database(f"{server.template}_capture")
    fresh = server.copy_database(f"{server.template}_explain")
    try:
        statements = capture_sql(nitejarctl_args, ran)
        keys = [(s, p) for s, p in statements if s.startswith("SELECT MAX(")]
        changing = re.compile(rf'\b(UPDATE|DELETE\s+FROM)\s+"?{table}\b')  # also inside WITH … AS (…)
        changes = [(s, p) for s, p in statements if changing.search(s)]
        result = {"statements": len(statements)}
        for label, found in (("key scan", keys), ("change", changes)):
            if not found:
                result[label] = ("not found", False)
                continue
            # the first batch and a later one (the key range then starts after a key)
            picks = [found[0]] + ([found[len(found) // 2]] if len(found) > 2 else [])
            described = [describe(explain(fresh, s, p), table) for s, p in picks]
            result[label] = ("; ".join(sorted({d for d, _ in described})), all(ok for _, ok in described))
        return result
    finally:
        server.drop(f"{server.template}_capture")
        server.drop(f"{server.template}_explain")


# --------------------------------------------------------------------- run


@dataclass
class Row:
    scenario: str
    sqlite_s: float | None = None
    baseline_s: float | None = None
    pg_s: float | None = None
    pg_over_sqlite: float | None = None
    sqlite_rows: int | None = None
    pg_rows: int | None = None
    sqlite_statements: int | None = None
    pg_statements: int | None = None
    pg_mb: float | None = None
    plan: dict = field(default_factory=dict)
    status: str = "SKIP"
    notes: list = field(default_factory=list)


def main(argv=None) -> int:
    names = [s.name for s in sqlite_bench.SCENARIOS if not s.startup]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="a database made by bench/generate.py")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pg", metavar="URL", help="a PostgreSQL server (a superuser's URL to a database)")
    where.add_argument("--start-server", action="store_true", help="run a throwaway local server")
    parser.add_argument("--only", help=f"comma-separated scenarios ({','.join(names)})")
    parser.add_argument("--repeat", type=int, help="runs per scenario on each backend (median)")
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--nitejarctl", help="the nitejarctl executable (default: from PATH)")
    args = parser.parse_args(argv)
    selected = [s for s in sqlite_bench.SCENARIOS if not s.startup]
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = sorted(wanted - set(names))
        if unknown:
            parser.error(f"unknown scenario(s): {', '.join(unknown)}")
        selected = [s for s in selected if s.name in wanted]

    def log(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    db = os.path.abspath(args.db)
    runner = sqlite_bench.Runner(argparse.Namespace(db=db, repeat=args.repeat, json=True, keep=False,
                                                    work_dir=None, nitejarctl=args.nitejarctl))
    repeat = runner.repeat
    server = Server(args.pg)
    rows: list[Row] = []
    loaded: dict = {"seconds": None, "steps": {}}
    try:
        version = server.version()
        log(f"loading {db} ({runner.meta.get('scale')} scale) into PostgreSQL {version} …")
        loaded = load(server, db, runner.meta, runner.nitejarctl, log)
        log(f"  loaded in {loaded['seconds']}s")
        for scenario in selected:
            log(f"- {scenario.name} …")
            row = Row(scenario.name)
            rows.append(row)
            try:
                if not args.skip_sqlite:
                    result = runner.run(scenario)
                    row.sqlite_s, row.baseline_s, row.sqlite_rows = (result.nitejarctl_s, result.baseline_s,
                                                                     result.work)
                    row.notes += [f"sqlite: {n}" for n in result.notes]
                    if result.status == "ERROR":
                        raise RuntimeError("; ".join(result.notes))
                if time.time() - loaded["t0"] > RELOAD_AFTER:
                    log("  (reloading: the data is older than its safety gap)")
                    loaded = load(server, db, runner.meta, runner.nitejarctl, log)
                times, peaks = [], []
                for _ in range(repeat):
                    url = server.copy_database(f"{server.template}_run")
                    out = os.path.join(runner.work_dir, f"{scenario.name}.pg.out")
                    m = sqlite_bench.measure([runner.nitejarctl, *scenario.args, "-d", url, "-q"],
                                             stdout_path=out if scenario.output_file else None)
                    if m.code != 0:
                        raise RuntimeError(f"nitejarctl on PostgreSQL exited {m.code}: "
                                           f"{sqlite_bench.last_line(m.stderr)}")
                    times.append(m.seconds)
                    peaks.append(m.peak_mb)
                    row.pg_rows = pg_work(scenario.name, url, loaded["t0"], runner.meta["counts"], out)
                    server.drop(f"{server.template}_run")
                import statistics

                row.pg_s = statistics.median(times)
                row.pg_mb = max(peaks)
                if row.sqlite_s:
                    row.pg_over_sqlite = row.pg_s / row.sqlite_s
                if scenario.name in BULK:
                    copy = os.path.join(runner.work_dir, "statements.db")
                    sqlite_bench.rebase(db, runner.meta, quiet=True)
                    sqlite_bench.fresh_copy(db, copy)
                    row.sqlite_statements = count_statements([runner.nitejarctl, *scenario.args, "-d", copy, "-q"])
                    sqlite_bench.remove_copy(copy)
                    url = server.copy_database(f"{server.template}_run")
                    row.pg_statements = count_statements([runner.nitejarctl, *scenario.args, "-d", url, "-q"])
                    server.drop(f"{server.template}_run")
                if scenario.name in PLANNED:
                    row.plan = check_plans(server, scenario.name, scenario.args)
                row.status = "PASS"
                if row.sqlite_rows is not None and row.sqlite_rows != row.pg_rows:
                    row.status = "FAIL"
                    row.notes.append(f"different work: {row.sqlite_rows} rows on SQLite, {row.pg_rows} on PostgreSQL")
                # A loop over rows (or conversations) sends at least one statement per row.
                limit = 20 + max(row.sqlite_rows or 0, row.pg_rows or 0) / 10
                for backend, n in (("SQLite", row.sqlite_statements), ("PostgreSQL", row.pg_statements)):
                    if n is not None and n > limit:
                        row.status = "FAIL"
                        row.notes.append(f"{n} statements on {backend}: a loop over rows?")
                for label in ("key scan", "change"):
                    if label in row.plan and not row.plan[label][1]:
                        row.status = "FAIL"
                        row.notes.append(f"PostgreSQL {label} without an index: {row.plan[label][0]}")
            except Exception as exc:  # report and go on
                row.status = "ERROR"
                row.notes.append(f"{type(exc).__name__}: {exc}")
            log(f"  {row.status}" + "".join(f"; {n}" for n in row.notes))
    finally:
        server.drop(f"{server.template}_run")
        server.stop()
        shutil.rmtree(runner.work_dir, ignore_errors=True)
    env = {"scale": runner.meta.get("scale"), "counts": runner.meta.get("counts"), "repeat": repeat,
           "postgresql": version, "sqlite": sqlite3.sqlite_version,
           "python": platform.python_version(), "cpus": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "load": loaded}
    if args.json:
        json.dump({"environment": env, "results": [asdict(r) for r in rows]}, sys.stdout, indent=2)
        print()
    else:
        print_table(rows, env)
    return 1 if any(r.status in ("FAIL", "ERROR") for r in rows) else 0


def print_table(rows: list[Row], env: dict) -> None:
    fmt = sqlite_bench.fmt
    load_steps = ", ".join(f"{k} {v}s" for k, v in env["load"]["steps"].items())
    print(f"nitejarctl bench, SQLite and PostgreSQL — {env['scale']} scale; {env['cpus']} CPUs, "
          f"SQLite {env['sqlite']}, PostgreSQL {env['postgresql']}, median of {env['repeat']} run(s), "
          f"{env['date']}")
    print(f"PostgreSQL load: {env['load']['seconds']}s ({load_steps})")
    cols = ("scenario", "SQLite s", "sqlite3 s", "PG s", "PG/SQLite", "rows SQLite", "rows PG",
            "stmts SQLite", "stmts PG", "PG plan (key scan | change)", "result")
    table = []
    for r in rows:
        plan = " | ".join(r.plan[k][0] for k in ("key scan", "change") if k in r.plan)
        table.append((r.scenario, fmt(r.sqlite_s, ".3f"), fmt(r.baseline_s, ".3f"), fmt(r.pg_s, ".3f"),
                      fmt(r.pg_over_sqlite, ".2f"), fmt(r.sqlite_rows, ",d", ""), fmt(r.pg_rows, ",d", ""),
                      fmt(r.sqlite_statements, "d", ""), fmt(r.pg_statements, "d", ""), plan, r.status))
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
    notes = [(r.scenario, n) for r in rows for n in r.notes]
    if notes:
        print()
        for name, note in notes:
            print(f"  {name}: {note}")


if __name__ == "__main__":
    sys.exit(main())
