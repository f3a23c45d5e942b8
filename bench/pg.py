"""nitejarctl on PostgreSQL against one raw statement doing the same change.

    python bench/pg.py --db PATH [--db PATH …] (--pg URL | --start-server)
                       [--only a,b] [--rounds N] [--compare NITEJARCTL] [--json] [-v]

Each `--db` is a file bench/generate.py made (`--keys random` or `ordered`: the
key shape is read from its meta file); each is loaded into a template database
of its own (bench/pg_server.py), on a server with durable commits. Then, in
interleaved rounds — every scenario, every key shape, every variant once per
round, in a rotating order — each variant runs as a child process (its wall
time and peak RSS its own, bench/run.py's `measure`) on a fresh copy of the
template:

* `count`: nitejarctl with `-o count` (no row read at all);
* `pipe`: nitejarctl as a runbook runs it, its rows printed to a file (TSV);
* `before`: with `--compare`, another nitejarctl (say, the previous release),
  its rows printed the same way;
* `baseline`: bench/pg_baselines.py — one statement through psycopg2 (for
  compaction the straightforward loop).

The medians are compared with the targets: `count` ≤ 1.5 × the baseline (or
within 0.3 s of a baseline under a second), `pipe` ≤ 3 ×, the stale listing
≤ 1.5 ×, compaction ≤ 1.0 × the loop, and a bulk change with nothing to do
≤ 0.25 s. Every variant must do the same work: the rows it changed (a
fingerprint of their keys) are compared with the baseline's, and the listing's
JSON with the baseline's.

Plans (`--explain`, on by default): each bulk command runs once more in this
process, its statements captured with their parameters; one batch statement
from the middle of each is run under EXPLAIN (ANALYZE, BUFFERS) on a fresh copy
(rolled back) and printed. A batch that reads its table with a Seq Scan fails
the scenario: a batch must read its own range (Tid Range Scan) or go through
an index.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pg_server  # noqa: E402  (bench/pg_server.py)
import run as sqlite_bench  # noqa: E402  (bench/run.py)

BASELINES = os.path.join(HERE, "pg_baselines.py")
RELOAD_AFTER = 12 * 60  # the data leaves a 20-minute gap around each cutoff
NOTHING_TARGET_S = 0.25
SHORT_S, SHORT_SLACK_S = 1.0, 0.3  # a baseline under a second: within 0.3 s of it will do


@dataclass
class Scenario:
    name: str
    args: list
    kind: str  # bulk | list | compaction | nothing | nothing-scan
    table: str | None = None  # what its batches scan (plans)


SCENARIOS = [
    Scenario("sessions-list-stale", ["sessions", "list", "--stale", "1h", "-o", "json"], "list"),
    Scenario("sessions-close-stale", ["sessions", "close", "--stale", "1h"], "bulk", "sprite_sessions"),
    Scenario("sessions-purge", ["sessions", "purge", "--older-than", "1d", "--yes"], "bulk", "sprite_sessions"),
    Scenario("memories-decay", ["memories", "decay"], "bulk", "agent_memories"),
    Scenario("memories-prune", ["memories", "prune", "--below", "0.1", "--keep", "1000000", "--yes"], "bulk",
             "agent_memories"),
    Scenario("memories-prune-capped", ["memories", "prune", "--below", "0.1", "--yes"], "bulk", "agent_memories"),
    Scenario("idempotency-prune", ["idempotency", "prune", "--older-than", "30d", "--yes"], "bulk",
             "idempotency_keys"),
    Scenario("compaction-run", ["compaction", "run"], "compaction"),
    Scenario("nothing-to-do", ["idempotency", "prune", "--older-than", "3650d", "--yes"], "nothing"),
    Scenario("nothing-to-find", ["sessions", "purge", "--older-than", "3650d", "--yes"], "nothing-scan"),
]

# The fingerprint of the work a run did: how many rows, and an md5 of their keys.
FINGERPRINTS = {
    "sessions-close-stale": "SELECT count(*), md5(string_agg(id, ',' ORDER BY id)) FROM sprite_sessions "
                            "WHERE status = 'closed' AND last_active_at >= %(t0)s",
    "sessions-purge": "SELECT %(sessions)s - count(*), md5(string_agg(id, ',' ORDER BY id)) FROM sprite_sessions",
    "memories-decay": "SELECT count(*), md5(string_agg(id, ',' ORDER BY id)) FROM agent_memories "
                      "WHERE updated_at >= %(t0)s",
    "memories-prune": "SELECT %(memories)s - count(*), md5(string_agg(id, ',' ORDER BY id)) FROM agent_memories",
    "idempotency-prune": "SELECT %(keys)s - count(*), md5(string_agg(key, ',' ORDER BY key)) FROM idempotency_keys",
    "compaction-run": "SELECT count(*), md5(string_agg(concat_ws('|', session_key, agent_id, summary, turn_count, "
                      "start_time, end_time), ',' ORDER BY session_key, agent_id, end_time)) FROM session_summaries "
                      "WHERE compacted_at >= %(t0)s",
    "nothing-to-do": "SELECT %(keys)s - count(*), '' FROM idempotency_keys",
    "nothing-to-find": "SELECT %(sessions)s - count(*), '' FROM sprite_sessions",
}
FINGERPRINTS["memories-prune-capped"] = FINGERPRINTS["memories-prune"]


@dataclass
class Cell:
    """One variant of one scenario on one key shape: its runs."""

    seconds: list = field(default_factory=list)
    peak_mb: list = field(default_factory=list)
    work: int | None = None
    fingerprint: str | None = None
    load: int | None = None  # the clock of the template load its last run copied

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


@dataclass
class Row:
    scenario: str
    keys: str
    cells: dict = field(default_factory=dict)  # variant -> Cell
    target: str = ""
    status: str = "PASS"
    plan: str = ""
    notes: list = field(default_factory=list)


def variants(scenario: Scenario, compare: str | None) -> list[str]:
    if scenario.kind.startswith("nothing"):
        return ["count"] + (["before"] if compare else []) + ["baseline"]
    if scenario.kind == "bulk":
        return ["count", "pipe"] + (["before"] if compare else []) + ["baseline"]
    return ["pipe"] + (["before"] if compare else []) + ["baseline"]


class Bench:
    def __init__(self, args, server, shapes):
        self.args, self.server, self.shapes = args, server, shapes  # shapes: keys -> (path, meta)
        self.nitejarctl = args.nitejarctl or sqlite_bench.beside_python() or shutil.which("nitejarctl")
        for exe in filter(None, (self.nitejarctl, args.compare)):
            sqlite_bench.compiled(exe)
        self.loaded: dict[str, dict] = {}
        self.work_dir = tempfile.mkdtemp(prefix="nitejarctl-pg-bench-")

    def log(self, message: str) -> None:
        if not self.args.json:
            print(message, file=sys.stderr, flush=True)

    def template(self, keys: str) -> str:
        return f"{pg_server.TEMPLATE}_{keys}"

    def fresh(self, keys: str) -> None:
        """(Re)load a key shape's template when its data is older than its gap allows."""
        loaded = self.loaded.get(keys)
        if loaded is not None and time.time() - loaded["t0"] < RELOAD_AFTER:
            return
        path, meta = self.shapes[keys]
        self.log(f"  (loading {os.path.basename(path)}, {keys} keys)")
        self.loaded[keys] = pg_server.load(self.server, path, meta, self.nitejarctl, lambda m: None,
                                           template=self.template(keys))

    def argv(self, scenario: Scenario, variant: str, url: str) -> list[str]:
        if variant == "baseline":
            return [sys.executable, BASELINES, scenario.name, url]
        exe = self.args.compare if variant == "before" else self.nitejarctl
        extra = ["-o", "count"] if variant == "count" else []
        return [exe, *scenario.args, *extra, "-d", url, "-q"]

    def run_one(self, scenario: Scenario, keys: str, variant: str, row: Row) -> None:
        self.fresh(keys)
        url = self.server.copy_database("nitejarctl_bench_run", self.template(keys))
        out = os.path.join(self.work_dir, f"{scenario.name}.{keys}.{variant}.out")
        try:
            m = sqlite_bench.measure(self.argv(scenario, variant, url), stdout_path=out)
            if m.code != 0:
                raise RuntimeError(f"{variant} exited {m.code}: {sqlite_bench.last_line(m.stderr)}")
            cell = row.cells.setdefault(variant, Cell())
            cell.seconds.append(m.seconds)
            cell.peak_mb.append(m.peak_mb)
            work, fingerprint = self.fingerprint(scenario, keys, url, out)
            # A template loaded again has its times shifted to the clock: the
            # listing's and the summaries' fingerprints (which hold times) are
            # compared within one load only.
            load = self.loaded[keys]["t0"]
            same_load = cell.load == load
            if cell.work is not None and (work, fingerprint if same_load else None) != \
                    (cell.work, cell.fingerprint if same_load else None):
                row.notes.append(f"{variant}: different work from one round to the next ({cell.work} vs {work})")
            cell.work, cell.fingerprint, cell.load = work, fingerprint, load
        finally:
            self.server.drop("nitejarctl_bench_run")

    def fingerprint(self, scenario: Scenario, keys: str, url: str, out: str):
        if scenario.kind == "list":
            with open(out, encoding="utf-8") as f:
                rows = json.load(f)
            return len(rows), json.dumps(rows, sort_keys=True)
        counts = self.shapes[keys][1]["counts"]
        params = {"t0": self.loaded[keys]["t0"], "sessions": counts["sprite_sessions"],
                  "memories": counts["agent_memories"], "keys": counts["idempotency_keys"]}
        conn = _connect(url)
        try:
            cur = conn.cursor()
            cur.execute(FINGERPRINTS[scenario.name], params)
            work, digest = cur.fetchone()
        finally:
            conn.close()
        return work, digest

    def run(self, selected: list[Scenario]) -> list[Row]:
        rows = {(s.name, keys): Row(s.name, keys) for s in selected for keys in self.shapes}
        for round_ in range(self.args.rounds):
            self.log(f"round {round_ + 1} of {self.args.rounds}")
            for scenario in selected:
                for keys in self.shapes:
                    row = rows[(scenario.name, keys)]
                    order = variants(scenario, self.args.compare)
                    shift = round_ % len(order)
                    for variant in order[shift:] + order[:shift]:
                        try:
                            self.run_one(scenario, keys, variant, row)
                        except Exception as exc:  # report and go on
                            row.status = "ERROR"
                            row.notes.append(f"{variant}: {type(exc).__name__}: {exc}")
                    self.log(f"  {scenario.name} ({keys}): " + ", ".join(
                        f"{v} {c.seconds[-1]:.2f}s" for v, c in row.cells.items() if c.seconds))
        result = list(rows.values())
        for row in result:
            judge(row, selected_by_name(selected)[row.scenario])
        return result


