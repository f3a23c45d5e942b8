"""Where the database is: URL resolution, parsing and password masking.

Imports neither Peewee nor psycopg2: `--help` and shell completion use it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from nitejarctl.errors import UsageProblem

DEFAULT_PATH = "./data/nitejar.db"
PG_CONNECT_TIMEOUT = 10

# Every password seen in a URL this process handled; `mask_secrets` removes them
# from any text that is about to be shown (errors, tracebacks, logs).
_SECRETS: set[str] = set()


# --------------------------------------------------------------------------- URLs


def resolve_url(explicit: str | None, environ=None) -> tuple[str, str]:
    """(url, where it came from): the option (`@NAME`: a named database of the
    config file, db.named), then NITEJARCTL_CONTEXT (a name), NITEJAR_DATABASE_URL,
    DATABASE_URL, the default path."""
    from nitejarctl.db import named

    env = os.environ if environ is None else environ
    if explicit is not None:  # even "": `-d "$UNSET"` must not fall back to another database
        if explicit.startswith("@"):
            return named.url_of(explicit[1:], env), f"--database-url {explicit}"
        return explicit, "--database-url"
    if env.get(named.CONTEXT_VAR):
        name = env[named.CONTEXT_VAR].removeprefix("@")
        return named.url_of(name, env), f"{named.CONTEXT_VAR}={name}"
    for name in ("NITEJAR_DATABASE_URL", "DATABASE_URL"):
        if env.get(name):
            return env[name], name
    return DEFAULT_PATH, "default"


_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)")
# Any query parameter whose name says it holds a password (password, sslpassword, …).
_PASSWORD_PARAMETER = re.compile(r"(?i)([?&][^=&#]*password[^=&#]*=)[^&#]*")


def is_password_parameter(name: str) -> bool:
    return "password" in name.lower()


def mask_url(url: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`.

    The userinfo ends at the last `@` before the query (a password may hold an
    unencoded `@`, which urlsplit reads the same way), and every query
    parameter naming a password is masked too."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return url
    head, rest = scheme.group(1), url[scheme.end():]
    query_at = rest.find("?")
    at = rest.rfind("@", 0, len(rest) if query_at < 0 else query_at)
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        if colon:
            rest = f"{user}:***{rest[at:]}"
    return head + _PASSWORD_PARAMETER.sub(r"\1***", rest)


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
    password_given: bool = False  # the URL itself holds a password

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
        params["password"] = unquote(parts.password)
        _remember(parts.password, params["password"])
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
        if is_password_parameter(key):
            _remember(value)
        params[key] = value
    if "PGCONNECT_TIMEOUT" not in os.environ:
        # libpq would wait for ever for a server that does not answer.
        params.setdefault("connect_timeout", PG_CONNECT_TIMEOUT)
    # Only what the URL names is passed on: libpq fills in the rest from its
    # environment (PGHOST, PGDATABASE, PGUSER, PGPASSWORD, PGSERVICE, …), its
    # service file and ~/.pgpass, as psql does.
    return Target("postgresql", mask_url(text), params=params,
                  password_given=any(is_password_parameter(k) for k in params))


def _remember(*secrets: str) -> None:
    _SECRETS.update(s for s in secrets if s)
