"""`nitejarctl transfer` against pgloader and a bare COPY, on the same file in
the same run.

    python bench/transfer.py --db /tmp/nitejarctl-bench/large.db --start-server [--json]
    python bench/transfer.py --db … --pg postgresql://postgres@127.0.0.1:5432/postgres

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
The target: nitejarctl ≤ 0.85 × pgloader's time, memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pg  # noqa: E402  (bench/pg.py: the throwaway server)
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
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bare-copy", nargs=2, metavar=("DB", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_copy:
        bare_copy(*args.bare_copy)
        return
    if not (args.pg or args.start_server):
        parser.error("give --pg URL or --start-server")
    server = pg.Server(args.pg)
    results = []
    try:
        pgloader = shutil.which("pgloader")
        runs = [("nitejarctl", [args.nitejarctl, "-d", args.db, "-q", "transfer", "--to", "{url}", "-o", "json"]),
                ("pgloader", [pgloader, "--with", "prefetch rows = 10000", args.db, "{url}"] if pgloader else None),
                ("bare COPY", [sys.executable, os.path.abspath(__file__), "--bare-copy", args.db, "{url}"])]
        for name, argv in runs:
            if argv is None:
                results.append({"tool": name, "skipped": "not installed (apt-get install pgloader)"})
                continue
            database = "bench_transfer_" + name.split()[0].lower()
            server.drop(database)
            server.execute(f'CREATE DATABASE "{database}"')
            url = server.url(database)
            if name == "bare COPY":
                done = subprocess.run([args.nitejarctl, "-d", url, "-q", "migrate"], capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"nitejarctl migrate: {done.stderr.strip()}")
            server.execute("CHECKPOINT")
            m = runner.measure([a.replace("{url}", url) for a in argv])
            wrong = counts(args.db, url) if m.code == 0 else []
            results.append({"tool": name, "seconds": round(m.seconds, 1), "peak_mb": round(m.peak_mb, 1),
                            "exit": m.code, "row_counts": "ok" if not wrong else "; ".join(wrong[:3]),
                            "error": runner.last_line(m.stderr) if m.code else ""})
            server.drop(database)
    finally:
        server.stop()
    base = next((r["seconds"] for r in results if r["tool"] == "pgloader" and r.get("exit") == 0), None)
    for r in results:
        if "seconds" in r and base:
            r["vs_pgloader"] = round(r["seconds"] / base, 2)
    ours = results[0]
    ok = ours.get("exit") == 0 and ours.get("row_counts") == "ok" and (base is None or ours["vs_pgloader"] <= TARGET)
    if args.json:
        print(json.dumps({"results": results, "target": TARGET, "ok": ok}, indent=2))
    else:
        print(f"{'tool':<12} {'seconds':>8} {'peak MB':>8} {'× pgloader':>11}  rows  notes")
        for r in results:
            if "skipped" in r:
                print(f"{r['tool']:<12} {'SKIP':>8}  {r['skipped']}")
                continue
            ratio = f"{r['vs_pgloader']:.2f}" if "vs_pgloader" in r else "-"
            note = r["error"] or ("verification included" if r["tool"] == "nitejarctl" else "")
            print(f"{r['tool']:<12} {r['seconds']:>8.1f} {r['peak_mb']:>8.1f} {ratio:>11}  {r['row_counts']:<4}  {note}")
        print(f"target: nitejarctl ≤ {TARGET} × pgloader — {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