def selected_by_name(selected):
    return {s.name: s for s in selected}


def _connect(url: str):
    import psycopg2

    return psycopg2.connect(url)


def judge(row: Row, scenario: Scenario) -> None:
    """The targets, and the same work everywhere."""
    cells = row.cells
    if row.status == "ERROR":
        return
    failed = []
    base = cells.get("baseline")
    if scenario.kind == "nothing":
        row.target = f"count <= {NOTHING_TARGET_S} s"
        if cells["count"].median > NOTHING_TARGET_S:
            failed.append("count")
    elif scenario.kind in ("bulk", "nothing-scan"):
        # A change with nothing to do that must read a whole table to know it
        # (no index covers its condition) is held to the bulk changes' target.
        b = base.median
        count_limit = max(1.5 * b, b + SHORT_SLACK_S) if b < SHORT_S else 1.5 * b
        row.target = f"count <= {count_limit:.2f} s" + (f", pipe <= {3 * b:.2f} s" if "pipe" in cells else "")
        if cells["count"].median > count_limit:
            failed.append("count")
        if "pipe" in cells and cells["pipe"].median > 3 * b:
            failed.append("pipe")
    elif scenario.kind in ("list", "compaction"):
        factor = 1.0 if scenario.kind == "compaction" else 1.5
        row.target = f"pipe <= {factor:.1f} x"
        if cells["pipe"].median > factor * base.median:
            failed.append("pipe")
    if scenario.kind.startswith("nothing") and base is not None:
        row.notes.append(f"the statement alone (a new psycopg2 process and its DELETE): {base.median:.2f} s; "
                         f"nitejarctl over it: {cells['count'].median - base.median:.2f} s")
    if failed:
        row.status = "FAIL"
        row.notes.append("over the target: " + ", ".join(failed))
    if base is not None:
        for variant, cell in cells.items():
            same_load = cell.load == base.load  # else times differ (see run_one): the counts are compared
            if variant != "baseline" and (cell.work, cell.fingerprint if same_load else None) != \
                    (base.work, base.fingerprint if same_load else None):
                row.status = "FAIL"
                row.notes.append(f"{variant} did other work than the baseline ({cell.work} vs {base.work} rows)")
    if all(c.work == 0 for c in cells.values()) and not scenario.kind.startswith("nothing"):
        row.status = "FAIL"
        row.notes.append("no rows changed: nothing was measured")


