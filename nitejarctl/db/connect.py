"""Opening a database: a `Target` (db.urls) becomes an open, checked
`dialects.Sqlite` or `dialects.Postgres` with the models bound to it."""

from __future__ import annotations

import os
from urllib.parse import quote

from nitejarctl.db.urls import Target, mask_secrets
from nitejarctl.errors import DatabaseMissing, OperationalProblem

LIBPQ_DEFAULTS = "postgresql://"


def open_database(target: Target, *, create: bool = False, readonly: bool = False,
                  busy_timeout: float = 5.0):
    """Open and check a connection, and bind the models to it.

    Only `create=True` (migrate) may create a SQLite file; otherwise a missing
    file is an error naming the path.
    """
    if target.is_sqlite:
        db = _open_sqlite(target, create=create, readonly=readonly, busy_timeout=busy_timeout)
    else:
        db = _open_postgres(target, readonly=readonly)
    from nitejarctl import models

    models.database_proxy.initialize(db)
    return db


def _open_sqlite(target: Target, *, create: bool, readonly: bool, busy_timeout: float):
    path = target.path
    if target.is_memory:
        database, uri = ":memory:", False
    else:
        if os.path.isdir(path):
            raise OperationalProblem(f"{path} is a directory, not a SQLite database file")
        if not os.path.exists(path):
            if not create:
                raise DatabaseMissing(
                    f"database file {path} does not exist "
                    "(run 'nitejarctl migrate' to create it, or pass -d/--database-url)"
                )
            parent = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise OperationalProblem(f"cannot create directory {parent}: {exc.strerror}") from None
        mode = "ro" if readonly else ("rwc" if create else "rw")
        database = f"file:{quote(os.path.abspath(path))}?mode={mode}"
        uri = True
    try:
        db = _connect_sqlite(database, uri, path, busy_timeout)
    except _CannotWrite as exc:
        if create or target.is_memory or not os.access(path, os.R_OK):
            raise OperationalProblem(f"cannot open SQLite database {path}: {exc}") from None
        return _open_read_only(path, busy_timeout)
    if not target.is_memory and not readonly and not os.access(path, os.W_OK):
        # SQLite opened it read-only by itself: a write says why at once, not at its lock file.
        db.read_only_reason = f"this user cannot write {path}"
    return db


class _CannotWrite(Exception):
    """SQLite could not open a database it may only read as it normally does."""


def _open_read_only(path: str, busy_timeout: float):
    """A database in WAL mode needs its -shm file writable (created when it is
    missing) even to be read: where this user cannot, read it read-only —
    with the WAL when nitejar has it open (its -wal file exists), else as an
    immutable file (a -wal file that appears meanwhile is not seen)."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    wal = os.path.exists(path + "-wal")
    query = "mode=ro" if wal else "mode=ro&immutable=1"
    if os.path.exists(path + "-shm"):
        reason = f"this user cannot write {path}-shm"
    else:
        reason = f"this user cannot write to {directory}, where SQLite creates the database's -shm file"
    try:
        db = _connect_sqlite(f"file:{quote(os.path.abspath(path))}?{query}", True, path, busy_timeout)
    except _CannotWrite as exc:
        raise OperationalProblem(f"cannot read SQLite database {path}: {exc} ({reason})") from None
    db.read_only_reason = reason
    db.read_only_note = (f"note: opened {path} read-only: {reason}"
                         + ("" if wal else " (as an immutable file: changes made meanwhile are not seen)"))
    return db


def _connect_sqlite(database: str, uri: bool, path: str, busy_timeout: float):
    import peewee

    from nitejarctl.db.sqlite import Sqlite

    db = Sqlite(
        database,
        pragmas={"foreign_keys": 1, "busy_timeout": int(busy_timeout * 1000)},
        timeout=busy_timeout,
        lock_type="IMMEDIATE",
        uri=uri,
        # One connection for the whole command, whichever thread uses it: a
        # batched change runs its statement in a thread of its own while the
        # command's thread reads the rows (db.changed_rows).
        thread_safe=False,
        check_same_thread=False,
    )
    try:
        db.connect()
        db.execute_sql("SELECT count(*) FROM sqlite_master").fetchone()
        if db.pragma("journal_mode") == "wal":
            # Safe in WAL mode (a crash of any process loses nothing committed);
            # spares an fsync per commit, which batched bulk changes make many of.
            db.execute_sql("PRAGMA synchronous = NORMAL")
    except peewee.DatabaseError as exc:
        db.close()
        reason = str(exc)
        if "attempt to write a readonly database" in reason or "unable to open database file" in reason:
            raise _CannotWrite(reason) from None
        if "not a database" in reason:
            raise OperationalProblem(f"{path} is not a SQLite database ({reason})") from None
        raise OperationalProblem(f"cannot open SQLite database {path}: {reason}") from None
    return db


def _open_postgres(target: Target, *, readonly: bool):
    try:
        import peewee
        import psycopg2  # noqa: F401  (peewee picks the driver up when present)
    except ImportError as exc:  # pragma: no cover - psycopg2-binary is a dependency
        raise OperationalProblem(f"PostgreSQL support is not installed: {exc}") from None
    from nitejarctl.db.postgres import Postgres

    params = dict(target.params)
    if readonly:
        params["options"] = (params.get("options", "") + " -c default_transaction_read_only=on").strip()
    # An empty URI as the DSN: libpq takes only the keywords the URL named and
    # fills in the rest itself (PGDATABASE, PGSERVICE, ~/.pgpass, …); the
    # database's name is never guessed here.
    db = Postgres(LIBPQ_DEFAULTS, **params)
    try:
        db.connect()
    except (peewee.DatabaseError, peewee.InterfaceError) as exc:
        first = mask_secrets(str(exc)).strip().splitlines()
        reason = first[-1] if first else type(exc).__name__
        reason = reason.removeprefix("FATAL:").strip()
        raise OperationalProblem(f"cannot connect to {target.display}: {reason}") from None
    return db
