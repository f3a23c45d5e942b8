"""Bulk changes in short transactions, batched by key range.

nitejar's own writers wait at most 5 s for SQLite's write lock, so a bulk
change never holds it for long: each batch finds the upper key of the next
`size` rows in scope and applies one set-based statement to the key range
(last, upper], in its own write transaction. The key is the database's
`batch_key` (on SQLite the rowid, which every index ends with, so the scan for
the next range seeks instead of rescanning; on PostgreSQL the primary key).

`Batching` is the policy, a value the caller may change (tests do):

* the batch size adapts so that each transaction holds the write lock for
  about `seconds`: small enough for nitejar's writers, large enough that
  per-commit costs do not dominate a million-row change;
* where the backend's lock is not fair (SQLite: a writer waiting for it
  sleeps between tries, up to 100 ms, and the next batch would take it again
  at once), the change pauses for `pause` after every `pause_after` seconds
  of write-lock time, in which a waiting writer gets it;
* bulk changes on one SQLite file take turns (`TurnLock`), waiting at most
  `lock_wait` seconds for another one to end.

Each batch runs in `signals.deferred()`: an interrupt takes effect between
batches, once the batch has committed and its rows have gone to the sink.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from peewee import SQL, fn

from nitejarctl import signals
from nitejarctl.errors import OperationalProblem


@dataclass(frozen=True)
class Batching:
    first: int = 10_000  # rows in the first batch
    smallest: int = 500
    largest: int = 100_000
    seconds: float = 0.4  # of write lock that each batch aims at
    pause_after: float = 1.0  # seconds of write lock between two pauses (SQLite)
    pause: float = 0.12
    lock_wait: float = 600.0  # seconds to wait for another bulk change's turn

    def next_size(self, size: int, seconds: float) -> int:
        """The size whose transaction should take `self.seconds`, judging by
        one that took `seconds` (at most twice or half `size` per step)."""
        factor = min(2.0, max(0.5, self.seconds / seconds)) if seconds > 0 else 2.0
        return min(self.largest, max(self.smallest, int(size * factor)))


@dataclass
class Bulk:
    """How to run a bulk change (repositories take one): where its changed
    rows go (`sink(rows)`: each committed batch's rows, tuples in the change's
    `names` order, in key order, a chunk at a time), `progress(n)` after each batch that changed
    n rows, `on_wait()` once the change has waited a second for its turn, and
    `dry_run`: nothing written, the rows the change would make handed to the
    sink instead (and counted)."""

    sink: Callable[[list], None] | None = None
    progress: Callable[[int], None] | None = None
    dry_run: bool = False
    batching: Batching = field(default_factory=Batching)
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


def run(db, change, *, sink=None, progress=None, batching: Batching = Batching(), on_wait=None,
        sleep=time.sleep, clock=time.monotonic) -> int:
    """Apply `change` (a changed_rows.Change) batch by batch, each batch in its
    own write transaction, and return how many rows it changed (see Bulk for
    the callbacks)."""
    counts = [0]
    run_each(db, [change], counts, sink=sink, progress=progress, batching=batching, on_wait=on_wait,
             sleep=sleep, clock=clock)
    return counts[0]


def run_each(db, changes, counts: list, *, sink=None, progress=None, batching: Batching = Batching(),
             on_wait=None, sleep=time.sleep, clock=time.monotonic) -> None:
    """Apply each of `changes` in turn as `run` does, within one turn and one
    bulk session (the pauses for nitejar's writers count the write lock across
    them). `counts[i]` grows by each committed batch of `changes[i]`, so that
    it holds what committed even when something stops the run half-way."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(db.turn(wait=batching.lock_wait, on_wait=on_wait))
        committed = stack.enter_context(db.bulk_session())
        delivery = stack.enter_context(_Delivery(sink)) if sink is not None else None
        timer = _LockTimer(clock, committed)
        pacing = _Pacing(batching, sleep, db.pauses_for_writers)
        for i, change in enumerate(changes):
            with contextlib.ExitStack() as inner:
                capture = inner.enter_context(db.changed_rows(change)) if sink is not None else None
                _batches(db, change, i, counts, capture, delivery, timer, pacing, progress)


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
            self.held = 0.0


def _batches(db, change, i: int, counts: list, capture, delivery, timer, pacing: _Pacing, progress) -> None:
    batching = pacing.batching
    key = db.batch_key(change.scan)
    last, size = None, batching.first
    while True:
        with signals.deferred():
            with db.atomic():
                timer.start()  # the write lock is ours from here to the commit
                db.after_commit(timer.stop)
                upper, found = _next_upper(change.scan, key, change.scope, last, size)
                if upper is None:
                    return
                batch = key <= upper if last is None else (key > last) & (key <= upper)
                if capture is None:
                    changed, rows = change.statement(batch).execute(), None
                else:
                    rows = capture.apply(batch)
                    changed = len(rows)
            counts[i] += changed
            if rows:
                delivery.put(rows)
            if progress is not None:
                progress(changed)
        if found < size:  # that was the last of them: no need to look further
            return
        last, size = upper, batching.next_size(size, timer.seconds)
        pacing.committed(timer.seconds)


