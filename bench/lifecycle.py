"""`nitejarctl backup` and `vacuum` beside the sqlite3 shell doing the same
raw, on the same generated file in the same run.

    python bench/lifecycle.py --db /tmp/nitejarctl-bench/large.db [--json] [--work-dir DIR]

Every command runs as a child process measured alone (wall time and peak RSS
from wait4, run.py's wrapper), on copies of the generated file made for it
(the file itself is never changed), after the copy has been read once so that
both sides find it equally in the page cache:

* backup — `nitejarctl backup DEST` (the backup API a step at a time from one
  snapshot, then integrity_check and a row count of every table on the copy)
  against `sqlite3 DB ".backup DEST"` alone, and against the same followed by
  `sqlite3 DEST "PRAGMA integrity_check"` (the same guarantees, "+check");
* vacuum — on a file with free pages (the closed and error sprite sessions
  older than a day deleted first, ~80 % of them, as `sessions purge` would;
  not timed): `nitejarctl vacuum --yes` (VACUUM, then the WAL checkpointed and
  truncated) against `sqlite3 DB "VACUUM"` (the shell checkpoints the WAL as
  it closes);
* vacuum --into — `nitejarctl vacuum --into DEST` (VACUUM INTO, then the check
  backup makes) against `sqlite3 DB "VACUUM INTO 'DEST'"`, alone and "+check".

With --repeat N each side runs N times, taking turns to go first; the medians
are reported.

Afterwards both sides' results are compared: the same rows in every table,
integrity ok, the same size within a page or two for the vacuums.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as runner  # noqa: E402  (bench/run.py: measure, fresh_copy, rebase)


def counts(path: str) -> dict:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        conn.close()


def integrity(path: str) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        conn.close()


def warm(path: str) -> None:
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def size(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def remove(*paths: str) -> None:
    for path in paths:
        runner.remove_copy(path)
        if os.path.exists(path + "-nitejarctl.lock"):  # the bulk-change lock vacuum takes
            os.remove(path + "-nitejarctl.lock")


def with_free_pages(master: str, path: str) -> int:
    """A copy of `master` with the old closed and error sessions deleted; its free bytes."""
    runner.fresh_copy(master, path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM sprite_sessions WHERE status IN ('closed', 'error') "
                 "AND last_active_at < strftime('%s', 'now') - 86400")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    free = conn.execute("PRAGMA freelist_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    return free


def timed(argv) -> tuple[float, float, str]:
    m = runner.measure(argv)
    return m.seconds, m.peak_mb, runner.last_line(m.stderr) if m.code else ""


def scenario(name: str, repeat: int, prepare, sides: dict) -> dict:
    """Run each side's commands (`sides`: label -> list of argv, run one after
    the other and timed together) `repeat` times, the order of the sides
    turning each time, after `prepare(label)` (untimed); the median of each."""
    import statistics

    seconds: dict = {label: [] for label in sides}
    peak, errors = 0.0, []
    labels = list(sides)
    for i in range(repeat):
        for label in labels[i % len(labels):] + labels[:i % len(labels)]:
            prepare(label)
            total = 0.0
            for argv in sides[label]:
                t, mb, error = timed(argv)
                total += t
                if label == "nitejarctl":
                    peak = max(peak, mb)
                if error:
                    errors.append(f"{label}: {error}")
            seconds[label].append(total)
    result = {"scenario": name, "runs": repeat, "nitejarctl_mb": round(peak, 1), "errors": errors}
    for label, values in seconds.items():
        result[f"{label}_s"] = round(statistics.median(values), 2)
    for label in labels[1:]:
        result[f"ratio_{label}"] = round(result["nitejarctl_s"] / result[f"{label}_s"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="/tmp/nitejarctl-bench/large.db")
    parser.add_argument("--work-dir", help="where the copies go [default: beside the database]")
    parser.add_argument("--nitejarctl", default=runner.beside_python() or shutil.which("nitejarctl"))
    parser.add_argument("--sqlite3", default=shutil.which("sqlite3"))
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side (medians reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.sqlite3:
        sys.exit("the sqlite3 shell is not on PATH (apt-get install sqlite3)")
    meta = runner.load_meta(args.db)
    runner.rebase(args.db, meta, quiet=args.json)
    work = args.work_dir or os.path.dirname(os.path.abspath(args.db))
    copy, ours, raw = (os.path.join(work, f"lifecycle-{n}.db") for n in ("source", "ours", "raw"))
    ctl, sqlite = [args.nitejarctl], args.sqlite3
    results = []
    try:
        runner.fresh_copy(args.db, copy)
        warm(copy)

        dests = {"nitejarctl": ours, "sqlite3": raw, "sqlite3+check": raw + ".2"}

        def clean(label):
            remove(dests[label])

        # backup (the source is only read)
        b = scenario("backup", args.repeat, clean, {
            "nitejarctl": [[*ctl, "-d", copy, "-q", "backup", ours]],
            "sqlite3": [[sqlite, copy, f".backup {raw}"]],
            "sqlite3+check": [[sqlite, copy, f".backup {raw}.2"], [sqlite, f"{raw}.2", "PRAGMA integrity_check"]]})
        b.update(same_rows=counts(ours) == counts(raw) == counts(copy), integrity=integrity(ours),
                 bytes=size(ours))
        results.append(b)

        # vacuum --into (the source is only read)
        v = scenario("vacuum --into", args.repeat, clean, {
            "nitejarctl": [[*ctl, "-d", copy, "-q", "vacuum", "--into", ours]],
            "sqlite3": [[sqlite, copy, f"VACUUM INTO '{raw}'"]],
            "sqlite3+check": [[sqlite, copy, f"VACUUM INTO '{raw}.2'"],
                              [sqlite, f"{raw}.2", "PRAGMA integrity_check"]]})
        v.update(same_rows=counts(ours) == counts(raw), integrity=integrity(ours), bytes=size(ours),
                 raw_bytes=size(raw))
        results.append(v)
        remove(ours, raw, raw + ".2", copy)

        # vacuum, in place: each run on a fresh copy with the same free pages
        state: dict = {}

        def bloat(label):
            path = ours if label == "nitejarctl" else raw
            state["free"] = with_free_pages(args.db, path)
            state["before"] = size(path)
            warm(path)

        w = scenario("vacuum", args.repeat, bloat, {
            "nitejarctl": [[*ctl, "-d", ours, "-q", "vacuum", "--yes"]],
            "sqlite3": [[sqlite, raw, "VACUUM"]]})
        w.update(same_rows=counts(ours) == counts(raw), integrity=integrity(ours), bytes_before=state["before"],
                 free_before=state["free"], bytes=size(ours), raw_bytes=size(raw))
        results.append(w)
    finally:
        remove(copy, ours, raw, raw + ".2")
    ok = all(not r["errors"] and r["same_rows"] and r["integrity"] == "ok" for r in results)
    if args.json:
        print(json.dumps({"db": args.db, "scale": meta.get("scale"), "results": results, "ok": ok}, indent=2))
    else:
        print(f"{args.db} ({meta.get('scale')} scale, {size(args.db) / 1e6:,.0f} MB), "
              f"{time.strftime('%Y-%m-%d %H:%M')}")
        print(f"{'scenario':<15} {'nitejarctl s':>12} {'sqlite3 s':>10} {'ratio':>6} {'+check s':>9} "
              f"{'ratio':>6} {'peak MB':>8}  result")
        for r in results:
            check = f"{r['sqlite3+check_s']:>9.2f} {r['ratio_sqlite3+check']:>6.2f}" if "sqlite3+check_s" in r \
                else f"{'-':>9} {'-':>6}"
            sizes = (f"{r['bytes'] / 1e6:,.0f} MB" if "raw_bytes" not in r else
                     f"{r['bytes'] / 1e6:,.0f} MB (raw {r['raw_bytes'] / 1e6:,.0f} MB)")
            if "bytes_before" in r:
                sizes = f"{r['bytes_before'] / 1e6:,.0f} → {sizes}"
            verdict = "ok" if not r["errors"] and r["same_rows"] and r["integrity"] == "ok" else \
                "; ".join(r["errors"]) or "DIFFERENT"
            print(f"{r['scenario']:<15} {r['nitejarctl_s']:>12.2f} {r['sqlite3_s']:>10.2f} "
                  f"{r['ratio_sqlite3']:>6.2f} {check} {r['nitejarctl_mb']:>8.1f}  {verdict}, {sizes}")
        print(f"medians of {args.repeat} run(s) each, the sides taking turns to go first")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
