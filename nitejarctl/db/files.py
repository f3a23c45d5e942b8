"""Files nitejarctl creates beside a database (backups, its lock file): never
reached through a symbolic link, never more readable than the database,
owned like it when root creates them."""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from nitejarctl.errors import OperationalProblem


def private_mode(source_mode: int) -> int:
    """The permission bits of a copy of a file with `source_mode`: the same
    read and write bits, never execute (so at most 0600 when the source is
    private to its owner)."""
    return stat.S_IMODE(source_mode) & 0o666


def owned_like(fd: int, source: os.stat_result) -> None:
    """Give the file open on `fd` the owner and group of `source` when root
    created it, so that the database's own user can use it too."""
    if os.geteuid() != 0:
        return
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (source.st_uid, source.st_gid):
        with contextlib.suppress(OSError):
            os.fchown(fd, source.st_uid, source.st_gid)


def create_copy_file(path: str, source: str, *, what: str = "file") -> int:
    """Create `path` for a copy of `source`, exclusively (O_EXCL: never an
    existing file, nor what a symbolic link planted at that name points to)
    with `source`'s read and write bits and owner. Returns the open
    descriptor (the caller closes it)."""
    src = os.stat(source)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)  # the final mode is set below, whatever the umask
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            kind = "a symbolic link" if os.path.islink(path) else "already there"
            raise OperationalProblem(f"{what} {path} is {kind}: refusing to overwrite it or follow it") from None
        raise OperationalProblem(f"cannot create {what} {path}: {exc.strerror}") from None
    try:
        owned_like(fd, src)
        os.fchmod(fd, private_mode(src.st_mode))
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return fd


def same_file(fd: int, path: str) -> bool:
    """Is `path` (not followed if a link) the very file open on `fd`?"""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
