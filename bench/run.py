"""Time nitejarctl against raw sqlite3 baselines on a generated database.

    python bench/run.py --db PATH [--only name,…] [--rounds N] [--compare NITEJARCTL] [-v] [--json] [--keep]

In each of N interleaved rounds (default 3) every scenario runs once: the
runner shifts the generated data to the current clock (see generate.py), makes
fresh copies of the file, runs `nitejarctl … -d COPY -q` on one and
`python bench/baselines.py SCENARIO COPY` on another (and, with --compare,
another nitejarctl on a third), in an order that rotates from round to round —
each as a child process whose wall time and peak RSS (os.wait4) are its own —
checks that they did exactly the same work by comparing the copies, and in the
end prints one row per scenario: the medians of the rounds. With -v nitejarctl
runs with -v, and the line where it says how its time went (start-up,
statements, write lock, reading and formatting rows, checkpoints) is printed
for each round. The startup scenarios (help, complete) compare with
`python -c "import click"`.

A scenario whose nitejarctl command does not exist yet is reported as SKIP.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINES = os.path.join(HERE, "baselines.py")
WEEK = 7 * 86400
STARTUP_REPEAT = 11
ROUNDS = 3
REBASE_AFTER = 60  # seconds of drift tolerated before the data is shifted again
FLAT_LIMIT = 100  # compaction: conversations in the small run of the memory check
FLAT_SLACK_MB = 15.0


@dataclass
class Scenario:
    name: str
    args: list  # nitejarctl arguments (before -d COPY -q)
    target: float  # nitejarctl / baseline wall-time ratio
    mem_target_mb: float | None = None
    startup: bool = False
    output_file: bool = False  # keep stdout (to compare the listings)
    flat_check: bool = False


SCENARIOS = [
    Scenario("help", ["--help"], 1.3, startup=True),
    Scenario("complete", [], 1.6, startup=True),
    Scenario("sessions-list-stale", ["sessions", "list", "--stale", "1h", "-o", "json"], 1.5,
             mem_target_mb=60.0, output_file=True),
    Scenario("sessions-close-stale", ["sessions", "close", "--stale", "1h"], 1.5),
    Scenario("sessions-purge", ["sessions", "purge", "--older-than", "1d", "--yes"], 1.5),
    Scenario("memories-decay", ["memories", "decay"], 1.5),
    Scenario("memories-prune", ["memories", "prune", "--below", "0.1", "--keep", "1000000", "--yes"], 1.5),
    Scenario("memories-prune-capped", ["memories", "prune", "--below", "0.1", "--yes"], 1.5),
    Scenario("idempotency-prune", ["idempotency", "prune", "--older-than", "30d", "--yes"], 1.5),
    Scenario("compaction-run", ["compaction", "run"], 0.8, flat_check=True),
]
# The request completions/nitejarctl.bash makes for `nitejarctl sessions close <Tab>`.
COMPLETION_ENV = {"COMP_LINE": "nitejarctl sessions close ", "COMP_WORD": "",
                  "_NITEJARCTL_COMPLETE": "bash_complete"}


@dataclass
class Measure:
    seconds: float
    peak_mb: float
    code: int
    stderr: str
    started: float  # wall-clock time.time() at the start


@dataclass
class Result:
    scenario: str
    status: str = "SKIP"  # PASS, FAIL, SKIP, ERROR
    nitejarctl_s: float | None = None
    baseline_s: float | None = None
    ratio: float | None = None
    target: float | None = None
    nitejarctl_mb: float | None = None
    baseline_mb: float | None = None
    mem_target_mb: float | None = None
    work: int | None = None
    runs: int = 0
    before_s: float | None = None  # --compare: the other nitejarctl
    before_ratio: float | None = None
    notes: list = field(default_factory=list)
    timings: list = field(default_factory=list)  # -v: where nitejarctl's time went, each round


# ----------------------------------------------------------------- measuring


# The measured command runs under this small wrapper, which forks (no vfork),
# execs the command and reports the child's own wall time and peak RSS. Peak
# RSS must not come from a child the runner spawns itself: Python spawns with
# vfork, and Linux then counts the spawning process's peak memory (the
# runner's, which holds a listing to compare) as the child's ru_maxrss.
WRAPPER = """
import os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.time()
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - t
with open(report, "w") as f:
    f.write(f"{seconds!r} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {started!r}")
