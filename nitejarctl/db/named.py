"""Named databases: `$XDG_CONFIG_HOME/nitejarctl/config.toml` names the
databases of several deployments; `-d @NAME` picks one, NITEJARCTL_CONTEXT
names the default.

    [databases.prod]
    url = "postgresql://nitejar@db.internal/nitejar"
    description = "production"

    [databases.local]
    url = "./data/nitejar.db"

The file holds no password: a URL with one is refused (libpq's service
files and ~/.pgpass keep them, readable by their owner alone).
Imports neither Peewee nor psycopg2 (shell completion uses it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nitejarctl.errors import UsageProblem

CONTEXT_VAR = "NITEJARCTL_CONTEXT"

# A libpq keyword/value string (`host=db password=…`) is no URL nitejarctl
# reads (it would be taken as a file name), but the file must not hold its
# password either, nor show it.
_KEYWORD_PASSWORD = re.compile(r"(?i)((?:^|\s)\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)")


@dataclass(frozen=True)
class Named:
    name: str
    url: str
    description: str = ""


def config_path(environ=None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "nitejarctl" / "config.toml"


def load(environ=None) -> dict[str, Named]:
    """The named databases of the config file ({} when there is none); a
    usage error for a file that cannot be read or is not as described."""
    import tomllib

    path = config_path(environ)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UsageProblem(f"{path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    databases = data.get("databases", {})
    if not isinstance(databases, dict):
        raise UsageProblem(f"{path}: 'databases' must be a table ([databases.NAME] sections)")
    named = {}
    for name, entry in databases.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or not entry["url"].strip():
            raise UsageProblem(f"{path}: [databases.{name}] needs url = \"…\" (a SQLite path or a "
                               "postgresql:// URL)")
        description = entry.get("description", "")
        named[name] = Named(name, entry["url"], description if isinstance(description, str) else "")
    return named


def holds_password(url: str) -> bool:
    """Whether `url` holds a password: in a URL's userinfo or query, or as a
    libpq `password=` keyword."""
    from nitejarctl.db.urls import parse_url

    if "://" not in url and _KEYWORD_PASSWORD.search(url):
        return True
    return parse_url(url).password_given


def shown(url: str) -> str:
    """`url` with every password in it masked."""
    from nitejarctl.db.urls import mask_url

    if "://" not in url:
        return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + "***", url)
    return mask_url(url)


def url_of(name: str, environ=None) -> str:
    """The URL the config file names `name`: a usage error for an unknown
    name, or for a URL that holds a password."""
    named = load(environ)
    path = config_path(environ)
    entry = named.get(name)
    if entry is None:
        known = f" (named there: {', '.join(sorted(named))})" if named else ""
        where = path if path.exists() else f"{path}, which does not exist"
        raise UsageProblem(f"no database named {name!r} in {where}{known}")
    if holds_password(entry.url):
        raise UsageProblem(f"{path}: the URL of {name!r} holds a password; keep it out of the file "
                           "(~/.pgpass, PGPASSWORD or a service file: postgresql:///?service=NAME)")
    return entry.url
