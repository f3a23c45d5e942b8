"""`nitejarctl config`: the named databases of the config file."""

from __future__ import annotations

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import group


@group()
def config():
    """The config file: named databases (-d @NAME, NITEJARCTL_CONTEXT=NAME).

    The file is $XDG_CONFIG_HOME/nitejarctl/config.toml (~/.config/… by
    default), one section a database:

    \b
        [databases.prod]
        url = "postgresql://nitejar@db.internal/nitejar"
        description = "production"

    It holds no passwords: libpq's ~/.pgpass, PGPASSWORD or a service file
    do (postgresql:///?service=NAME); a URL with one is refused.

    \b
    Examples:
      nitejarctl config list
      nitejarctl -d @prod sessions list --stale 1h
      NITEJARCTL_CONTEXT=prod nitejarctl doctor
    """


@config.command(name="list")
@pass_settings
def config_list(settings):
    """List the named databases, their URLs masked.

    `current` marks the one NITEJARCTL_CONTEXT names.

    \b
    Examples:
      nitejarctl config list
      nitejarctl config list -o json
    """
    import os

    from nitejarctl.db import named as repo
    from nitejarctl.output import Column

    environ = os.environ
    current = environ.get(repo.CONTEXT_VAR, "").removeprefix("@")
    rows = []
    for entry in repo.load(environ).values():
        if repo.holds_password(entry.url):
            settings.warn(f"the URL of {entry.name!r} holds a password, which the file must not: it is "
                          "refused until it is removed (use ~/.pgpass or a service file)")
        rows.append({"name": entry.name, "url": repo.shown(entry.url), "description": entry.description,
                     "current": entry.name == current})
    columns = [Column("name"), Column("url"), Column("description"), Column("current", "bool")]
    if not rows and settings.fmt == "table":
        settings.info(f"no named databases ({repo.config_path(environ)})")
    settings.emit(rows, columns, id_field="name")
