"""`nitejarctl transfer` against pgloader and a bare COPY, on the same file in
the same run.

    python bench/transfer.py --db /tmp/nitejarctl-bench/large.db --start-server [--rounds 3] [--json]
    python bench/transfer.py --db … --pg postgresql://postgres@127.0.0.1:5432/postgres
    python bench/transfer.py --db … --start-server --other /path/to/an/earlier/nitejarctl

Each tool fills a fresh, empty PostgreSQL database from the SQLite file (which
none of them changes), as a child process measured alone (wall time and peak
RSS from wait4, run.py's wrapper):

* nitejarctl — `nitejarctl -d DB -q transfer --to URL`: schema, COPY, keys and
  indexes, ANALYZE, foreign keys, sequences and the verification of every table;
* pgloader — `pgloader --with "prefetch rows = 10000" DB URL` (its own schema;
  without that setting it runs out of its heap at this scale);
* bare COPY — the schema made first by `nitejarctl migrate` (not timed), then one
  psycopg2 COPY per table streaming the rows straight from sqlite3: no batches,
  no keys set aside, no verification. The floor.

Afterwards the row counts of every table are compared with the source's.

The tools run in rounds (`--rounds`, 3 by default), each round every tool
once, each round starting with the next tool, so that a change in the
machine's load falls on all of them; the medians are compared, and every
run is printed with the 1-minute load average at its start (on a shared
machine, report the load beside the figures). `--other` adds another
nitejarctl executable, such as an earlier build, to the rounds.
The target: nitejarctl ≤ 0.85 × pgloader's time (medians), memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pg_server as pg  # noqa: E402  (bench/pg_server.py: the throwaway server, COPY text)
import run as runner  # noqa: E402  (bench/run.py: measure)

TARGET = 0.85


def bare_copy(db: str, url: str) -> None:
    """The floor: every table's rows in one COPY each, into the schema as it is."""
    import psycopg2

    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn = psycopg2.connect(url)
    cur = conn.cursor()
    tables = [r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%' AND name <> 'nitejarctl_migrations'")]
    for table in tables:
        cols = [r[1] for r in source.execute(f'PRAGMA table_info("{table}")')]
        rows = source.execute(f'SELECT {", ".join(cols)} FROM "{table}"')
        lines = ("\t".join(pg._copy_text(v) for v in row) + "\n" for row in rows)
        cur.copy_expert(f'COPY "{table}" ({", ".join(cols)}) FROM STDIN', pg._Lines(lines))
        conn.commit()
    conn.close()


def counts(db: str, url: str) -> list[str]:
    """Tables whose row count differs between the source and the target."""
    import psycopg2

    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn = psycopg2.connect(url)
    cur = conn.cursor()
    wrong = []
    for (table,) in source.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                   "AND name NOT LIKE 'sqlite_%' AND name <> 'nitejarctl_migrations'"):
        expected = source.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        try:
            cur.execute(f'SELECT count(*) FROM "{table}"')
            got = cur.fetchone()[0]
        except psycopg2.Error:
            conn.rollback()
            got = None
        if got != expected:
            wrong.append(f"{table}: {expected} vs {got}")
    conn.close()
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="/tmp/nitejarctl-bench/large.db")
    parser.add_argument("--pg", help="a superuser's URL of a running server")
    parser.add_argument("--start-server", action="store_true", help="run a throwaway local server")
    parser.add_argument("--nitejarctl", default=os.path.join(os.path.dirname(sys.executable), "nitejarctl"))
    parser.add_argument("--other", metavar="NITEJARCTL",
                        help="another nitejarctl executable (an earlier build) to run beside it")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every tool, interleaved [3]")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bare-copy", nargs=2, metavar=("DB", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_copy:
        bare_copy(*args.bare_copy)
        return
    if not (args.pg or args.start_server):
        parser.error("give --pg URL or --start-server")
    pgloader = shutil.which("pgloader")
    tools = [("nitejarctl", [args.nitejarctl, "-d", args.db, "-q", "transfer", "--to", "{url}", "-o", "json"])]
    if args.other:
        tools.append(("nitejarctl (other)", [args.other, "-d", args.db, "-q", "transfer", "--to", "{url}",
                                             "-o", "json"]))
    tools += [("pgloader", [pgloader, "--with", "prefetch rows = 10000", args.db, "{url}"] if pgloader else None),
              ("bare COPY", [sys.executable, os.path.abspath(__file__), "--bare-copy", args.db, "{url}"])]
    server = pg.Server(args.pg)
    runs: dict[str, list[dict]] = {name: [] for name, _ in tools}
    try:
        for round_number in range(args.rounds):
            # Each round runs every tool once, starting with a different one,
            # so that a change in the machine's load falls on all of them.
            shift = round_number % len(tools)
            for name, argv in tools[shift:] + tools[:shift]:
                if argv is not None:
                    runs[name].append(_run(server, args, name, argv))
    finally:
        server.stop()
    results = [_summary(name, runs[name]) if argv else
               {"tool": name, "skipped": "not installed (apt-get install pgloader)"} for name, argv in tools]
    base = next((r["seconds"] for r in results if r["tool"] == "pgloader" and r.get("ok")), None)
    for r in results:
        if "seconds" in r and base:
            r["vs_pgloader"] = round(r["seconds"] / base, 2)
    ours = results[0]
    ok = ours.get("ok", False) and (base is None or ours["vs_pgloader"] <= TARGET)
    if args.json:
        print(json.dumps({"results": results, "runs": runs, "target": TARGET, "ok": ok}, indent=2))
    else:
        _print(results, runs, args.rounds)
        print(f"target: nitejarctl ≤ {TARGET} × pgloader (medians) — {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


def _run(server, args, name: str, argv) -> dict:
    """One run of a tool into a fresh database, with the load it ran under."""
    database = "bench_transfer_" + "".join(c if c.isalnum() else "_" for c in name.lower())
    server.drop(database)
    server.execute(f'CREATE DATABASE "{database}"')
    url = server.url(database)
    if name == "bare COPY":
        done = subprocess.run([args.nitejarctl, "-d", url, "-q", "migrate"], capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"nitejarctl migrate: {done.stderr.strip()}")
    server.execute("CHECKPOINT")
    load = os.getloadavg()[0]
    m = runner.measure([a.replace("{url}", url) for a in argv])
    wrong = counts(args.db, url) if m.code == 0 else []
    server.drop(database)
    return {"seconds": round(m.seconds, 2), "peak_mb": round(m.peak_mb, 1), "exit": m.code,
            "load": round(load, 2), "row_counts": "ok" if not wrong else "; ".join(wrong[:3]),
            "error": runner.last_line(m.stderr) if m.code else ""}


def _summary(name: str, runs: list[dict]) -> dict:
    good = [r for r in runs if r["exit"] == 0 and r["row_counts"] == "ok"]
    summary = {"tool": name, "runs": len(runs), "ok": len(good) == len(runs) and bool(runs)}
    if good:
        times = [r["seconds"] for r in good]
        summary.update(seconds=round(statistics.median(times), 2), fastest=min(times), slowest=max(times),
                       peak_mb=max(r["peak_mb"] for r in good))
    failed = [r for r in runs if r not in good]
    if failed:
        summary["error"] = failed[0]["error"] or failed[0]["row_counts"]
    return summary


def _print(results, runs, rounds: int) -> None:
    print(f"{rounds} rounds, the tools interleaved; medians (fastest–slowest); "
          "load: 1-minute load average at each run's start")
    print(f"{'tool':<20} {'median s':>8} {'range s':>13} {'peak MB':>8} {'× pgloader':>11}  {'load':<17} notes")
    for r in results:
        if "skipped" in r:
            print(f"{r['tool']:<20} {'SKIP':>8}  {r['skipped']}")
            continue
        loads = [x["load"] for x in runs[r["tool"]]]
        load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "-"
        if "seconds" not in r:
            print(f"{r['tool']:<20} {'FAIL':>8}  {r.get('error', '')}")
            continue
        ratio = f"{r['vs_pgloader']:.2f}" if "vs_pgloader" in r else "-"
        note = r.get("error") or ("verification included" if r["tool"].startswith("nitejarctl") else "")
        spread = f"{r['fastest']:.1f}–{r['slowest']:.1f}"
        print(f"{r['tool']:<20} {r['seconds']:>8.1f} {spread:>13} {r['peak_mb']:>8.1f} {ratio:>11}  {load:<17} {note}")
    for name, items in runs.items():
        print(f"  {name}: " + ", ".join(f"{x['seconds']:.1f}s (load {x['load']:.1f})" for x in items))


if __name__ == "__main__":
    main()