"""


def measure(argv, *, env=None, stdout_path=None) -> Measure:
    """Run one command; its own wall time and peak RSS (ru_maxrss of wait4)."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as report, \
            open(stdout_path or os.devnull, "wb") as out:
        wrapper = subprocess.run([sys.executable, "-S", "-c", WRAPPER, report.name, *argv],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
        fields = report.read().split()
    if wrapper.returncode != 0 or len(fields) != 4:
        raise RuntimeError(f"measuring {argv[0]} failed: {last_line(text)}")
    seconds, maxrss_kb, code, started = float(fields[0]), int(fields[1]), int(fields[2]), float(fields[3])
    return Measure(seconds, maxrss_kb * 1024 / 1e6, code, text, started)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


# -------------------------------------------------------------- data handling


def load_meta(db: str) -> dict:
    try:
        with open(db + ".meta.json") as f:
            return json.load(f)
    except FileNotFoundError:
        sys.exit(f"{db}.meta.json not found: generate the database with bench/generate.py")


def save_meta(db: str, meta: dict) -> None:
    with open(db + ".meta.json", "w") as f:
        json.dump(meta, f, indent=2)


def time_columns(conn) -> dict[str, list[str]]:
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'nitejarctl_migrations'")]
    found = {}
    for table in tables:
        cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')
                if r[1].endswith("_at") or r[1] in ("start_time", "end_time")]
        if cols:
            found[table] = cols
    return found


def rebase(db: str, meta: dict, *, quiet: bool) -> None:
    """Shift every time in the master file so that its T0 is now."""
    delta = int(time.time()) - meta["t0"]
    if delta <= REBASE_AFTER:
        return
    began = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -500000")
    for table, cols in time_columns(conn).items():
        sets = ", ".join(f'"{c}" = "{c}" + {delta}' for c in cols)
        conn.execute("BEGIN")
        conn.execute(f'UPDATE "{table}" SET {sets}')
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    meta["t0"] += delta
    save_meta(db, meta)
    if not quiet:
        print(f"  (data shifted by {delta}s to the current clock in "
              f"{time.perf_counter() - began:.1f}s)", file=sys.stderr)


