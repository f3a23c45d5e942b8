"""Bulk changes in short transactions, batched by key range.

A bulk change never holds a lock for long: each batch applies one set-based
statement to one range of the table's batch key (db.ranges: key ranges on
SQLite, page ranges on PostgreSQL), in its own transaction.

`Batching` is the policy, a value the caller may change (tests do); each
backend has its own default (`db.batching`):

* the batch size adapts so that each transaction takes about `seconds`:
  on SQLite, whose single write lock nitejar's writers wait for (at most 5 s),
  0.4 s; on PostgreSQL, whose row locks stall only a writer touching one of
  the batch's rows, also 0.4 s, from a small first batch, growing by half at
  most — large enough that per-commit costs do not dominate a million-row
  change, small enough that a batch slower than its predecessor (a busier
  server, a denser range) still holds its rows well under 2 s;
* where the backend's lock is not fair (SQLite: a writer waiting for it
  sleeps between tries, up to 100 ms, and the next batch would take it again
  at once), the change pauses for `pause` after every `pause_after` seconds
  of write-lock time, in which a waiting writer gets it;
* bulk changes on one SQLite file take turns (db.turns), waiting at most
  `lock_wait` seconds for another one to end.

Each batch runs in `signals.deferred()`: an interrupt takes effect between
batches, once the batch has committed and its rows are on their way to the
sink (which gets every committed batch's rows before the change returns or
raises).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from nitejarctl import signals, timings


@dataclass(frozen=True)
class Batching:
    first: int = 10_000  # rows in the first batch
    smallest: int = 500
    largest: int = 100_000  # rows in a batch, at most
    seconds: float = 0.4  # that each batch's transaction aims at
    growth: float = 2.0  # the most a batch grows over the previous one
    pause_after: float = 1.0  # seconds of write lock between two pauses (SQLite)
    pause: float = 0.12
    lock_wait: float = 600.0  # seconds to wait for another bulk change's turn
    pages_from: int = 128  # tables of fewer pages are cut by key scans even where pages are the rule
    # rows a change the planner expects at most goes as one statement where
    # batches are pages (found through the planner's plan) [first / 2]
    few: int | None = None

    def factor(self, seconds: float) -> float:
        """How much larger the next batch should be, judging by one whose
        transaction took `seconds` (at least half, at most `growth`)."""
        return min(self.growth, max(0.5, self.seconds / seconds)) if seconds > 0 else self.growth

    def next_size(self, size: int, seconds: float) -> int:
        """The size whose transaction should take `self.seconds`, judging by
        one of `size` rows that took `seconds`."""
        return min(self.largest, max(self.smallest, int(size * self.factor(seconds))))


@dataclass
class Bulk:
    """How to run a bulk change (repositories take one): where its changed
    rows go (`sink(rows)`: each committed batch's rows, tuples in the change's
    `names` order, in the order the batch visited them, a chunk at a time;
    without a sink the rows are not even read; a sink with `text_columns`,
    the names of the columns it prints as TSV lines, may get a batch's rows
    as one db.copied_rows.TextRows instead, where the backend writes them
    itself), `progress(n)` after each
    batch that changed n rows, `on_wait()` once the change has waited a second
    for its turn, and `dry_run`: nothing written, the rows the change would
    make handed to the sink instead (and counted). `batching`: None for the
    database's own."""

    sink: Callable[[list], None] | None = None
    progress: Callable[[int], None] | None = None
    dry_run: bool = False
    batching: Batching | None = None
    on_wait: Callable[[], None] | None = None

    def apply_each(self, db, changes, counts: list) -> None:
        """Run each of `changes` in turn (run_each: counts[i] grows by the rows
        changes[i] changed, batch by batch). Not for a dry run: a change over
        several tables previews itself (maintenance.cascade)."""
        if self.dry_run:
            raise ValueError("apply_each runs changes; a dry run counts them itself")
        run_each(db, changes, counts, progress=self.progress, batching=self.batching, on_wait=self.on_wait)

    def apply(self, db, change) -> int:
        """Run (or preview) `change`; returns how many rows it (would have) changed."""
        if not self.dry_run:
            return run(db, change, sink=self.sink, progress=self.progress, batching=self.batching,
                       on_wait=self.on_wait)
        if self.sink is None:
            return change.model.select().where(change.condition()).count()
        from nitejarctl.db.changed_rows import preview_tuples

        count = 0
        rows = preview_tuples(db, change)
        while chunk := list(itertools.islice(rows, HAND_OVER)):
            self.sink(chunk)
            count += len(chunk)
        return count


HAND_OVER = 5000  # rows handed to the sink at a time


