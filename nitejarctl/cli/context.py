"""Per-invocation settings shared by every command (`ctx.obj`).

The global options fill it, wherever on the command line they stand; the
database is opened on first use and closed when the command ends. A caller
(a test) may pass its own Settings as `obj` to steer what no option sets:
how bulk changes are batched, whether stderr counts as a terminal, how soon a
progress bar appears.
"""

from __future__ import annotations

import sys

import click

from nitejarctl.db import DEFAULT_BUSY_TIMEOUT

DEFAULT_LOCK_WAIT = 600.0


class Settings:
    def __init__(self, *, batching=None, stderr_terminal: bool | None = None,
                 progress_delay: float | None = None, interactive: bool | None = None):
        self.database_url: str | None = None
        self.output: str | None = None
        self.no_color = False
        self.quiet = False
        self.verbose = False
        self.busy_timeout = DEFAULT_BUSY_TIMEOUT
        self.lock_wait = DEFAULT_LOCK_WAIT
        self.columns: list[str] | None = None  # a listing's --columns
        self.sort: str | None = None  # a listing's --sort [-]FIELD
        self.batching = batching  # a db.batches.Batching, or None for the default
        self.stderr_terminal = stderr_terminal  # None: ask stderr
        self.progress_delay = progress_delay  # None: output.progress's default
        self._interactive = interactive  # None: are stdin and stderr terminals?
        self._target = None
        self._db = None

    # ---------------------------------------------------------------- database

    @property
    def target(self):
        if self._target is None:
            from nitejarctl.db import parse_url, resolve_url

            url, source = resolve_url(self.database_url)
            self._target = parse_url(url)
            if source == "--database-url" and self._target.password_given:
                self.warn("a password given with -d/--database-url is visible to every local user "
                          "in the process list; use PGPASSWORD, ~/.pgpass or a service file "
                          "(postgresql:///?service=NAME) instead")
        return self._target

    @property
    def url_source(self) -> str:
        from nitejarctl.db import resolve_url

        return resolve_url(self.database_url)[1]

    def database(self, *, create: bool = False, readonly: bool = False):
        """The open database (opened on first use; only migrate passes create,
        only query readonly)."""
        if self._db is None:
            from nitejarctl.db import open_database

            db = open_database(self.target, create=create, readonly=readonly,
                               busy_timeout=self.busy_timeout)
            if self.verbose:
                from nitejarctl import timings

                timings.enable()
                db.trace = _trace
            db.notify = self.info
            if getattr(db, "read_only_note", None):
                self.info(db.read_only_note)
            self._db = db
            from nitejarctl import startup

            startup.ready()
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def bulk(self, **kwargs):
        """How a bulk change runs (a db.batches.Bulk), with this invocation's
        batching (else the database's own) and --lock-wait, and a line on
        stderr when it waits its turn."""
        import dataclasses

        from nitejarctl.db.batches import Bulk

        batching = dataclasses.replace(self.batching or self.database().batching(), lock_wait=self.lock_wait)
        return Bulk(batching=batching, on_wait=self._waiting, **kwargs)

    def turn(self, db):
        """Wait for this database's turn as a bulk change does (db.turn), for
        a command that rewrites the whole database."""
        return db.turn(wait=self.lock_wait, on_wait=self._waiting)

    def _waiting(self) -> None:
        self.info("waiting for another nitejarctl bulk change on this database to finish…")

    # ------------------------------------------------------------------ output

    @property
    def fmt(self) -> str:
        """The format asked for (-o wide is a table)."""
        from nitejarctl.output.terminal import default_format

        return "table" if self.output == "wide" else self.output or default_format()

    @property
    def wide(self) -> bool:
        """-o wide: tables show every column and drop none."""
        return self.output == "wide"

    @property
    def color(self) -> bool:
        from nitejarctl.output.terminal import color_allowed

        return color_allowed(self.no_color)

    def info(self, message: str) -> None:
        """An informational line on stderr (silenced by -q)."""
        if not self.quiet:
            say(message)

    def warn(self, message: str) -> None:
        say(f"Warning: {message}")

    def emit(self, rows, columns, **kwargs) -> int:
        from nitejarctl.output import emit

        if self.wide:
            kwargs["fit"] = "none"
        return emit(rows, columns, self.fmt, color=self.color, **kwargs)

    def emit_count(self, n: int) -> int:
        """-o count: the number alone, on a line of its own."""
        click.echo(str(n))
        return n

    def emit_one(self, obj, **kwargs) -> None:
        from nitejarctl.output import emit_one

        emit_one(obj, self.fmt, color=self.color, **kwargs)

    def emit_report(self, report, lines=None) -> None:
        from nitejarctl.output import emit_report

        emit_report(report, self.fmt, color=self.color, lines=lines)

    def stderr_is_terminal(self) -> bool:
        if self.stderr_terminal is not None:
            return self.stderr_terminal
        from nitejarctl.output.terminal import isatty

        return isatty(sys.stderr)

    def stdout_is_terminal(self) -> bool:
        from nitejarctl.output.terminal import isatty

        return isatty(sys.stdout)

    def interactive(self) -> bool:
        """Can a person answer a question here?"""
        if self._interactive is not None:
            return self._interactive
        from nitejarctl.output.terminal import interactive

        return interactive()

    def progress_bars(self, unit: str = "rows"):
        """Several progress bars at once (output.ProgressBars), on the terms of `progress`."""
        from nitejarctl.output.progress import ProgressBars

        return ProgressBars(color=self.color, delay=self.progress_delay, unit=unit,
                            enabled=self.stderr_is_terminal() and not self.quiet,
                            force_terminal=self.stderr_terminal)

    def progress(self, label: str, total=None):
        """A progress bar on stderr for long work (output.ProgressBar): on a
        terminal, not with -q."""
        from nitejarctl.output import ProgressBar

        return ProgressBar(label, total, color=self.color, delay=self.progress_delay,
                           enabled=self.stderr_is_terminal() and not self.quiet,
                           force_terminal=self.stderr_terminal)


def _trace(sql, params, seconds: float) -> None:
    """-v: every statement and its time on stderr (passwords never reach SQL text)."""
    from nitejarctl import timings

    timings.add("statements", seconds)
    click.echo(f"-- {seconds * 1000:.1f} ms: {' '.join(str(sql).split())}", err=True)


def say(line: str) -> None:
    """One line on stderr, its control characters shown escaped (the database
    quoted in it is nitejar's users' text)."""
    from nitejarctl.visible import visible

    click.echo(visible(line), err=True)


pass_settings = click.make_pass_decorator(Settings)