class _Delivery:
    """Committed batches' rows handed to the sink by a thread of its own, in
    order, so that formatting them overlaps the next batches' statements
    (which run without Python's lock). At most two batches wait; leaving the
    context waits until every row has reached the sink, and raises the
    sink's own error, if any."""

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

    def put(self, rows: list) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(rows)

    def _run(self) -> None:
        while (rows := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                for start in range(0, len(rows), HAND_OVER):  # without the key, a chunk at a time
                    self._sink([row[1:] for row in rows[start:start + HAND_OVER]])
            except BaseException as exc:  # raised in the change's own thread
                self._error = exc


class _LockTimer:
    """How long each batch held the write lock: from after BEGIN to the end of
    its commit, when `committed(seconds)` is called first thing (so that its
    checkpoint starts at once)."""

    def __init__(self, clock, committed):
        self.clock, self.committed = clock, committed
        self.started = self.seconds = 0.0

    def start(self) -> None:
        self.started = self.clock()

    def stop(self) -> None:
        self.seconds = self.clock() - self.started
        self.committed(self.seconds)


def _next_upper(model, key, scope, last, size: int):
    """The key of the `size`-th row in `scope` after `last` (or of the last
    one), and how many there are up to it."""
    keys = model.select(key.alias("k")).where(scope)
    if last is not None:
        keys = keys.where(key > last)
    keys = keys.order_by(key).limit(size)
    return model.select(fn.MAX(SQL("k")), fn.COUNT(SQL("*"))).from_(keys.alias("batch")).tuples().get()


# ------------------------------------------------------------ the turn lock

LOCK_SUFFIX = "-nitejarctl.lock"
NOTICE_AFTER = 1.0  # seconds of waiting before on_wait is called
POLL = 0.05


class TurnLock:
    """One bulk change at a time on a SQLite file: an exclusive flock(2) on
    DATABASE-nitejarctl.lock (the database file itself must not be opened a
    second time: closing that descriptor would drop SQLite's own locks). Two
    greedy changes would otherwise take SQLite's unfair lock from each other
    in every pause they make for nitejar's writers, which would then rarely
    get it.

    The file is nitejarctl's own: created 0600 (owned like the database when
    root creates it), never reached through a symbolic link, and refused when
    it is not a regular file or is the database itself. When it cannot be
    opened for writing, a read-only descriptor takes the lock as well. The
    wait is bounded (`wait` seconds, then an error)."""

    def __init__(self, database_path: str, *, wait: float, on_wait=None, notice_after: float = NOTICE_AFTER,
                 sleep=time.sleep, clock=time.monotonic):
        self.database_path = database_path
        self.path = database_path + LOCK_SUFFIX
        self.wait, self.on_wait, self.notice_after = wait, on_wait, notice_after
        self.sleep, self.clock = sleep, clock
        self._fd = None

    def __enter__(self) -> TurnLock:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: no turns to take
            return self
        fd = self._open()
        try:
            self._take(fcntl, fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # and the lock with it
            self._fd = None

    def _take(self, fcntl, fd: int) -> None:
        started = self.clock()
        noticed = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            waited = self.clock() - started
            if waited >= self.wait:
                raise OperationalProblem(
                    f"another nitejarctl bulk change on this database did not finish within "
                    f"{self.wait:g} s (--lock-wait); nothing was changed")
            if not noticed and waited >= self.notice_after and self.on_wait is not None:
                noticed = True
                self.on_wait()
            self.sleep(POLL)

    def _open(self) -> int:
        nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
        created = not os.path.lexists(self.path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | nofollow, 0o600)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and not created:
                fd = self._open_readonly(nofollow)
            else:
                raise self._refusal(exc) from None
        try:
            self._check(fd, created)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_readonly(self, nofollow: int) -> int:
        try:
            return os.open(self.path, os.O_RDONLY | nofollow)
        except OSError as exc:
            raise self._refusal(exc) from None

    def _refusal(self, exc: OSError) -> OperationalProblem:
        if exc.errno == errno.ELOOP:
            return OperationalProblem(f"{self.path} is a symbolic link: refusing to follow it "
                                      "(remove it; nitejarctl creates that file itself)")
        return OperationalProblem(f"cannot open the bulk-change lock file {self.path}: {exc.strerror}")

    def _check(self, fd: int, created: bool) -> None:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OperationalProblem(f"{self.path} is not a regular file: refusing to use it as a lock")
        db = os.stat(self.database_path)
        if (st.st_dev, st.st_ino) == (db.st_dev, db.st_ino):
            raise OperationalProblem(f"{self.path} is the database itself: refusing to use it as a lock")
        if created:  # so that nitejar's own user can take turns too
            from nitejarctl.db.files import owned_like

            owned_like(fd, db)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
            with contextlib.suppress(OSError):  # a file an older version created 0644
                os.fchmod(fd, 0o600)
