"""After a table's data: its keys and indexes, ANALYZE and its checksum, on
connections of their own while the next table is copied; then the foreign
keys and the verification of every table."""

from __future__ import annotations

import concurrent.futures
import threading

from nitejarctl.errors import OperationalProblem
from nitejarctl.maintenance.transfer import target as T
from nitejarctl.maintenance.transfer.copying import source_checksum
from nitejarctl.maintenance.transfer.rows import quote


def connect(params: dict):
    import psycopg2

    conn = psycopg2.connect(**params)
    with conn.cursor() as cur:
        # Index builds sort in memory rather than in temporary files.
        cur.execute("SET maintenance_work_mem = '256MB'")
        cur.execute("SET extra_float_digits = 1")
        # Safe here: a batch and its progress row are lost (or kept) together.
        cur.execute("SET synchronous_commit = off")
    conn.commit()
    return conn


class Workers:
    """`count` threads, each with its own connection to the target."""

    def __init__(self, params: dict, count: int):
        self.params, self.count = params, count
        self._local = threading.local()
        self._conns: list = []
        self._lock = threading.Lock()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=count, thread_name_prefix="finish")
        self.futures: list = []
        self.checksums: dict[str, tuple[int, int]] = {}

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for conn in self._conns:
            try:
                conn.close()
            except Exception:  # closing after an error must not mask it
                pass

    def conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.params)
            with self._lock:
                self._conns.append(conn)
        return conn

    def submit(self, fn, *args):
        future = self.pool.submit(fn, *args)
        self.futures.append(future)
        return future

    def finish_table(self, name: str, structures, checksum_sql: str | None = None) -> None:
        """Build the table's keys (in order), ANALYZE it, build each of its
        indexes and take its checksum (`checksum_sql`): separate jobs, so that
        several connections share a large table's work (a key, which locks the
        table, makes the others wait their turn)."""
        keys = [(i, s) for i, s in structures if s.kind == "key"]
        self.submit(self._build, name, keys, True)
        for item in structures:
            if item[1].kind != "key":
                self.submit(self._build, name, [item], False)
        if checksum_sql is not None:
            self.submit(self._checksum, name, checksum_sql)

    def _build(self, name: str, structures, analyze: bool) -> None:
        conn = self.conn()
        with conn.cursor() as cur:
            for item, structure in structures:
                try:
                    cur.execute(structure.statement)
                except Exception as exc:
                    conn.rollback()
                    raise OperationalProblem(f"cannot build {structure.name} on {name}: "
                                             f"{' '.join(str(exc).split())}") from None
                T.set_state(cur, item, "done")
                conn.commit()
            if analyze:
                cur.execute(f"ANALYZE {quote(name)}")
        conn.commit()

    def _checksum(self, name: str, sql: str) -> None:
        self.checksums[name] = _target_checksum(self, sql)

    def wait(self) -> None:
        futures, self.futures = self.futures, []
        for future in futures:
            future.result()


def foreign_keys(conn, workers: Workers, names, pending, result) -> None:
    """Add the foreign keys (NOT VALID: no scan), then validate each; one that
    rows of the source break (orphans, which SQLite written with foreign keys
    off keeps) stays NOT VALID and is reported."""
    with conn.cursor() as cur:
        for item, structure in pending:
            cur.execute(structure.statement)
            T.set_state(cur, item, "done")
            conn.commit()

    def validate(table, name):
        c = workers.conn()
        try:
            with c.cursor() as cur:
                cur.execute(f"ALTER TABLE {quote(table)} VALIDATE CONSTRAINT {quote(name)}")
            c.commit()
            return None
        except Exception as exc:
            c.rollback()
            return f"foreign key {name} of {table} left NOT VALID: {' '.join(str(exc).split()[:12])}…"

    futures = [workers.submit(validate, t, n) for t, n in T.unvalidated_foreign_keys(conn, names)]
    conn.commit()
    workers.wait()
    result.warnings += [f.result() for f in futures if f.result()]


def verify(snapshot, params, layouts, result, copied_now, count: int, rejected=None, known=None) -> None:
    """Row counts and checksums of each table on both sides; a difference is
    recorded in result.differences, naming the table. `copied_now` holds the
    source side of the tables this run copied whole from its own snapshot,
    `known` the target side of those already taken."""
    rejected, known = rejected or {}, known or {}
    by_name = {r.table: r for r in result.tables}
    with Workers(params, count) as workers:
        futures = {}
        for name, layout in layouts.items():
            if name in known:
                futures[name] = concurrent.futures.Future()
                futures[name].set_result(known[name])
            else:
                futures[name] = workers.submit(_target_checksum, workers, layout.checksum_sql)
        source = {}
        for name, layout in layouts.items():
            source[name] = copied_now.get(name) or source_checksum(snapshot, layout, rejected.get(name, ()))
        for name in layouts:
            target = futures[name].result()
            report = by_name.get(name)
            report.source_rows, report.target_rows = source[name][0], target[0]
            report.verified = source[name] == target
            if source[name][0] != target[0]:
                result.differences.append(f"{name}: {source[name][0]:,} rows in the source, "
                                          f"{target[0]:,} in the target")
            elif source[name][1] != target[1]:
                result.differences.append(f"{name}: the same number of rows, but their values differ")


def _target_checksum(workers: Workers, sql: str) -> tuple[int, int]:
    conn = workers.conn()
    with conn.cursor() as cur:
        cur.execute(sql)
        n, total = cur.fetchone()
    conn.commit()
    return n, int(total)
