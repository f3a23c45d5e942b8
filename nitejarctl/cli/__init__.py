"""The root command: global options, lazily loaded command groups, and the one
place where errors become exit codes.

Command modules are imported only when their command runs (or its help is
asked for): `nitejarctl --help` and shell completion load neither Rich, nor
Peewee, nor psycopg2. Command modules therefore import those inside their
functions, never at module level.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys

import click

from nitejarctl.cli.context import Settings
from nitejarctl.cli.options import NitejarGroup
from nitejarctl.errors import (
    EXIT_INTERRUPTED,
    EXIT_OPERATIONAL,
    EXIT_TERMINATED,
    EXIT_USAGE,
    NitejarError,
    Terminated,
)

# name -> (module, attribute, one-line help). The help is repeated here so that
# the root --help needs no import of the command modules.
COMMANDS = {
    "migrate": ("nitejarctl.cli.migrate", "migrate", "Create or upgrade the schema; show migration status."),
    "doctor": ("nitejarctl.cli.doctor", "doctor", "Check the database: connection, schema drift, counts."),
    "status": ("nitejarctl.cli.doctor", "doctor", "Alias of doctor."),
    "agents": ("nitejarctl.cli.agents", "agents", "List, show, create, update and delete agents."),
    "integrations": ("nitejarctl.cli.integrations", "integrations", "Manage integrations."),
    "sessions": ("nitejarctl.cli.sessions", "sessions", "Sprite sessions: list, close, purge, history."),
    "memories": ("nitejarctl.cli.memories", "memories", "Agent memories: list, edit, decay, prune."),
    "compaction": ("nitejarctl.cli.compaction", "compaction", "Compact idle conversations into summaries."),
    "work-items": ("nitejarctl.cli.work_items", "work_items", "Inspect work items."),
    "jobs": ("nitejarctl.cli.jobs", "jobs", "Inspect jobs and their messages."),
    "idempotency": ("nitejarctl.cli.idempotency", "idempotency", "List and prune idempotency keys."),
    "cleanup": ("nitejarctl.cli.cleanup", "cleanup", "Compact, close stale and purge old sessions (for cron)."),
    "repair": ("nitejarctl.cli.repair", "repair", "Repair dangling references nitejar leaves behind."),
    "transfer": ("nitejarctl.cli.transfer", "transfer", "Copy the SQLite database into PostgreSQL, verified."),
    "backup": ("nitejarctl.cli.backup", "backup", "Write a consistent, checked backup of the database."),
    "restore": ("nitejarctl.cli.backup", "restore", "Replace the database with a backup (after a safety backup)."),
    "vacuum": ("nitejarctl.cli.vacuum", "vacuum", "Reclaim free space (SQLite VACUUM or VACUUM INTO; PostgreSQL VACUUM)."),
    "messages": ("nitejarctl.cli.messages", "messages", "Prune old messages that summaries already cover."),
    "completion": ("nitejarctl.cli.completion", "completion", "Print the shell completion script."),
    "config": ("nitejarctl.cli.config", "config", "Named databases of the config file (-d @NAME)."),
    "query": ("nitejarctl.cli.query", "query", "Run a read-only SQL query (SELECT, WITH, EXPLAIN)."),
    "version": ("nitejarctl.cli.version", "version", "Versions of nitejarctl, Python, SQLite and the database."),
    "help": ("nitejarctl.cli.help", "help_command", "Show the help of a command."),
}

# Singular names of the groups, accepted as they are typed and kept out of the
# help and completion lists.
ALIASES = {
    "session": "sessions", "agent": "agents", "memory": "memories", "integration": "integrations",
    "job": "jobs", "work-item": "work-items", "summary": "compaction",
}

EXIT_CODES_HELP = """\b
Exit codes:
  0    success
  1    operational error (database unreachable or locked, SQL failure,
       schema problem, doctor found problems)
  2    usage error (bad option or value, bad JSON, refused without --yes)
  3    not found (an id or name that does not exist)
  4    partial failure (some items of a batch failed)
  130  interrupted (SIGINT, Ctrl-C)
  143  terminated (SIGTERM)