def fresh_copy(master: str, path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    shutil.copyfile(master, path)
    wal = master + "-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        shutil.copyfile(wal, path + "-wal")


def remove_copy(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def scalar(conn, sql, params=()):
    return conn.execute(sql, params).fetchone()[0]


# ------------------------------------------------------------- verification


def _except_count(conn, select_a: str, select_b: str) -> int:
    return scalar(conn, f"SELECT count(*) FROM ({select_a} EXCEPT {select_b})") + \
        scalar(conn, f"SELECT count(*) FROM ({select_b} EXCEPT {select_a})")


def _same(conn, table: str, exprs: str, where: str = "") -> int:
    return _except_count(conn, f"SELECT {exprs} FROM main.{table} {where}",
                         f"SELECT {exprs} FROM other.{table} {where}")


def verify(scenario: str, a_path: str, b_path: str, t0: int, counts: dict, ctx: dict):
    """(work, problems): how many rows the scenario changed (in nitejarctl's copy)
    and the differences between nitejarctl's copy (a) and the baseline's (b)."""
    problems = []
    if scenario == "sessions-list-stale":
        with open(ctx["a_out"], encoding="utf-8") as f:
            a_rows = json.load(f)
        with open(ctx["b_out"], encoding="utf-8") as f:
            b_rows = json.load(f)
        if a_rows != b_rows:
            a_ids = {r.get("id") for r in a_rows}
            b_ids = {r.get("id") for r in b_rows}
            problems.append(f"listings differ: {len(a_rows)} vs {len(b_rows)} rows, "
                            f"{len(a_ids ^ b_ids)} ids in one only")
        return len(a_rows), problems
    conn = sqlite3.connect(f"file:{a_path}?mode=ro", uri=True)
    conn.execute("ATTACH DATABASE ? AS other", (f"file:{b_path}?mode=ro",))
    try:
        if scenario == "sessions-close-stale":
            diff = _same(conn, "sprite_sessions", f"id, status, last_active_at > {t0}")
            work = scalar(conn, "SELECT count(*) FROM main.sprite_sessions WHERE last_active_at > ?",
                          (t0,))
        elif scenario == "sessions-purge":
            diff = _same(conn, "sprite_sessions", "id, status, last_active_at")
            work = counts["sprite_sessions"] - scalar(conn, "SELECT count(*) FROM main.sprite_sessions")
        elif scenario == "memories-decay":
            tolerance = (abs(ctx["a_started"] - ctx["b_started"]) + 2) * 1.0 / WEEK + 1e-9
            diff = scalar(conn, (
                "SELECT count(*) FROM main.agent_memories a JOIN other.agent_memories b "
                "ON b.rowid = a.rowid WHERE a.id != b.id OR (a.updated_at > :t0) != (b.updated_at > :t0) "
                "OR abs(a.strength - b.strength) > :tol"), {"t0": t0, "tol": tolerance})
            diff += abs(scalar(conn, "SELECT count(*) FROM main.agent_memories")
                        - scalar(conn, "SELECT count(*) FROM other.agent_memories"))
            work = scalar(conn, "SELECT count(*) FROM main.agent_memories WHERE updated_at > ?", (t0,))
        elif scenario in ("memories-prune", "memories-prune-capped"):
            diff = _same(conn, "agent_memories", "id, strength")
            work = counts["agent_memories"] - scalar(conn, "SELECT count(*) FROM main.agent_memories")
        elif scenario == "idempotency-prune":
            diff = _same(conn, "idempotency_keys", "key, created_at")
            work = counts["idempotency_keys"] - scalar(conn, "SELECT count(*) FROM main.idempotency_keys")
        elif scenario == "compaction-run":
            diff = _same(conn, "session_summaries",
                         "session_key, agent_id, summary, turn_count, start_time, end_time")
            closed = _same(conn, "sprite_sessions", "id, status")
            if closed:
                problems.append(f"{closed} sprite sessions differ in status")
            work = scalar(conn, "SELECT count(*) FROM main.session_summaries") - counts["session_summaries"]
        else:
            raise ValueError(scenario)
    finally:
        conn.close()
    if diff:
        problems.append(f"{diff} rows differ between nitejarctl's and the baseline's result")
    return work, problems


# ------------------------------------------------------------------ running


def beside_python() -> str | None:
    """The nitejarctl script installed with the Python running the baselines
    (not a wrapper on PATH, such as a version manager's shim, that would add
    its own start-up time to nitejarctl's)."""
    path = os.path.join(os.path.dirname(sys.executable), "nitejarctl")
    return path if os.access(path, os.X_OK) else None


def compiled(nitejarctl: str) -> str:
    """Write the bytecode of the nitejarctl package `nitejarctl` runs, as
    `pip install` does: an editable install run with PYTHONDONTWRITEBYTECODE
    set would otherwise compile every module from source on every run and
    time that instead of the command. Returns `nitejarctl`."""
    with open(nitejarctl, "rb") as f:
        first = f.readline().decode("utf-8", "replace")
    python = first[2:].strip() if first.startswith("#!") else sys.executable
    code = "import compileall, os, nitejarctl; compileall.compile_dir(os.path.dirname(nitejarctl.__file__), quiet=1)"
    subprocess.run([python, "-c", code], check=False, capture_output=True)
    return nitejarctl


class Runner:
    """The scenarios in interleaved rounds: each round runs every database
    scenario once — nitejarctl, its baseline and, with --compare, the other
    nitejarctl, in an order that rotates from one round to the next — so that
    a busy moment of the machine weighs on every scenario and every side
    alike; the medians of the rounds are compared."""

    def __init__(self, args):
        self.db = os.path.abspath(args.db)
        self.meta = load_meta(self.db)
        self.nitejarctl = args.nitejarctl or beside_python() or shutil.which("nitejarctl")
        if not self.nitejarctl:
            sys.exit("nitejarctl is not on PATH (pip install -e .), or pass --nitejarctl")
        compiled(self.nitejarctl)
        self.compare = getattr(args, "compare", None)
        if self.compare:
            compiled(self.compare)
        self.verbose = getattr(args, "verbose", False)
        self.rounds = args.rounds or ROUNDS
        self.quiet = args.json
        self.keep = args.keep
        self.work_dir = args.work_dir or os.path.join(os.path.dirname(self.db), f"run-{os.getpid()}")
        os.makedirs(self.work_dir, exist_ok=True)
        self._samples: dict[str, dict[str, list]] = {}

    def log(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def nitejar(self, args, copy=None, exe=None):
        argv = [exe or self.nitejarctl, *args]
        if copy is not None:
            argv += ["-d", copy, "-q"]
        return argv

    def missing_command(self, scenario: Scenario) -> str | None:
        """Why the command cannot run yet (e.g. 'No such command'), or None."""
        words = [a for a in scenario.args if not a.startswith("-")][:2]
        probe = subprocess.run([self.nitejarctl, *words, "--help"], capture_output=True, text=True)
        if probe.returncode == 0:
            return None
        return last_line(probe.stderr) or f"exit {probe.returncode}"

    def run_all(self, selected: list[Scenario]) -> list[Result]:
        results = {s.name: Result(s.name, target=s.target, mem_target_mb=s.mem_target_mb) for s in selected}
        rounds = [s for s in selected if not s.startup]
        for scenario in selected:
            result = results[scenario.name]
            try:
                if scenario.startup:
                    self.log(f"- {scenario.name} …")
                    self.run_startup(scenario, result)
                elif (why := self.missing_command(scenario)):
                    result.notes.append(why)
                    rounds.remove(scenario)
            except Exception as exc:  # report and go on with the other scenarios
                result.status = "ERROR"
                result.notes.append(f"runner: {type(exc).__name__}: {exc}")
        for round_ in range(self.rounds):
            self.log(f"round {round_ + 1} of {self.rounds}")
            for scenario in rounds:
                result = results[scenario.name]
                if result.status == "ERROR":
                    continue
                try:
                    self.run_round(scenario, result, round_)
                except Exception as exc:
                    result.status = "ERROR"
                    result.notes.append(f"runner: {type(exc).__name__}: {exc}")
        for scenario in rounds:
            result = results[scenario.name]
            if result.status == "ERROR":
                continue
            samples = self._samples[scenario.name]
            self.conclude(result, samples["a"], samples["b"], samples.get("c"))
            if result.notes and result.status == "PASS":
                result.status = "FAIL"
            if scenario.flat_check:
                self.flat_check(scenario, result)
        return [results[s.name] for s in selected]

    # startup: --help and a completion request against `python -c "import click"`
    def run_startup(self, scenario: Scenario, result: Result) -> None:
        env = None
        argv = self.nitejar(scenario.args)
        if scenario.name == "complete":
            env = {**os.environ, **COMPLETION_ENV, "NITEJAR_DATABASE_URL": self.db}
            probe = measure(argv, env=env, stdout_path=os.path.join(self.work_dir, "complete.out"))
            with open(os.path.join(self.work_dir, "complete.out"), encoding="utf-8") as f:
                candidates = [line[len("plain,"):] for line in f.read().splitlines() if line.startswith("plain,")]
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
                ids = {row[0] for row in conn.execute("SELECT id FROM sprite_sessions WHERE status = 'active'")}
            if probe.code != 0 or not candidates or not set(candidates) <= ids:  # session ids, not command names
                result.notes.append("no session-id candidates from `sessions close <Tab>` yet"
                                    + (f" ({last_line(probe.stderr)})" if probe.code else ""))
                return
            result.work = len(candidates)
        else:
            probe = measure(argv)
            if probe.code != 0:
                result.status = "ERROR"
                result.notes.append(last_line(probe.stderr))
                return
        baseline = [sys.executable, "-c", "import click"]
        measure(baseline)  # warm-up
        ours, theirs = [], []
        for i in range(STARTUP_REPEAT):
            pair = [(ours, argv, env), (theirs, baseline, None)]
            for bucket, command, environment in (pair if i % 2 == 0 else pair[::-1]):
                m = measure(command, env=environment)
                if m.code != 0:
                    raise RuntimeError(f"{command[0]} exited {m.code}: {last_line(m.stderr)}")
                bucket.append(m)
        self.conclude(result, ours, theirs)

    # database scenarios: nitejarctl, the baseline (and the other nitejarctl) on fresh copies
    def run_round(self, scenario: Scenario, result: Result, round_: int) -> None:
        rebase(self.db, self.meta, quiet=self.quiet)
        t0 = self.meta["t0"]
        sides = ["a", "b"] + (["c"] if self.compare else [])
        paths = {k: os.path.join(self.work_dir, f"{scenario.name}.{k}.db") for k in sides}
        for path in paths.values():
            fresh_copy(self.db, path)
        os.sync()
        outs = {k: os.path.join(self.work_dir, f"{scenario.name}.{k}.out") for k in sides}
        verbose = ["-v"] if self.verbose else []
        runs = {"a": self.nitejar([*scenario.args, *verbose], paths["a"]),
                "b": [sys.executable, BASELINES, scenario.name, paths["b"]],
                "c": self.nitejar(scenario.args, paths.get("c"), exe=self.compare)}
        shift = round_ % len(sides)
        measured = {}
        for key in sides[shift:] + sides[:shift]:
            measured[key] = measure(runs[key], stdout_path=outs[key] if scenario.output_file else None)
        names = {"a": "nitejarctl", "b": "baseline", "c": "compared"}
        for key in sides:
            if measured[key].code != 0:
                raise RuntimeError(f"{names[key]} exited {measured[key].code}: {last_line(measured[key].stderr)}")
        if time.time() - t0 > self.meta["gap"]:
            result.notes.append("the runs took longer than the data's safety gap: boundary rows may differ")
        problems = []
        for key in [k for k in sides if k != "b"]:
            ctx = {"a_out": outs[key], "b_out": outs["b"], "a_started": measured[key].started,
                   "b_started": measured["b"].started}
            work, found = verify(scenario.name, paths[key], paths["b"], t0, self.meta["counts"], ctx)
            problems += [f"{names[key]}: {p}" if key == "c" else p for p in found]
            if key == "a":
                result.work = work
                if work == 0:
                    problems.append("no rows changed: nothing was measured")
        for problem in problems:
            if problem not in result.notes:
                result.notes.append(problem)
        samples = self._samples.setdefault(scenario.name, {})
        for key in sides:
            samples.setdefault(key, []).append(measured[key])
        if self.verbose:
            spent = [line for line in measured["a"].stderr.splitlines() if line.startswith("-- time: ")]
            result.timings.append(f"round {round_ + 1}, {measured['a'].seconds:.2f} s: "
                                  + (spent[-1][len("-- time: "):] if spent else "(no figures)"))
        self.log(f"  {scenario.name}: " + ", ".join(f"{names[k]} {measured[k].seconds:.2f}s"
                                                    for k in sides))
        if not self.keep:
            for path in paths.values():
                remove_copy(path)

    def flat_check(self, scenario: Scenario, result: Result) -> None:
        """Peak memory over every conversation vs over FLAT_LIMIT of them."""
        rebase(self.db, self.meta, quiet=self.quiet)
        c = os.path.join(self.work_dir, f"{scenario.name}.limited.db")
        fresh_copy(self.db, c)
        m = measure(self.nitejar([*scenario.args, "--limit", str(FLAT_LIMIT)], c))
        remove_copy(c)
        if m.code != 0:
            result.notes.append(f"memory flatness not checked (--limit {FLAT_LIMIT}: "
                                f"{last_line(m.stderr)})")
            return
        flat = result.nitejarctl_mb <= m.peak_mb + FLAT_SLACK_MB
        result.notes.append(f"memory {'flat' if flat else 'NOT flat'}: {result.nitejarctl_mb:.1f} MB "
                            f"for all vs {m.peak_mb:.1f} MB for --limit {FLAT_LIMIT}")
        if not flat and result.status == "PASS":
            result.status = "FAIL"

    def conclude(self, result: Result, ours: list, theirs: list, before: list | None = None) -> None:
        result.runs = len(ours)
        result.nitejarctl_s = statistics.median(m.seconds for m in ours)
        result.baseline_s = statistics.median(m.seconds for m in theirs)
        result.nitejarctl_mb = max(m.peak_mb for m in ours)
        result.baseline_mb = max(m.peak_mb for m in theirs)
        result.ratio = result.nitejarctl_s / result.baseline_s
        if before:
            result.before_s = statistics.median(m.seconds for m in before)
            result.before_ratio = result.before_s / result.baseline_s
        ok = result.ratio <= result.target
        if result.mem_target_mb is not None and result.nitejarctl_mb >= result.mem_target_mb:
            ok = False
        result.status = "PASS" if ok else "FAIL"


# ----------------------------------------------------------------- printing


def fmt(value, spec: str, empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def print_table(results: list[Result], header: str, compare: bool = False) -> None:
    cols = ["scenario", "nitejarctl s", "baseline s", "ratio", "target"]
    cols += ["compared s", "compared ratio"] if compare else []
    cols += ["nitejarctl MB", "baseline MB", "MB target", "rows", "result"]
    rows = []
    for r in results:
        row = [r.scenario, fmt(r.nitejarctl_s, ".3f"), fmt(r.baseline_s, ".3f"), fmt(r.ratio, ".2f"),
               f"<= {r.target:.1f}x"]
        row += [fmt(r.before_s, ".3f"), fmt(r.before_ratio, ".2f")] if compare else []
        row += [fmt(r.nitejarctl_mb, ".1f"), fmt(r.baseline_mb, ".1f"),
                "< " + fmt(r.mem_target_mb, ".0f") if r.mem_target_mb else "", fmt(r.work, ",d", ""), r.status]
        rows.append(row)
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    print(header)
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths))))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
    notes = [(r.scenario, n) for r in results for n in r.notes]
    if notes:
        print()
        for name, note in notes:
            print(f"  {name}: {note}")
    spent = [(r.scenario, t) for r in results for t in r.timings]
    if spent:
        print("\nwhere nitejarctl's time went (-v):")
        for name, line in spent:
            print(f"  {name}, {line}")


