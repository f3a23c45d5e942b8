"""Backups and restores of the whole database, on either backend.

A backup is written into a private directory beside its destination (mode
0700, made for it), checked there, and only then put in place: linked to its
name, which never follows a symbolic link or replaces a file (with
`force`, renamed over the file that is there). A backup that fails or is
stopped leaves nothing at the destination. The file itself is created
exclusively, with the database's read and write bits and owner
(db.files.create_copy_file), or 0600 when the database has no file.

What is copied, checked and restored is the backend's (`db.backups()`:
db.sqlite_copy for SQLite, db.pg_tools for PostgreSQL).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import time

from nitejarctl.errors import OperationalProblem, UsageProblem

# What makes a database nitejar's: its migrator's table, or nitejarctl's.
MARKERS = ("kysely_migration", "nitejarctl_migrations")


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def safety_path(db) -> str:
    """Where a backup taken before a change goes: DATABASE.YYYYMMDD-HHMMSS.bak
    beside a SQLite file, DBNAME.YYYYMMDD-HHMMSS.dump here for PostgreSQL."""
    return db.backups().safety_path(stamp())


def backup(db, dest: str, *, force: bool = False, compact: bool = False, progress=None, batching=None,
           what: str = "backup file", force_hint: str | None = None) -> dict:
    """Write a checked backup of `db` to `dest`. Returns the report: path,
    bytes, seconds, integrity and rows per table."""
    from nitejarctl.db.batches import Batching

    started = time.monotonic()
    backups = db.backups()
    with Staging(dest, force=force, like=db.file_path(), what=what, force_hint=force_hint) as staged:
        checked = backups.write(staged.path, progress=progress, compact=compact,
                                batching=batching or Batching())
        size = os.path.getsize(staged.path)
        staged.commit()
    return {"path": dest, "bytes": size, "seconds": round(time.monotonic() - started, 3),
            "integrity": checked.integrity, "rows": checked.rows}


def check_source(db, src: str):
    """Can `src` be restored into `db`? It is a file other than the database,
    of the backend's kind, sound, and a nitejar database. Returns its check
    (db.sqlite_copy.FileCheck)."""
    try:
        st = os.stat(src)
    except OSError as exc:
        raise OperationalProblem(f"cannot read {src}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise OperationalProblem(f"{src} is not a regular file")
    path = db.file_path()
    if path is not None and os.path.exists(path) and os.path.samefile(src, path):
        raise UsageProblem(f"{src} is the database itself")
    checked = db.backups().check(src)
    if checked.integrity != "ok":
        raise OperationalProblem(f"{src} failed its integrity check: {checked.integrity}")
    if not set(MARKERS) & checked.tables:
        raise OperationalProblem(f"{src} is not a nitejar database: it has neither nitejar's migration "
                                 f"table ({MARKERS[0]}) nor nitejarctl's ({MARKERS[1]})")
    return checked


class Staging:
    """A new file for `dest`, written in a private directory beside it and
    put in place by `commit()`; leaving the block removes what is left."""

    def __init__(self, dest: str, *, force: bool = False, like: str | None = None, what: str = "backup file",
                 force_hint: str | None = None):
        self.dest, self.force, self.like, self.what = dest, force, like, what
        self.directory = self.path = None
        self._refuse_existing(force_hint)

    def _refuse_existing(self, force_hint: str | None) -> None:
        try:
            st = os.lstat(self.dest)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OperationalProblem(f"cannot use {self.what} {self.dest}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise OperationalProblem(f"{self.what} {self.dest} is a symbolic link: refusing to overwrite it "
                                     "or follow it")
        if not stat.S_ISREG(st.st_mode):
            raise OperationalProblem(f"{self.what} {self.dest} is not a regular file: refusing to replace it")
        if self.force:
            return
        if force_hint:
            raise UsageProblem(f"{self.what} {self.dest} already exists: refusing to overwrite it "
                               f"({force_hint})")
        raise OperationalProblem(f"{self.what} {self.dest} is already there: refusing to overwrite it "
                                 "or follow it")

    def __enter__(self) -> Staging:
        parent = os.path.dirname(os.path.abspath(self.dest))
        name = os.path.basename(self.dest)
        try:
            self.directory = tempfile.mkdtemp(prefix=f".{name}.", suffix=".nitejarctl-tmp", dir=parent)
        except OSError as exc:
            raise OperationalProblem(f"cannot create {self.what} {self.dest}: {exc.strerror}") from None
        self.path = os.path.join(self.directory, name)
        try:
            if self.like is not None:
                from nitejarctl.db.files import create_copy_file

                fd = create_copy_file(self.path, self.like, what=self.what)
            else:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600)
            os.close(fd)
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._remove()

    def commit(self) -> None:
        """Flush the file to disk and give it its name."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if self.force and os.path.lexists(self.dest):
            self._refuse_existing(None)  # still a regular file, not a link planted meanwhile
            os.rename(self.path, self.dest)  # replaces the name itself, never what a link points to
        else:
            self._link()
        with contextlib.suppress(OSError):  # the new name on disk too
            fd = os.open(os.path.dirname(os.path.abspath(self.dest)), os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _link(self) -> None:
        try:
            os.link(self.path, self.dest)  # fails on any existing name, a link included
            return
        except FileExistsError:
            self._refuse_existing(None)
            raise OperationalProblem(f"{self.what} {self.dest} appeared while the backup was being written: "
                                     "refusing to overwrite it") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
                raise OperationalProblem(f"cannot create {self.what} {self.dest}: {exc.strerror}") from None
        # No hard links on this file system: claim the name exclusively, then move the file over it.
        try:
            os.close(os.open(self.dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600))
        except FileExistsError:
            self._refuse_existing(None)
            raise OperationalProblem(f"{self.what} {self.dest} appeared while the backup was being written: "
                                     "refusing to overwrite it") from None
        os.rename(self.path, self.dest)

    def _remove(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
