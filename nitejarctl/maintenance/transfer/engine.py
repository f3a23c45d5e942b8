"""A transfer from start to end: plan, schema, data, keys, verification."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from nitejarctl.errors import OperationalProblem, UsageProblem
from nitejarctl.maintenance.transfer import ddl, finishing
from nitejarctl.maintenance.transfer import target as T
from nitejarctl.maintenance.transfer.copying import Layout, Rejects, Stopped, copy_table
from nitejarctl.maintenance.transfer.source import MIGRATION_TABLES, Snapshot


@dataclass
class Options:
    resume: bool = False
    only: list[str] | None = None
    skip: list[str] | None = None
    dry_run: bool = False
    verify_only: bool = False
    on_bad_value: str = "fail"
    reject_file: str = "transfer-rejects.tsv"
    workers: int = 4  # connections that build keys and indexes and take checksums
    lanes: int = 3  # tables copied at once


@dataclass
class TableResult:
    table: str
    rows: int = 0
    action: str = ""  # create, existing, resume, done, skipped
    seconds: float = 0.0
    rejected: int = 0
    source_rows: int | None = None
    target_rows: int | None = None
    verified: bool | None = None


@dataclass
class Result:
    tables: list[TableResult] = field(default_factory=list)
    schema: str = ""  # created, existing
    warnings: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    rejects: str | None = None
    seconds: float = 0.0


class Hooks:
    """What the command line supplies: a progress bar per table, messages."""

    def progress(self, table: str, total):  # a context manager with .advance(n)
        raise NotImplementedError

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


def source_kind(snapshot: Snapshot) -> str:
    if "kysely_migration" in snapshot.tables:
        return "nitejar"
    if "nitejarctl_migrations" in snapshot.tables:
        return "nitejarctl"
    return "plain"


def selected_tables(snapshot: Snapshot, options: Options) -> list[str]:
    names = [n for n in snapshot.tables
             if not (n == "nitejarctl_migrations" and source_kind(snapshot) == "nitejarctl")]
    for given in (options.only or []) + (options.skip or []):
        if given not in snapshot.tables:
            raise UsageProblem(f"the source has no table {given!r}")
    if options.only:
        names = [n for n in names if n in options.only]
    if options.skip:
        names = [n for n in names if n not in options.skip]
    if not names:
        raise UsageProblem("no table left to transfer")
    for name in names:
        if snapshot.tables[name].without_rowid:
            raise OperationalProblem(f"table {name!r} is WITHOUT ROWID, which transfer does not copy "
                                     "(use --skip)")
    return names


def fingerprint(snapshot: Snapshot, names) -> str:
    text = "\n".join(f"{n}\n{snapshot.tables[n].sql}" for n in names)
    return hashlib.sha256(text.encode()).hexdigest()


def run(snapshot: Snapshot, conn, target_url, options: Options, hooks: Hooks, open_peewee) -> Result:
    """Transfer (or with options.verify_only, only verify) the snapshot into
    the target connection `conn`. `target_url` opens the workers' connections;
    `open_peewee()` the target as a Peewee database (for migrate)."""
    started = time.monotonic()
    T.require_utf8(conn)
    result = Result()
    names = selected_tables(snapshot, options)
    finished = options.resume and _finished(conn, names)
    if options.verify_only or finished:
        existing = T.tables(conn)
        missing = [n for n in names if n not in existing]
        if missing:
            raise OperationalProblem(f"the target has no table {', '.join(missing)}")
        layouts = {n: _layout(snapshot, conn, n) for n in names}
        result.tables = [TableResult(n, action="done" if finished else "verify") for n in names]
        result.schema = "finished" if finished else ""
        finishing.verify(snapshot, target_url, layouts, result, {}, options.workers)
        result.seconds = time.monotonic() - started
        return result
    plan = _prepare(snapshot, conn, names, options, result, open_peewee)
    if options.dry_run:
        result.seconds = time.monotonic() - started
        return result
    about, states, structures = T.load_progress(conn)
    conn.commit()
    layouts = {n: _layout(snapshot, conn, n) for n in plan}
    result.warnings += [f"{n}.{c} is real (4 bytes) in the target: its values are rounded to 6 digits "
                        "(and verified as rounded)" for n, layout in layouts.items()
                        for c, k in zip(layout.columns, layout.kinds) if k == "float4"]
    by_name = {r.table: r for r in result.tables}
    rejects = Rejects(options.reject_file)
    fresh = {n for n, s in states.items() if s.last_rowid is None}
    order = sorted(plan, key=lambda n: -_size(snapshot, n))
    pending = [n for n in order if states[n].state == "pending"]
    try:
        with finishing.Workers(target_url, options.workers) as workers:
            def finish(name):
                workers.finish_table(name, [(i, s) for i, s, done in structures
                                            if s.table == name and s.kind != "fk" and not done],
                                     layouts[name].checksum_sql)

            for name in order:
                if states[name].state != "pending":
                    finish(name)
            _copy_lanes(snapshot, conn, target_url, pending, states, layouts, by_name, options, rejects,
                        hooks, finish)
            workers.wait()
            finishing.foreign_keys(conn, workers, plan, [(i, s) for i, s, d in structures
                                                          if s.kind == "fk" and not d], result)
            for name in plan:
                T.reset_sequences(conn, name, snapshot.sequences.get(name, 0))
            target_sums = dict(workers.checksums)
    finally:
        rejects.close()
    _, states, _ = T.load_progress(conn)
    conn.commit()
    for name in plan:
        by_name[name].rows = states[name].rows
        by_name[name].rejected = len(states[name].rejected)
    if rejects.counts or any(s.rejected for s in states.values()):
        result.rejects = options.reject_file
    copied_now = {n: (states[n].rows, states[n].checksum) for n in plan if n in fresh}
    finishing.verify(snapshot, target_url, {n: layouts[n] for n in plan}, result, copied_now,
                     options.workers, rejected={n: states[n].rejected for n in plan}, known=target_sums)
    if not result.differences:
        T.drop_progress(conn)
    result.seconds = time.monotonic() - started
    return result


def _copy_lanes(snapshot, conn, target_url, pending, states, layouts, by_name, options, rejects, hooks,
                finish) -> None:
    """Copy the pending tables, largest first, on `options.lanes` connections
    at once (PostgreSQL's side of COPY is the slower one: two backends keep
    both cores busy); each table, once copied, goes to the workers."""
    import threading

    todo = list(pending)
    lock = threading.Lock()
    failed: list[BaseException] = []

    def lane(c):
        while True:
            with lock:
                if not todo or failed:
                    return
                name = todo.pop(0)
            began = time.monotonic()
            state = states[name]
            with hooks.progress(name, lambda n=name: snapshot.count(n)) as bar:
                bar.advance(state.rows)
                copy_table(snapshot, c, layouts[name], state, on_bad=options.on_bad_value, rejects=rejects,
                           progress=bar.advance, stop=lambda: bool(failed))
            by_name[name].seconds = time.monotonic() - began
            with c.cursor() as cur:
                T.set_state(cur, "table:" + name, "copied")
            c.commit()
            finish(name)

    def other_lane(c):
        try:
            lane(c)
        except BaseException as exc:
            failed.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=other_lane, args=(finishing.connect(target_url),), daemon=True)
               for _ in range(min(options.lanes, len(todo)) - 1)]
    for thread in threads:
        thread.start()
    try:
        lane(conn)
    except BaseException as exc:
        failed.append(exc)
        raise
    finally:
        for thread in threads:
            thread.join()
    errors = [e for e in failed if not isinstance(e, Stopped)]
    if errors:
        raise errors[0]


def _finished(conn, names) -> bool:
    """A transfer resumed after it had finished (killed after its last step):
    no progress table, and the tables have their rows."""
    existing = T.tables(conn)
    done = (T.PROGRESS not in existing and all(n in existing for n in names)
            and any(T.has_rows(conn, n) for n in names if n not in MIGRATION_TABLES))
    conn.commit()
    return done


def _size(snapshot: Snapshot, name: str) -> int:
    return snapshot.execute(f'SELECT max(rowid) FROM "{name}"').fetchone()[0] or 0


def _layout(snapshot: Snapshot, conn, name: str) -> Layout:
    table = snapshot.tables[name]
    cols = T.columns(conn, name)
    conn.commit()
    chosen = [cols[c.name] for c in table.columns]
    return Layout(table, [c.name for c in chosen], [c.kind for c in chosen], [c.limit for c in chosen],
                  [c.nullable for c in chosen])


def _prepare(snapshot: Snapshot, conn, names, options: Options, result: Result, open_peewee) -> list[str]:
    """The target ready for the data: schema created or checked, keys and
    indexes set aside, the progress recorded. Returns the tables to copy."""
    existing = T.tables(conn)
    conn.commit()
    if T.PROGRESS in existing:
        if not options.resume:
            raise OperationalProblem("the target holds an unfinished transfer: continue it with --resume "
                                     "(or give an empty database)")
        about, states, _ = T.load_progress(conn)
        conn.commit()
        if about.get("fingerprint") != fingerprint(snapshot, about.get("tables", [])):
            raise OperationalProblem("the source's schema changed since this transfer began: "
                                     "start again into an empty database")
        if (options.only or options.skip) and sorted(names) != sorted(about["tables"]):
            raise UsageProblem("--only/--skip differ from the transfer being resumed "
                               f"({', '.join(about['tables'])})")
        result.schema = "resumed"
        result.tables = [TableResult(n, action="resume" if states[n].state == "pending" else "done")
                         for n in about["tables"] if n in states]
        return [n for n in about["tables"] if n in states]
    kind = source_kind(snapshot)
    present = [n for n in names if n in existing]
    structures: list[T.Structure] | None = None
    creating = not present
    if present and len(present) < len(names):
        missing = [n for n in names if n not in existing]
        raise OperationalProblem(f"the target has some of the source's tables but not {', '.join(missing)}: "
                                 "give an empty database or one with the whole schema")
    migration_rows = _check_rows(conn, existing)
    plan = [n for n in names if n not in migration_rows]
    result.schema = "create" if creating else "existing"
    result.tables = [TableResult(n, action=result.schema) for n in plan]
    if options.dry_run:
        if not creating:
            _check_columns(snapshot, conn, plan)
        for report in result.tables:
            report.rows = snapshot.count(report.table)
        return plan
    with conn.cursor() as cur:
        if creating and kind == "nitejarctl":
            _migrate(open_peewee)
            conn.commit()
            existing = T.tables(conn)
            translated = [n for n in names if n not in existing]
        else:
            translated = names if creating else []
        if translated:
            structures = []
            for name in translated:
                table = snapshot.tables[name]
                cur.execute(ddl.create_table(table, snapshot.integer_ranges(table), snapshot.sequences))
                structures += ddl.structures(table)
            for s in structures:
                s.statement = _not_valid(s)
        rest = [n for n in names if n not in translated]
        _check_columns(snapshot, conn, names)
        catalogued = T.catalog_structures(conn, rest) if rest else []
        for s in sorted(catalogued, key=lambda s: {"fk": 0, "key": 1, "index": 2}[s.kind]):
            cur.execute(T.drop_sql(s))
            s.statement = _not_valid(s)
        T.create_progress(cur)
        T.record_plan(cur, {"tables": plan, "fingerprint": fingerprint(snapshot, plan)}, plan,
                      catalogued + (structures or []))
    conn.commit()
    return plan


def _not_valid(s: T.Structure) -> str:
    if s.kind == "fk" and not s.statement.rstrip().upper().endswith("NOT VALID"):
        return s.statement + " NOT VALID"
    return s.statement


def _migrate(open_peewee) -> None:
    from nitejarctl import migrations

    db = open_peewee()
    try:
        migrations.migrate(db)
    finally:
        db.close()


def _check_rows(conn, existing) -> set[str]:
    """Refuse a target with rows; the migration tables with rows (its
    migrator's record) are kept as they are and not copied."""
    kept = set()
    for name in sorted(existing):
        if T.has_rows(conn, name):
            if name in MIGRATION_TABLES:
                kept.add(name)
                continue
            conn.rollback()
            raise OperationalProblem(f"the target's table {name} has rows: transfer fills an empty "
                                     "database (or continues its own with --resume)")
    conn.commit()
    return kept


def _check_columns(snapshot: Snapshot, conn, names) -> None:
    problems = []
    for name in names:
        problems += T.check_columns(snapshot.tables[name], T.columns(conn, name))
    if problems:
        conn.rollback()
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise OperationalProblem(f"the target's schema does not fit the source: {shown}")