"""


class RootGroup(NitejarGroup):
    def list_commands(self, ctx):
        return [name for name, (module, _, _) in COMMANDS.items() if _module_exists(module)]

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        entry = COMMANDS.get(ALIASES.get(name, name))
        if entry is None or not _module_exists(entry[0]):
            return None
        module, attribute, _ = entry
        return getattr(importlib.import_module(module), attribute)

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            # The lazy table gives Click no `self.commands` to suggest from; a
            # closer match than Click's own cutoff keeps `sesions` from also
            # suggesting `version`.
            from difflib import get_close_matches

            close = get_close_matches(exc.command_name, self.list_commands(ctx), cutoff=0.75)
            raise click.exceptions.NoSuchCommand(exc.command_name, possibilities=close, ctx=ctx) from None

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def make_context(self, info_name, args, parent=None, **extra):
        extra.setdefault("obj", Settings())
        self._settings = extra["obj"]
        return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        from nitejarctl import signals  # not on the --help and completion paths

        try:
            with signals.handled():
                return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly.
            _silence_stdout()
            raise click.exceptions.Exit(0) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        self._settings = None
        if os.environ.get("_NITEJARCTL_COMPLETE"):
            import nitejarctl.cli.completion  # noqa: F401  (nitejarctl's own completion scripts)
        undecodable = _undecodable(sys.argv[1:] if args is None else args)
        if undecodable is not None:
            # Python hands such bytes over as surrogates, which no database accepts.
            _error(f"an argument is not valid UTF-8: {undecodable!r}")
            if standalone_mode:
                sys.exit(EXIT_USAGE)
            return EXIT_USAGE
        code = None
        try:
            rv = super().main(args, prog_name or "nitejarctl", complete_var,
                              standalone_mode=False, **extra)
            # Without standalone mode Click returns the code of an Exit raised
            # inside a command (`ctx.exit(n)`) instead of raising it.
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except (click.exceptions.Abort, KeyboardInterrupt):
            _error("interrupted")
            code = EXIT_INTERRUPTED
        except Terminated:
            _error("terminated")
            code = EXIT_TERMINATED
        except click.ClickException as exc:
            _error(exc.format_message() + _help_hint(exc))
            code = exc.exit_code
        except NitejarError as exc:
            if exc.message:
                self._report(exc, exc.message, prefix=exc.prefix)
            code = exc.exit_code
        except BrokenPipeError:
            _silence_stdout()
            code = 0
        except _database_errors() as exc:
            self._report(exc, _database_message(exc))
            code = EXIT_OPERATIONAL
        except Exception as exc:  # a bug: say so in one line, traceback on -v
            self._report(exc, f"unexpected {type(exc).__name__}: {exc} "
                              "(run with -v or NITEJARCTL_DEBUG=1 for the traceback)")
            code = EXIT_OPERATIONAL
        finally:
            if getattr(self, "_settings", None) is not None:
                try:
                    self._settings.close()
                except Exception:  # closing after an error must not mask it
                    pass
            timings = sys.modules.get("nitejarctl.timings")
            if timings is not None and timings.enabled:
                if code == 0:  # -v: where the time went (an error's line stays the last)
                    click.echo(timings.summary(), err=True)
                timings.reset()
        if standalone_mode:
            sys.exit(code)
        return code

    def _report(self, exc: BaseException, message: str, *, prefix: str = "Error: ") -> None:
        settings = getattr(self, "_settings", None)
        if (settings is not None and settings.verbose) or os.environ.get("NITEJARCTL_DEBUG") == "1":
            import traceback

            from nitejarctl.db import mask_secrets
            from nitejarctl.secrets import without_rows
            from nitejarctl.visible import visible_cell

            text = "".join(traceback.format_exception(exc))
            click.echo(visible_cell(mask_secrets(without_rows(text))), err=True)
        _error(message, prefix=prefix)


def _undecodable(args) -> str | None:
    for arg in args:
        try:
            str(arg).encode("utf-8")
        except UnicodeEncodeError:
            return str(arg)
    return None


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _error(message: str, *, prefix: str = "Error: ") -> None:
    from nitejarctl.db import mask_secrets
    from nitejarctl.secrets import without_rows
    from nitejarctl.visible import visible

    line = visible(" ".join(mask_secrets(without_rows(str(message))).split()))
    click.echo(f"{prefix}{line}", err=True)


def _help_hint(exc: click.ClickException) -> str:
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        return f" (see '{ctx.command_path} --help')"
    return ""


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _database_errors() -> tuple:
    """Driver and Peewee errors, from whichever of them this process loaded."""
    kinds = []
    if "sqlite3" in sys.modules:
        kinds.append(sys.modules["sqlite3"].Error)
    if "peewee" in sys.modules:
        kinds += [sys.modules["peewee"].PeeweeException]
    if "psycopg2" in sys.modules:
        kinds.append(sys.modules["psycopg2"].Error)
    return tuple(kinds)


def _database_message(exc: BaseException) -> str:
    from nitejarctl.secrets import without_rows

    text = " ".join(without_rows(str(exc)).split()) or type(exc).__name__
    if "database is locked" in text or "database table is locked" in text:
        return ("database is locked: another process held the write lock past the busy "
                "timeout (retry, or raise --busy-timeout)")
    if "attempt to write a readonly database" in text:
        return "the database is read-only (check the file's and its directory's permissions)"
    missing = re.match(r'relation "([^"]+)" does not exist', text)  # PostgreSQL's "no such table"
    if missing:
        text = f"no such table: {missing.group(1)}"
    if "no such table" in text:
        return f"{text} (is this a nitejar database? run 'nitejarctl migrate' or 'nitejarctl doctor')"
    return f"database error: {text}"


def _version(ctx, param, value):
    if value:
        from nitejarctl.cli.version import show_option

        show_option(ctx, param, value)


@click.group("nitejarctl", cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_CODES_HELP)
@click.option("-V", "--version", is_flag=True, expose_value=False, callback=_version,
              help="Show the versions (as 'nitejarctl version') and exit.")
@click.pass_context
def cli(ctx):
    """Admin and maintenance tool for a nitejar database (SQLite or PostgreSQL).

    \b
    Examples:
      nitejarctl migrate
      nitejarctl sessions list --stale 1h
      nitejarctl sessions list --stale 1h -o ids | xargs -r nitejarctl sessions close
      nitejarctl -d postgresql://user@db/nitejar doctor -o json
    """


def main() -> None:
    from nitejarctl import startup

    startup.begin()
    try:
        cli.main(prog_name="nitejarctl")
    finally:
        startup.end()