def environment(meta: dict, runner: Runner) -> dict:
    return {"scale": meta.get("scale"), "keys": meta.get("keys", "random"), "counts": meta.get("counts"),
            "rounds": runner.rounds, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def main(argv=None) -> int:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="a database made by bench/generate.py")
    parser.add_argument("--only", help=f"comma-separated scenarios ({','.join(names)})")
    parser.add_argument("--rounds", "--repeat", type=int, dest="rounds",
                        help=f"interleaved rounds; the medians count [default: {ROUNDS}; help and complete "
                             f"run {STARTUP_REPEAT} times]")
    parser.add_argument("--compare", metavar="NITEJARCTL",
                        help="another nitejarctl (say, the previous release) timed in the same rounds")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="run nitejarctl with -v and print where each run spent its time")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the copies the commands ran on")
    parser.add_argument("--work-dir", help="where the copies go (default: next to --db)")
    parser.add_argument("--nitejarctl", help="the nitejarctl executable (default: the one installed "
                                             "beside this Python, else from PATH)")
    args = parser.parse_args(argv)
    selected = SCENARIOS
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown scenario(s): {', '.join(unknown)} (choose from {', '.join(names)})")
        selected = [s for s in SCENARIOS if s.name in wanted]
    runner = Runner(args)
    env = environment(runner.meta, runner)
    runner.log(f"database {runner.db} ({env['scale']} scale, {env['keys']} keys); copies in {runner.work_dir}")
    try:
        results = runner.run_all(selected)
    finally:
        if not args.keep:
            shutil.rmtree(runner.work_dir, ignore_errors=True)
    if args.json:
        json.dump({"environment": env, "results": [asdict(r) for r in results]}, sys.stdout, indent=2)
        print()
    else:
        counts = ", ".join(f"{k} {v:,}" for k, v in (env["counts"] or {}).items()
                           if k in ("sprite_sessions", "messages", "agent_memories", "idempotency_keys"))
        header = (f"nitejarctl bench — {env['scale']} scale ({counts}; {env['keys']} keys); "
                  f"{env['cpus']} CPUs, Python {env['python']}, SQLite {env['sqlite']}, "
                  f"median of {runner.rounds} interleaved round(s), {env['date']}")
        print_table(results, header, compare=bool(args.compare))
    return 1 if any(r.status in ("FAIL", "ERROR") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