def run(db, change, *, sink=None, progress=None, batching: Batching | None = None, on_wait=None,
        sleep=time.sleep, clock=time.monotonic) -> int:
    """Apply `change` (a changed_rows.Change) batch by batch, each batch in its
    own transaction, and return how many rows it changed (see Bulk for the
    callbacks)."""
    counts = [0]
    run_each(db, [change], counts, sink=sink, progress=progress, batching=batching, on_wait=on_wait,
             sleep=sleep, clock=clock)
    return counts[0]


def run_each(db, changes, counts: list, *, sink=None, progress=None, batching: Batching | None = None,
             on_wait=None, sleep=time.sleep, clock=time.monotonic) -> None:
    """Apply each of `changes` in turn as `run` does, within one turn and one
    bulk session (the pauses for nitejar's writers count the write lock across
    them). `counts[i]` grows by each committed batch of `changes[i]`, so that
    it holds what committed even when something stops the run half-way."""
    batching = batching or db.batching()
    with contextlib.ExitStack() as stack:
        stack.enter_context(db.turn(wait=batching.lock_wait, on_wait=on_wait))
        session = stack.enter_context(db.bulk_session())
        delivery = stack.enter_context(_Delivery(sink)) if sink is not None else None
        timer = _LockTimer(clock, session.committed)
        settle = delivery.drained if delivery is not None else None  # the rows so far read

        def between() -> None:
            session.between(settle)

        pacing = _Pacing(batching, sleep, db.pauses_for_writers)
        for i, change in enumerate(changes):
            with contextlib.ExitStack() as inner:
                capture = None
                if sink is not None:
                    capture = inner.enter_context(db.changed_rows(change, getattr(sink, "text_columns", None)))
                    inner.callback(delivery.drained)  # its rows read before its reader goes
                _batches(db, change, i, counts, capture, delivery, timer, pacing, progress, between)


class _Pacing:
    """The pauses a bulk change makes for nitejar's writers, after every
    `pause_after` seconds of write lock (where the backend's lock is not fair)."""

    def __init__(self, batching: Batching, sleep, pauses: bool):
        self.batching, self.sleep, self.pauses = batching, sleep, pauses
        self.held = 0.0

    def committed(self, seconds: float) -> None:
        self.held += seconds
        if self.pauses and self.held >= self.batching.pause_after:
            self.sleep(self.batching.pause)  # nitejar's writers' turn
            timings.add("pause", self.batching.pause)
            self.held = 0.0


def _batches(db, change, i: int, counts: list, capture, delivery, timer, pacing: _Pacing, progress,
             between) -> None:
    ranges = db.batch_ranges(change, pacing.batching)
    while True:
        between()
        with signals.deferred():
            with db.atomic():
                timer.start()  # the lock is ours from here to the commit
                db.after_commit(timer.stop)
                batch = ranges.next()
                if batch is None:
                    return
                if capture is None:
                    changed, rows = change.statement(batch).execute(), None
                else:
                    changed, rows = capture.apply(batch)
            counts[i] += changed
            if rows is not None:
                delivery.put(rows)
            if progress is not None:
                progress(changed)
        if ranges.finished:
            return
        ranges.measured(changed, timer.seconds)
        pacing.committed(timer.seconds)


class _Delivery:
    """Committed batches' rows handed to the sink by a thread of its own, in
    order: `put(rows)` takes a callable that yields them, a chunk at a time,
    once their batch has committed (reading them there, and formatting them,
    overlaps the next batches' statements, which run without Python's lock).
    At most two batches wait; `drained()` waits until every row put so far
    has reached the sink (before a change's reader goes), and leaving the
    context waits for every row too, and raises the sink's own error, if any."""

    def __init__(self, sink):
        import queue
        import threading

        self._sink = sink
        self._queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="delivery", daemon=True)
        self._thread.start()

    def __enter__(self) -> _Delivery:
        return self

    def __exit__(self, *exc) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error

    def put(self, rows: Callable) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(rows)

    def drained(self) -> None:
        self._queue.join()

    def _run(self) -> None:
        while (rows := self._queue.get()) is not None:
            try:
                chunks = rows()
                try:
                    if self._error is not None:
                        continue
                    for chunk in chunks:
                        self._sink(chunk)
                except BaseException as exc:  # raised in the change's own thread
                    self._error = exc
                finally:
                    chunks.close()  # (also what frees a reader, when its rows were not all read)
            finally:
                self._queue.task_done()


class _LockTimer:
    """How long each batch held its lock: from after BEGIN to the end of its
    commit, when `committed(seconds)` is called first thing (so that its
    checkpoint starts at once)."""

    def __init__(self, clock, committed):
        self.clock, self.committed = clock, committed
        self.started = self.seconds = 0.0

    def start(self) -> None:
        self.started = self.clock()

    def stop(self) -> None:
        self.seconds = self.clock() - self.started
        timings.add("lock", self.seconds)
        self.committed(self.seconds)
