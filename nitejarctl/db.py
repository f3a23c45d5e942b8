"""Database URL -> connection: resolution, pragmas, transactions, masking.

Peewee and psycopg2 are imported only when a connection is opened, so that
`--help` and shell completion stay fast.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from nitejarctl.errors import DatabaseMissing, OperationalProblem, SchemaProblem, UsageProblem

DEFAULT_PATH = "./data/nitejar.db"
DEFAULT_BUSY_TIMEOUT = 5.0
PG_CONNECT_TIMEOUT = 10

# Every password seen in a URL this process handled; `mask_secrets` removes them
# from any text that is about to be shown (errors, tracebacks, logs).
_SECRETS: set[str] = set()


def now() -> int:
    """The current time as integer Unix seconds (the unit of every time column)."""
    return int(time.time())


# --------------------------------------------------------------------------- URLs


def resolve_url(explicit: str | None, environ=None) -> tuple[str, str]:
    """(url, where it came from): option, then NITEJAR_DATABASE_URL, DATABASE_URL, default."""
    env = os.environ if environ is None else environ
    if explicit is not None:  # even "": `-d "$UNSET"` must not fall back to another database
        return explicit, "--database-url"
    for name in ("NITEJAR_DATABASE_URL", "DATABASE_URL"):
        if env.get(name):
            return env[name], name
    return DEFAULT_PATH, "default"


_URL_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*):([^@]*)@")


def mask_url(url: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`."""
    masked = _URL_PASSWORD.sub(r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", masked)


def mask_secrets(text: str) -> str:
    """Replace every known password (raw or URL-encoded) in `text` with ***."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class Target:
    """Where the database is: a parsed, validated URL."""

    backend: str  # "sqlite" or "postgresql"
    display: str  # the URL with its password masked
    path: str | None = None  # SQLite file path; ":memory:" for an in-memory database
    params: dict = field(default_factory=dict)  # psycopg2 connect() keywords

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @property
    def is_memory(self) -> bool:
        return self.path == ":memory:"


def parse_url(url: str) -> Target:
    """Parse any accepted form; an unsupported scheme is a usage error."""
    text = url.strip()
    if not text:
        raise UsageProblem("the database URL is empty")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    mistyped = None if scheme else re.match(r"(?i)(sqlite|postgres|postgresql):", text)
    if mistyped:
        # `postgresql:/db` or `sqlite:x.db` is a mistyped URL, not a file to create. Not
        # shown: without "//" a password in it cannot be told apart to be masked.
        raise UsageProblem(f"malformed database URL: it starts with {mistyped.group(0)!r} but not "
                           f"'{mistyped.group(1)}://' (use sqlite:///path/to/file.db or "
                           "postgresql://user@host/db)")
    if scheme in ("postgres", "postgresql"):
        return _parse_postgres(text)
    if scheme == "sqlite":
        rest = text[len("sqlite://"):]
        if rest in ("", "/", "/:memory:"):
            return Target("sqlite", mask_url(text), path=":memory:")
        if not rest.startswith("/"):
            raise UsageProblem(f"malformed SQLite URL {mask_url(text)!r} (use sqlite:///path/to/file.db)")
        path = unquote(rest[1:].split("?", 1)[0])
        return Target("sqlite", mask_url(text), path=path)
    if scheme:
        raise UsageProblem(
            f"unsupported database URL scheme {scheme!r} in {mask_url(text)!r} "
            "(use a file path, sqlite:///…, postgres:// or postgresql://)"
        )
    if text == ":memory:":
        return Target("sqlite", text, path=":memory:")
    if text.startswith("file:"):
        text = text[len("file:"):].split("?", 1)[0]
    return Target("sqlite", text, path=text)


def _parse_postgres(text: str) -> Target:
    parts = urlsplit(text)
    params: dict = {}
    if parts.password is not None:
        _SECRETS.add(parts.password)
        _SECRETS.add(unquote(parts.password))
        params["password"] = unquote(parts.password)
    if parts.username:
        params["user"] = unquote(parts.username)
    try:
        port = parts.port
    except ValueError:
        raise UsageProblem(f"invalid port in database URL {mask_url(text)!r}") from None
    if parts.hostname:
        params["host"] = unquote(parts.hostname)
    if port:
        params["port"] = port
    dbname = unquote(parts.path.lstrip("/"))
    if dbname:
        params["dbname"] = dbname
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password":
            _SECRETS.add(value)
        params[key] = value
    params.setdefault("connect_timeout", PG_CONNECT_TIMEOUT)
    return Target("postgresql", mask_url(text), params=params)


# --------------------------------------------------------------------- connecting


def open_database(target: Target, *, create: bool = False, readonly: bool = False,
                  busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
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
    import peewee

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
        database = f"file:{_uri_path(path)}?mode={mode}"
        uri = True
    db = peewee.SqliteDatabase(
        database,
        pragmas={"foreign_keys": 1, "busy_timeout": int(busy_timeout * 1000)},
        timeout=busy_timeout,
        lock_type="IMMEDIATE",
        uri=uri,
        # One connection for the whole command, whichever thread uses it: a
        # batched change runs its statement in a thread of its own while the
        # command's thread reads the rows (repositories._batch).
        thread_safe=False,
        check_same_thread=False,
    )
    try:
        db.connect()
        db.execute_sql("SELECT count(*) FROM sqlite_master").fetchone()
        if db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal":
            # Safe in WAL mode (a crash of any process loses nothing committed);
            # spares an fsync per commit, which batched bulk changes make many of.
            db.execute_sql("PRAGMA synchronous = NORMAL")
    except peewee.DatabaseError as exc:
        db.close()
        reason = str(exc)
        if "not a database" in reason:
            raise OperationalProblem(f"{path} is not a SQLite database ({reason})") from None
        raise OperationalProblem(f"cannot open SQLite database {path}: {reason}") from None
    return db


def _uri_path(path: str) -> str:
    from urllib.parse import quote

    return quote(os.path.abspath(path))


def _open_postgres(target: Target, *, readonly: bool):
    try:
        import peewee
        import psycopg2  # noqa: F401  (peewee picks the driver up when present)
    except ImportError as exc:  # pragma: no cover - psycopg2-binary is a dependency
        raise OperationalProblem(f"PostgreSQL support is not installed: {exc}") from None
    params = dict(target.params)
    dbname = params.pop("dbname", None) or params.get("user") or "postgres"
    if readonly:
        params["options"] = (params.get("options", "") + " -c default_transaction_read_only=on").strip()
    db = peewee.PostgresqlDatabase(dbname, **params)
    try:
        db.connect()
    except (peewee.DatabaseError, peewee.InterfaceError) as exc:
        first = mask_secrets(str(exc)).strip().splitlines()
        reason = first[-1] if first else type(exc).__name__
        reason = reason.removeprefix("FATAL:").strip()
        raise OperationalProblem(f"cannot connect to {target.display}: {reason}") from None
    return db


def dialect(db) -> str:
    """'sqlite' or 'postgresql' for an open database."""
    import peewee

    return "postgresql" if isinstance(db, peewee.PostgresqlDatabase) else "sqlite"


# ------------------------------------------------------------------ introspection


def table_names(db) -> set[str]:
    return set(db.get_tables())


def table_columns(db, table: str) -> list[str]:
    """Live column names of `table` (empty when the table does not exist)."""
    cache = db.__dict__.setdefault("_nitejarctl_columns", {})
    if table not in cache:
        cache[table] = [c.name for c in db.get_columns(table)]
    return cache[table]


def require_table(db, table: str, what: str | None = None) -> None:
    """Fail with one line when the database lacks a table a command needs."""
    if not table_columns(db, table):
        hint = ""
        if "kysely_migration" in table_names(db):
            hint = " (this database is managed by nitejar's migrator, which does not create it)"
        elif not table_names(db) - {"sqlite_sequence"}:
            hint = " (the database is empty: run 'nitejarctl migrate')"
        raise SchemaProblem(f"this database has no {table!r} table{hint}")


def present_fields(db, model) -> list:
    """The model's fields that the live table has: never select a missing column."""
    live = set(table_columns(db, model._meta.table_name))
    if not live:
        require_table(db, model._meta.table_name)
    return [f for f in model._meta.sorted_fields if f.column_name in live]


# ----------------------------------------------------------------------- reading


def stream(db, query, *, batch_size: int = 2000):
    """Yield result rows as dicts without loading them all into memory.

    SQLite iterates its cursor; PostgreSQL uses a server-side (named) cursor.
    `query` is a Peewee query or a (sql, params) pair.
    """
    sql, params = query if isinstance(query, tuple) else query.sql()
    if dialect(db) == "postgresql":
        yield from _stream_postgres(db, sql, params, batch_size)
        return
    cursor = db.execute_sql(sql, params)
    try:
        names = [d[0] for d in cursor.description]
        while True:
            rows = cursor.fetchmany(batch_size)
            if not rows:
                break
            for row in rows:
                yield dict(zip(names, row))
    finally:
        cursor.close()


def _stream_postgres(db, sql, params, batch_size):
    conn = db.connection()
    in_transaction = db.transaction_depth() > 0
    if not in_transaction:
        conn.autocommit = False
    cursor = conn.cursor(name=f"nitejarctl_{id(conn)}_{time.monotonic_ns()}")
    cursor.itersize = batch_size
    try:
        cursor.execute(sql, params)
        names = None
        for row in cursor:
            if names is None:
                names = [d[0] for d in cursor.description]
            yield dict(zip(names, row))
    finally:
        try:
            cursor.close()
        finally:
            if not in_transaction:
                conn.rollback()
                conn.autocommit = True
