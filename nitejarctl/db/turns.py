"""Bulk changes on one SQLite file take turns (`TurnLock`)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time

from nitejarctl.errors import OperationalProblem

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
