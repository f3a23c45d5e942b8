"""Shared option machinery: global options on every command, durations,
--dry-run / --yes / --limit, confirmation and listings.

Imported on every invocation, so it imports neither Rich nor Peewee.
"""

from __future__ import annotations

import math
import sys

import click

from nitejarctl.cli.context import Settings
from nitejarctl.errors import UsageProblem

FORMATS = ("table", "json", "jsonl", "csv", "tsv", "ids")
TABLE_LIMIT = 100

# ------------------------------------------------------------- global options


def _store(attr):
    # Unset options are None (flags False), so a later position never resets
    # what an earlier one set.
    def callback(ctx, param, value):
        if value is None or value is False:
            return value
        settings = ctx.find_object(Settings)
        if settings is not None:
            setattr(settings, attr, value)
        return value

    return callback


def global_options() -> list[click.Option]:
    """Fresh instances of the global options (they are accepted before the group
    and after the command alike; the last one given wins)."""
    common = dict(expose_value=False)
    return [
        click.Option(["-d", "--database-url"], metavar="URL", callback=_store("database_url"),
                     help="Database: a SQLite path, sqlite:///…, postgresql://… "
                          "[env: NITEJAR_DATABASE_URL, DATABASE_URL; default ./data/nitejar.db]",
                     **common),
        click.Option(["-o", "--output"], type=click.Choice(FORMATS, case_sensitive=False),
                     callback=_store("output"),
                     help="Output format [default: table on a terminal, tsv otherwise].", **common),
        click.Option(["--no-color"], is_flag=True, callback=_store("no_color"),
                     help="No colour (also NO_COLOR, TERM=dumb).", **common),
        click.Option(["-q", "--quiet"], is_flag=True, callback=_store("quiet"),
                     help="Suppress informational messages on stderr.", **common),
        click.Option(["-v", "--verbose"], is_flag=True, callback=_store("verbose"),
                     help="Show SQL with timings, and the traceback on error.", **common),
        click.Option(["--busy-timeout"], type=FiniteFloatRange(min=0), metavar="SECONDS",
                     callback=_store("busy_timeout"),
                     help="How long to wait for a locked SQLite database [default: 5].", **common),
    ]


GLOBAL_NAMES = {"database_url", "output", "no_color", "quiet", "verbose", "busy_timeout"}


def _format_options(command, ctx, formatter) -> None:
    """The command's own options first, then the global ones under their own heading."""
    own, common = [], []
    for param in command.get_params(ctx):
        record = None if isinstance(param, click.Argument) else param.get_help_record(ctx)
        if record is not None:
            (common if param.name in GLOBAL_NAMES else own).append(record)
    if own:
        with formatter.section("Options"):
            formatter.write_dl(own)
    if common:
        with formatter.section("Global options"):
            formatter.write_dl(common)


class NitejarCommand(click.Command):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.params.extend(global_options())

    def format_options(self, ctx, formatter):
        _format_options(self, ctx, formatter)


class NitejarGroup(click.Group):
    command_class = NitejarCommand

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(*args, **kwargs)
        self.params.extend(global_options())

    def format_options(self, ctx, formatter):
        _format_options(self, ctx, formatter)
        self.format_commands(ctx, formatter)


NitejarGroup.group_class = NitejarGroup


def group(name=None, **kwargs):
    """A command group whose commands all take the global options."""
    return click.group(name, cls=NitejarGroup, **kwargs)


# ----------------------------------------------------------------- value types

MAX_INTEGER = 2**63 - 1  # the largest value a database integer (or a LIMIT) holds


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and infinities (float() accepts
    'nan', 'inf', '1e400'; a NaN rate or strength would reach the database)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = 0.0  # not a number at all: click says so below
            if not math.isfinite(number):
                self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(value, param, ctx)


class BoundedIntRange(click.IntRange):
    """click.IntRange that also refuses integers no database column holds."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if abs(number) > MAX_INTEGER:
            self.fail(f"{number} is too large.", param, ctx)
        return number


class Duration(click.ParamType):
    """Seconds, or with units: 90s, 30m, 1h, 7d, 1w, 1h30m."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        from nitejarctl.durations import parse_duration

        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()


# ---------------------------------------------------------------- common flags


def dry_run_option(f):
    return click.option("--dry-run", is_flag=True,
                        help="Show exactly what would change, and change nothing.")(f)


def yes_option(f):
    return click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")(f)


def ignore_missing_option(f):
    return click.option("--ignore-missing", is_flag=True,
                        help="An unknown id is a warning (exit 0), not an error (exit 3).")(f)


def limit_option(f):
    return click.option("--limit", type=BoundedIntRange(min=1), default=None,
                        help=f"At most this many rows [default: {TABLE_LIMIT} for tables, "
                             "unlimited otherwise].")(f)


def config_edit_options(f):
    """--config (replace), --set and --unset (dotted keys) for a JSON config column."""
    f = click.option("--unset", "unsets", multiple=True, metavar="KEY",
                     help="Remove a dotted config key. Repeatable.")(f)
    f = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Set a dotted config key; VALUE is JSON when it parses, else a string. "
                          "Repeatable.")(f)
    return click.option("--config", "config_text", metavar="JSON|@FILE",
                        help="Replace the whole config (a JSON object, or @file).")(f)


def confirm(settings: Settings, question: str, yes: bool) -> bool:
    """Ask on a terminal; refuse (exit 2) when there is none and no --yes."""
    if yes:
        return True
    if not (_isatty(sys.stdin) and _isatty(sys.stderr)):
        raise UsageProblem("refusing to delete without --yes when not on a terminal")
    return click.confirm(question, default=False, err=True)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -------------------------------------------------------------------- listings


def spool(settings: Settings, fields, columns, db, *, id_field: str = "id"):
    """Where a bulk change's rows wait for the end of the change (nitejarctl.spool)."""
    from nitejarctl.spool import for_format

    return for_format(fields, columns, settings.fmt, db, id_field=id_field,
                      keep=effective_limit(settings, None))


def progress(settings: Settings, label: str, total=None):
    """A progress bar on stderr for a long bulk change (see output.ProgressBar)."""
    from nitejarctl.output import ProgressBar

    return ProgressBar(label, total, color=settings.color,
                       enabled=settings.stderr_is_terminal() and not settings.quiet)


def effective_limit(settings: Settings, limit: int | None) -> int | None:
    if limit is None and settings.fmt == "table":
        return TABLE_LIMIT
    return limit


def emit_listing(settings: Settings, rows, columns, *, limit: int | None, count=None,
                 noun: str = "rows", **kwargs) -> int:
    """Emit a listing, honouring --limit. `rows` yields at most limit + 1 rows
    (ask the repository for one more than the limit); `count` (a callable)
    gives the total for the footer that says how many were left out."""
    more = False

    def limited():
        nonlocal more
        for i, row in enumerate(rows):
            if limit is not None and i >= limit:
                more = True
                break
            yield row

    n = settings.emit(limited(), columns, **kwargs)
    if more:
        if count is not None:
            total = count()
            settings.info(f"… {total - n} more {noun} not shown (use --limit or -o json)")
        else:
            settings.info(f"… more {noun} not shown (use --limit)")
    elif n == 0 and settings.fmt == "table":
        settings.info(f"no {noun}")
    return n


def fetch_limit(limit: int | None) -> int | None:
    """The row count to ask a repository for: one more, to know if any were left out."""
    return None if limit is None else limit + 1