# ------------------------------------------------------------------ plans

READS = ("Tid Range Scan", "Tid Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")


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
            cli.main([*args, "-d", url, "-q", "-o", "count"], standalone_mode=False)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return captured


def batch_statements(statements, table: str) -> list[tuple[str, tuple]]:
    changing = re.compile(rf'^(UPDATE|DELETE\s+FROM)\s+"?{table}\b')
    return [(s, p) for s, p in statements if changing.search(s)]


def temporary_setup(statements, until: int) -> list[tuple[str, tuple]]:
    """The statements before `until` that make the temporary tables a batch
    statement reads (they exist only on the command's own connection)."""
    making = re.compile(r"^\s*(CREATE\s+TEMPORARY|ALTER\s+TABLE\s+pg_temp|ANALYZE|INSERT\s+INTO\s+\"?pg_temp)",
                        re.IGNORECASE)
    return [(s, p) for s, p in statements[:until] if making.search(s)]


def explain(url: str, sql: str, params, setup=()) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement (after `setup`), rolled back."""
    conn = _connect(url)
    try:
        cur = conn.cursor()
        for statement, values in setup:
            cur.execute(statement, values)
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(r[0] for r in cur.fetchall())
    finally:
        conn.rollback()
        conn.close()


def check_plans(server, template: str, scenario: Scenario) -> tuple[str, str, bool]:
    """Run `scenario` on a copy of `template`: (how many batches and one of
    them, its plan, whether every read of the table is a range or an index —
    or the change was one statement)."""
    ran = server.copy_database(f"{template}_capture", template)
    try:
        every = capture_sql(scenario.args, ran)
    finally:
        server.drop(f"{template}_capture")
    statements = batch_statements(every, scenario.table)
    if not statements:
        return "", "no batch statement captured", False
    sql, params = statements[len(statements) // 2]  # one from the middle: its range starts after a key
    fresh = server.copy_database(f"{template}_explain", template)
    try:
        plan = explain(fresh, sql, params, temporary_setup(every, every.index((sql, params))))
    finally:
        server.drop(f"{template}_explain")
    scans = [line for line in plan.splitlines() if f" on {scenario.table}" in line and "Scan" in line]
    # A change done in one statement may read the whole table once, as the
    # statement alone does; a batch of several must read its own part only.
    ok = bool(scans) and (len(statements) == 1 or all(any(read in line for read in READS) for line in scans))
    shown = _short(sql, params)
    return f"{len(statements)} {'batch' if len(statements) == 1 else 'batches'}; this one: {shown}", plan, ok


def _short(sql: str, params) -> str:
    text = " ".join(sql.split())
    return (text[:300] + " …") if len(text) > 300 else text


# ---------------------------------------------------------------- printing


def print_table(rows: list[Row], env: dict, compare: bool) -> None:
    fmt = sqlite_bench.fmt
    print(f"nitejarctl on PostgreSQL {env['postgresql']} (durable commits) — {env['scale']} scale; "
          f"{env['cpus']} CPUs, median of {env['rounds']} interleaved rounds, {env['date']}")
    cols = ["op", "keys", "count s", "pipe s"] + (["before s"] if compare else []) + \
        ["one statement s", "count ×", "pipe ×"] + (["before ×"] if compare else []) + \
        ["pipe MB", "rows", "target", "result"]
    table = []
    for r in rows:
        c = r.cells
        base = c.get("baseline")
        b = base.median if base else None

        def s(v, c=c):
            return fmt(c[v].median, ".2f") if v in c else "-"

        def x(v, c=c, b=b):
            return fmt(c[v].median / b, ".2f") if v in c and b else "-"

        mb = max(c["pipe"].peak_mb) if "pipe" in c else (max(c["count"].peak_mb) if "count" in c else None)
        work = next((cell.work for cell in c.values() if cell.work is not None), None)
        table.append([r.scenario, r.keys, s("count"), s("pipe")] + ([s("before")] if compare else []) +
                     [fmt(b, ".2f"), x("count"), x("pipe")] + ([x("before")] if compare else []) +
                     [fmt(mb, ".0f"), fmt(work, ",d", ""), r.target, r.status])
    widths = [max(len(cname), *(len(t[i]) for t in table)) for i, cname in enumerate(cols)]
    print("  ".join(cname.ljust(w) for cname, w in zip(cols, widths)))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
    notes = [(r.scenario, r.keys, n) for r in rows for n in r.notes]
    if notes:
        print()
        for name, keys, note in notes:
            print(f"  {name} ({keys}): {note}")
    plans = [r for r in rows if r.plan]
    for r in plans:
        print(f"\n-- {r.scenario} ({r.keys} keys): {r.plan}")


def main(argv=None) -> int:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", action="append", required=True,
                        help="a database made by bench/generate.py (repeat: one per key shape)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pg", metavar="URL", help="a PostgreSQL server (a superuser's URL to a database)")
    where.add_argument("--start-server", action="store_true", help="run a throwaway local server")
    parser.add_argument("--only", help=f"comma-separated scenarios ({','.join(names)})")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median counts)")
    parser.add_argument("--compare", metavar="NITEJARCTL", help="another nitejarctl to time beside this one")
    parser.add_argument("--no-explain", dest="explain", action="store_false", help="skip the plans")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--nitejarctl", help="the nitejarctl executable (default: the one beside this Python)")
    args = parser.parse_args(argv)
    selected = SCENARIOS
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = sorted(wanted - set(names))
        if unknown:
            parser.error(f"unknown scenario(s): {', '.join(unknown)}")
        selected = [s for s in SCENARIOS if s.name in wanted]
    shapes = {}
    for path in args.db:
        path = os.path.abspath(path)
        meta = sqlite_bench.load_meta(path)
        shapes[meta.get("keys", "random")] = (path, meta)
    server = pg_server.Server(args.pg)
    bench = Bench(args, server, shapes)
    try:
        version = server.version()
        rows = bench.run(selected)
        if args.explain:
            for row in rows:
                scenario = selected_by_name(selected)[row.scenario]
                if scenario.table is None:
                    continue
                bench.fresh(row.keys)
                head, plan, ok = check_plans(server, bench.template(row.keys), scenario)
                row.plan = f"{head}\n{plan}"
                if not ok:
                    row.status = "FAIL"
                    row.notes.append("a batch of several reads its table without a range or an index (Seq Scan)")
    finally:
        for keys in shapes:
            server.drop(bench.template(keys))
        server.stop()
        shutil.rmtree(bench.work_dir, ignore_errors=True)
    meta = next(iter(shapes.values()))[1]
    env = {"scale": meta.get("scale"), "postgresql": version, "rounds": args.rounds,
           "python": platform.python_version(), "cpus": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "load": bench.loaded}
    if args.json:
        json.dump({"environment": env, "results": [asdict(r) for r in rows]}, sys.stdout, indent=2)
        print()
    else:
        print_table(rows, env, bool(args.compare))
    return 1 if any(r.status in ("FAIL", "ERROR") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
