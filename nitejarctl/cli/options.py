"""Shared option machinery: global options on every command, durations,
--dry-run / --yes / --limit / --agent, confirmation and listings.

Imported on every invocation, so it imports neither Rich nor Peewee.
"""

from __future__ import annotations

import math

import click

from nitejarctl.cli.context import Settings
from nitejarctl.errors import Declined, NotFound, UsageProblem

FORMATS = ("table", "wide", "json", "jsonl", "csv", "tsv", "ids", "count", "prometheus")
# Formats only some commands write: the format -> those commands (see NitejarCommand).
NARROW_FORMATS = {"prometheus": "doctor"}
TABLE_LIMIT = 100
COUNT = "count"  # the number of rows a listing or a change gives, alone: no row is read

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
    and after the command alike; the last one given wins). Eager: a command's
    own options that open the database (--agent) see them wherever they stand."""
    common = dict(expose_value=False, is_eager=True)
    return [
        click.Option(["-d", "--database-url"], metavar="URL|@NAME", callback=_store("database_url"),
                     help="Database: a SQLite path, sqlite:///…, postgresql://…, or @NAME of "
                          "`nitejarctl config list` [env: NITEJARCTL_CONTEXT=NAME, NITEJAR_DATABASE_URL, "
                          "DATABASE_URL; default ./data/nitejar.db]",
                     **common),
        click.Option(["-o", "--output"], type=click.Choice(FORMATS, case_sensitive=False),
                     callback=_store("output"),
                     help="Output format [default: table on a terminal, tsv otherwise; "
                          "wide: a table of every column; count: only the number of rows listed or changed; "
                          "prometheus: doctor only].", **common),
        click.Option(["--no-color"], is_flag=True, callback=_store("no_color"),
                     help="No colour (also NO_COLOR, TERM=dumb).", **common),
        click.Option(["-q", "--quiet"], is_flag=True, callback=_store("quiet"),
                     help="Suppress informational messages on stderr.", **common),
        click.Option(["-v", "--verbose"], is_flag=True, callback=_store("verbose"),
                     help="Show SQL with timings, and the traceback on error.", **common),
        click.Option(["--busy-timeout"], type=FiniteFloatRange(min=0), metavar="SECONDS",
                     callback=_store("busy_timeout"),
                     help="How long to wait for a locked SQLite database [default: 5].", **common),
        click.Option(["--lock-wait"], type=FiniteFloatRange(min=0), metavar="SECONDS",
                     callback=_store("lock_wait"),
                     help="How long to wait for another bulk change or migrate on the same database "
                          "[default: 600].", **common),
    ]


GLOBAL_NAMES = {"database_url", "output", "no_color", "quiet", "verbose", "busy_timeout", "lock_wait"}


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
    """A command with the global options. `counts`: it lists or changes rows,
    so that -o count means something (the other commands refuse it before
    doing anything); `formats` names the NARROW_FORMATS it writes."""

    def __init__(self, *args, counts: bool = False, formats=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.counts = counts
        self.params.extend(global_options())
        self.formats = tuple(formats)

    def format_options(self, ctx, formatter):
        _format_options(self, ctx, formatter)

    def invoke(self, ctx):
        # Formats a command does not write are refused before it does anything
        # (it would change, then fail to print).
        settings = ctx.find_object(Settings)
        wanted = settings.output if settings is not None else None
        if wanted in NARROW_FORMATS and wanted not in self.formats:
            raise UsageProblem(f"-o {wanted} is only for {NARROW_FORMATS[wanted]}")
        if wanted == COUNT and not self.counts:
            raise UsageProblem(f"-o count counts the rows a listing or a change gives: "
                               f"'{ctx.command_path}' gives none (try -o json)")
        return super().invoke(ctx)


class NitejarGroup(click.Group):
    """A group whose commands all take the global options. Named without a
    command (`nitejarctl sessions`, `nitejarctl -q`), it prints its help on
    stdout and exits 0, as gh and kubectl do."""

    command_class = NitejarCommand

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("no_args_is_help", False)  # the bare group reaches invoke: its help
        super().__init__(*args, **kwargs)
        self.params.extend(global_options())

    def invoke(self, ctx):
        if not ctx._protected_args and not self.invoke_without_command:
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(0)
        return super().invoke(ctx)

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


def _names(ctx, param, value):
    if value is None:
        return None
    names = [n.strip() for n in value.split(",")]
    if not all(names):
        raise click.BadParameter(f"{value!r} is not a list of column names (a,b,c).", ctx, param)
    return _store("columns")(ctx, param, names)


def _sort_field(ctx, param, value):
    if value is not None and not value.lstrip("-"):
        raise click.BadParameter(f"{value!r} names no field.", ctx, param)
    return _store("sort")(ctx, param, value)


def listing_options(f):
    """--limit, --columns and --sort, which `listing` honours."""
    f = click.option("--sort", metavar="[-]FIELD", callback=_sort_field, expose_value=False,
                     help="Sort by FIELD (descending with a leading -), ties in the listing's order.")(f)
    f = click.option("--columns", metavar="A,B,…", callback=_names, expose_value=False,
                     help="Only these columns, in this order (every format; CSV/TSV headers follow).")(f)
    return limit_option(f)


def config_edit_options(f):
    """--config (replace), --set and --unset (dotted keys) for a JSON config column."""
    f = click.option("--unset", "unsets", multiple=True, metavar="KEY",
                     help="Remove a dotted config key. Repeatable.")(f)
    f = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Set a dotted config key; VALUE is JSON when it parses, else a string. "
                          "Repeatable.")(f)
    return click.option("--config", "config_text", metavar="JSON|@FILE",
                        help="Replace the whole config (a JSON object, or @file).")(f)


def agent_option(help: str, *, literal=None):
    """--agent ID|NAME, resolved to the agent's id when the command runs (an
    unknown agent exits 3). `literal(db, value)`, when given, may accept a
    value that names no agent as an agent id as it is (sprite sessions name
    owners nitejarctl may not know)."""
    from nitejarctl.cli import completers

    def resolve(ctx, param, value):
        if value is None or ctx.resilient_parsing:
            return value
        from nitejarctl.repositories import agents

        db = ctx.find_object(Settings).database()
        try:
            return agents.resolve_id(db, value)
        except NotFound:
            if literal is not None and literal(db, value):
                return value
            raise

    return click.option("--agent", "agent_id", metavar="ID|NAME", callback=resolve,
                        shell_complete=completers.agents, help=help)


# -------------------------------------------------------------- confirmation


def require_confirmation(settings: Settings, yes: bool, dry_run: bool = False, *, action: str = "delete") -> None:
    """Refuse up front, before any work, when a question would be needed and
    could not be asked (no terminal, no --yes): exit 2."""
    if not (yes or dry_run or settings.interactive()):
        raise UsageProblem(f"refusing to {action} without --yes when not on a terminal")


def confirm(settings: Settings, question: str, yes: bool, *, declined: str = "nothing deleted",
            action: str = "delete") -> None:
    """Ask on a terminal (refusing when there is none and no --yes); a "no"
    ends the command with `declined` (exit 1, not an error)."""
    require_confirmation(settings, yes, action=action)
    from nitejarctl.visible import visible

    if not yes and not click.confirm(visible(question), default=False, err=True):
        raise Declined(declined)


# -------------------------------------------------------------------- listings


def table_limit(settings: Settings, limit: int | None) -> int | None:
    """--limit, or TABLE_LIMIT rows when a table is shown without one."""
    if limit is None and settings.fmt == "table":
        return TABLE_LIMIT
    return limit


def listing(settings: Settings, query, columns, *, limit: int | None, noun: str = "rows",
            rows=None, count=None, id_field: str = "id", table=None) -> int:
    """Stream `query` (a Peewee query) as a listing, honouring --limit,
    --columns and --sort and saying how many rows were left out. `table`
    names the columns a table shows, most important first (cli.columns);
    `rows(stream)`, when given, turns the streamed dicts into the rows shown;
    `count()` overrides the count of left-out rows (default: the query's own)."""
    from nitejarctl.cli import columns as shown

    db = settings.database()
    plan = shown.plan(settings, columns, table)
    query = shown.sorted_query(settings, query)
    given, limit = limit, table_limit(settings, limit)
    if settings.fmt == COUNT:
        total = (count or query.order_by().count)()
        return settings.emit_count(total if limit is None else min(total, limit))
    streamed = db.stream(query if limit is None else query.limit(limit + 1))
    more = False

    def limited():
        nonlocal more
        out = streamed if rows is None else rows(streamed)
        for i, row in enumerate(shown.with_agent_names(db, out) if plan.agent_names else out):
            if limit is not None and i >= limit:
                more = True
                break
            yield row

    n = settings.emit(limited(), plan.columns, id_field=id_field, fit=plan.fit, keep=plan.keep)
    if more:
        total = (count or query.order_by().count)()
        # Only the table's own limit cut it short: say how to see the rest.
        hint = " (use --limit or -o json)" if given is None else ""
        settings.info(f"… {total - n:,} more {noun} not shown{hint}")
    elif n == 0 and settings.fmt == "table":
        settings.info(f"no {noun}")
    return n
