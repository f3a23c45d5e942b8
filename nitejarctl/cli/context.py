"""Per-invocation settings shared by every command (`ctx.obj`).

The global options fill it, wherever on the command line they stand; the
database is opened on first use and closed when the command ends.
"""

from __future__ import annotations

import sys
import time

import click

from nitejarctl.db import DEFAULT_BUSY_TIMEOUT


class Settings:
    def __init__(self):
        self.database_url: str | None = None
        self.output: str | None = None
        self.no_color = False
        self.quiet = False
        self.verbose = False
        self.busy_timeout = DEFAULT_BUSY_TIMEOUT
        self._target = None
        self._db = None

    # ---------------------------------------------------------------- database

    @property
    def target(self):
        if self._target is None:
            from nitejarctl.db import parse_url, resolve_url

            url, _source = resolve_url(self.database_url)
            self._target = parse_url(url)
        return self._target

    @property
    def url_source(self) -> str:
        from nitejarctl.db import resolve_url

        return resolve_url(self.database_url)[1]

    def database(self, *, create: bool = False):
        """The open database (opened on first use; only migrate passes create)."""
        if self._db is None:
            from nitejarctl.db import open_database

            db = open_database(self.target, create=create, busy_timeout=self.busy_timeout)
            if self.verbose:
                _trace_sql(db)
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # ------------------------------------------------------------------ output

    @property
    def fmt(self) -> str:
        from nitejarctl.output import default_format

        return self.output or default_format()

    @property
    def color(self) -> bool:
        from nitejarctl.output import color_allowed

        return color_allowed(self.no_color)

    def info(self, message: str) -> None:
        """An informational line on stderr (silenced by -q)."""
        if not self.quiet:
            click.echo(message, err=True)

    def warn(self, message: str) -> None:
        click.echo(f"Warning: {message}", err=True)

    def emit(self, rows, columns, **kwargs) -> int:
        from nitejarctl.output import emit

        return emit(rows, columns, self.fmt, color=self.color, **kwargs)

    def emit_one(self, obj, **kwargs) -> None:
        from nitejarctl.output import emit_one

        emit_one(obj, self.fmt, color=self.color, **kwargs)

    def emit_report(self, report, lines=None) -> None:
        from nitejarctl.output import emit_report

        emit_report(report, self.fmt, color=self.color, lines=lines)

    def stderr_is_terminal(self) -> bool:
        try:
            return sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False


def _trace_sql(db) -> None:
    """-v: every statement and its time on stderr (passwords never reach SQL
    text): those run through the database's execute_sql, and those a
    repository runs on a connection of its own, reported to db.traced
    (see repositories._batch)."""
    original = db.execute_sql

    def report(sql, seconds: float) -> None:
        click.echo(f"-- {seconds * 1000:.1f} ms: {' '.join(str(sql).split())}", err=True)

    def traced(sql, params=None, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(sql, params, *args, **kwargs)
        finally:
            report(sql, time.perf_counter() - start)

    db.execute_sql = traced
    db.traced = report


pass_settings = click.make_pass_decorator(Settings)
