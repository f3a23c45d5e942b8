"""`nitejarctl sessions`: sprite (remote shell) sessions."""

from __future__ import annotations

import sys

import click

from nitejarctl.cli import completers
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import (
    DURATION,
    confirm,
    dry_run_option,
    effective_limit,
    emit_listing,
    fetch_limit,
    group,
    ignore_missing_option,
    limit_option,
    progress,
    yes_option,
)
from nitejarctl.cli.options import spool as spool_for
from nitejarctl.cli.stats import sessions_stats
from nitejarctl.errors import NotFound, OperationalProblem, UsageProblem

STATUS_CHOICES = ("active", "closed", "error", "all")
FIELDS = ("id", "sprite_name", "session_id", "session_key", "agent_id", "status",
          "created_at", "last_active_at")
HISTORY_FIELDS = ("id", "created_at", "job_id", "agent_id", "job_status", "role", "text")
MAX_IDS_IN_ERROR = 10


def _columns(names=FIELDS):
    from nitejarctl.output import Column

    return [Column(n, "time" if n.endswith("_at") else "text") for n in names]


def _agent_filter(db, ref: str | None) -> str | None:
    """An agent's id from its id or name; sprite_sessions.agent_id references no
    table, so text that names no agent is taken as a literal agent id."""
    if ref is None:
        return None
    from nitejarctl.repositories import agents

    try:
        return agents.resolve_id(db, ref)
    except NotFound:
        return ref


@group()
def sessions():
    """Sprite (remote shell) sessions: list, show, close, purge, history.

    \b
    Examples:
      nitejarctl sessions list --stale 1h
      nitejarctl sessions list --stale 1h -o ids | xargs -r nitejarctl sessions close
      nitejarctl sessions purge --older-than 24h --yes
    """


sessions.add_command(sessions_stats)


# ------------------------------------------------------------------- reading


@sessions.command(name="list")
@click.option("--stale", type=DURATION, metavar="DURATION",
              help="Only active sessions last active longer ago than this (e.g. 1h).")
@click.option("--status", type=click.Choice(STATUS_CHOICES), default=None,
              help="Sessions in this status [default: active].")
@click.option("--agent", metavar="ID|NAME", shell_complete=completers.agents, help="Sessions of this agent.")
@click.option("--sprite", metavar="NAME", help="Sessions on this sprite.")
@click.option("--session-key", metavar="KEY", shell_complete=completers.sprite_session_keys,
              help="Sessions of this conversation key.")
@limit_option
@pass_settings
def sessions_list(settings, stale, status, agent, sprite, session_key, limit):
    """List sprite sessions, oldest activity first.

    --stale D selects active sessions whose last activity is older than now - D
    (nitejar's findStaleSessions).

    \b
    Examples:
      nitejarctl sessions list
      nitejarctl sessions list --stale 1h -o json
      nitejarctl sessions list --status all --agent support-bot --limit 20
    """
    from nitejarctl.db import now, stream
    from nitejarctl.repositories import sprite_sessions as repo

    if stale is not None and status in ("closed", "error"):
        raise UsageProblem(f"--stale selects active sessions; it cannot be combined with --status {status}")
    db = settings.database()
    query = repo.list_query(db, status=status or "active", stale=stale,
                            agent_id=_agent_filter(db, agent), sprite=sprite,
                            session_key=session_key, now=now())
    limit = effective_limit(settings, limit)
    rows = stream(db, query if limit is None else query.limit(fetch_limit(limit)))
    emit_listing(settings, rows, _columns(), limit=limit, count=lambda: query.order_by().count(),
                 noun="sessions")


@sessions.command(name="show")
@click.argument("session_id", metavar="ID", shell_complete=completers.session_ids)
@pass_settings
def sessions_show(settings, session_id):
    """Show one sprite session.

    \b
    Examples:
      nitejarctl sessions show 3f2c9a1e-…
      nitejarctl sessions show 3f2c9a1e-… -o json
    """
    from nitejarctl.repositories import sprite_sessions as repo

    settings.emit_one(repo.get(settings.database(), session_id))


@sessions.command(name="history")
@click.argument("session_key", shell_complete=completers.session_keys)
@click.option("--agent", metavar="ID|NAME", shell_complete=completers.agents,
              help="Only the messages of this agent's jobs.")
@click.option("--include-incomplete", is_flag=True,
              help="Also messages of jobs that did not complete (pending, running, failed, cancelled).")
@limit_option
@pass_settings
def sessions_history(settings, session_key, agent, include_incomplete, limit):
    """The transcript of a conversation key, across all its jobs.

    As nitejar's listMessagesBySession: the messages of the COMPLETED jobs of
    the work items with that session key, by job created_at, then message
    created_at. `text` is content.text, else content.content, else the raw
    content when it is not JSON.

    \b
    Examples:
      nitejarctl sessions history telegram:12345
      nitejarctl sessions history telegram:12345 --agent support-bot -o jsonl
    """
    from nitejarctl.db import require_table, stream
    from nitejarctl.repositories import agents, messages

    db = settings.database()
    for table in ("work_items", "jobs", "messages"):
        require_table(db, table)
    agent_id = agents.resolve_id(db, agent) if agent is not None else None
    query = messages.session_history_query(db, session_key, agent_id=agent_id,
                                           include_incomplete=include_incomplete)
    limit = effective_limit(settings, limit)

    def rows():
        for row in stream(db, query if limit is None else query.limit(fetch_limit(limit))):
            row["text"] = messages.message_text(row.pop("content"))
            yield row

    emit_listing(settings, rows(), _columns(HISTORY_FIELDS), limit=limit,
                 count=lambda: query.order_by().count(), noun="messages")


# ------------------------------------------------------------------- changes


def _plural(n: int, noun: str = "session") -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _report(settings, rows, n: int, verb: tuple, *, dry_run: bool, tail: str = "") -> None:
    """The changed rows on stdout, one summary line on stderr. `verb` is
    (present, past[, suffix]): ("mark", "marked", " as error"). `rows` are
    dicts, or a spool of them."""
    if n or settings.fmt != "table":
        import itertools

        from nitejarctl.spool import Spool

        limit = effective_limit(settings, None)
        if isinstance(rows, Spool):
            shown = rows.write_to(sys.stdout) if rows.writer else settings.emit(
                itertools.islice(rows.rows(), limit), _columns(), fields=rows.columns)
        else:
            shown = settings.emit(rows if limit is None else itertools.islice(rows, limit), _columns())
        if shown < n:
            settings.info(f"… {n - shown} more not shown (-o tsv or -o json shows all)")
    present, past, suffix = (*verb, "")[:3]
    words = f"would {present}" if dry_run else past
    settings.info(f"{words} {_plural(n)}{suffix}{tail}{' (dry run)' if dry_run else ''}")


def _bulk(settings, change, verb, *, dry_run: bool, remaining=None) -> None:
    """Run `change(spool, progress)`, a batched change that puts the rows it
    changes in the spool, then report them. `remaining()` counts the rows
    still to change, for the progress bar's total."""
    from nitejarctl.repositories import sprite_sessions as repo

    db = settings.database()
    fields = [f.name for f in repo.fields(db)]
    with spool_for(settings, fields, _columns(), db) as spool:
        total = None if remaining is None else (lambda: bar.completed + remaining())
        with progress(settings, "closing" if verb[0] == "close" else "deleting", total) as bar:
            try:
                n = change(spool, None if dry_run else bar.update)
            except Exception:
                if spool.count and not dry_run:
                    settings.warn(f"{verb[1]} {_plural(spool.count)} before the error "
                                  "(each batch commits on its own)")
                raise
        _report(settings, spool, n, verb, dry_run=dry_run)


def _by_ids(settings, change, ids, verb, already: str, *, dry_run: bool, ignore_missing: bool) -> None:
    from nitejarctl.db import now

    result = change(settings.database(), ids, now(), dry_run=dry_run)
    tail = f" ({len(result.unchanged)} already {already})" if result.unchanged else ""
    _report(settings, iter(result.changed), len(result.changed), verb, dry_run=dry_run, tail=tail)
    if not result.missing:
        return
    if ignore_missing:
        for session_id in result.missing:
            settings.warn(f"no sprite session with id {session_id!r}")
        return
    if len(result.missing) == 1:
        raise NotFound(f"no sprite session with id {result.missing[0]!r}")
    shown = ", ".join(repr(i) for i in result.missing[:MAX_IDS_IN_ERROR])
    more = len(result.missing) - MAX_IDS_IN_ERROR
    raise NotFound(f"no sprite sessions with ids {shown}" + (f" and {more} more" if more > 0 else ""))


@sessions.command(name="close")
@click.argument("ids", nargs=-1, metavar="[ID]...", shell_complete=completers.session_ids)
@click.option("--stale", type=DURATION, metavar="DURATION",
              help="Close every active session last active longer ago than this.")
@click.option("--conversation", metavar="SESSION_KEY", shell_complete=completers.sprite_session_keys,
              help="Close the active sessions of this conversation key (with --agent).")
@click.option("--agent", metavar="ID|NAME", shell_complete=completers.agents,
              help="The conversation's agent (with --conversation).")
@dry_run_option
@ignore_missing_option
@pass_settings
def sessions_close(settings, ids, stale, conversation, agent, dry_run, ignore_missing):
    """Close sprite sessions: by id, every stale one, or a conversation's.

    Closing sets status closed and last_active_at to now. An already closed
    session stays as it is and is not an error. The closed sessions are
    printed; a summary goes to stderr.

    \b
    Examples:
      nitejarctl sessions close 3f2c9a1e-… 9b1d0c4f-…
      nitejarctl sessions close --stale 1h --dry-run
      nitejarctl sessions list --stale 1h -o ids | xargs -r nitejarctl sessions close
      nitejarctl sessions close --conversation telegram:12345 --agent support-bot
    """
    from nitejarctl.db import now
    from nitejarctl.repositories import sprite_sessions as repo

    if (conversation is None) != (agent is None):
        raise UsageProblem("--conversation and --agent go together")
    modes = sum((bool(ids), stale is not None, conversation is not None))
    if modes == 0:
        raise UsageProblem("give session ids, --stale DURATION, or --conversation SESSION_KEY --agent AGENT")
    if modes > 1:
        raise UsageProblem("session ids, --stale and --conversation are alternatives: give one of them")
    verb = ("close", "closed")
    if ids:
        _by_ids(settings, repo.close_ids, ids, verb, "closed", dry_run=dry_run,
                ignore_missing=ignore_missing)
        return
    db, t = settings.database(), now()
    if stale is not None:
        _bulk(settings, lambda spool, progress: repo.close_stale(db, stale, t, dry_run=dry_run, spool=spool,
                                                                 progress=progress),
              verb, dry_run=dry_run, remaining=lambda: repo.count_stale(db, stale, t))
    else:
        agent_id = _agent_filter(db, agent)
        _bulk(settings, lambda spool, progress: repo.close_for_conversation(db, conversation, agent_id, t,
                                                                            dry_run=dry_run, spool=spool),
              verb, dry_run=dry_run)


@sessions.command(name="error")
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=completers.session_ids)
@dry_run_option
@ignore_missing_option
@pass_settings
def sessions_error(settings, ids, dry_run, ignore_missing):
    """Mark sprite sessions as failed (status error, last_active_at now).

    \b
    Examples:
      nitejarctl sessions error 3f2c9a1e-…
      nitejarctl sessions list --sprite sprite-a -o ids | xargs -r nitejarctl sessions error
    """
    from nitejarctl.repositories import sprite_sessions as repo

    _by_ids(settings, repo.error_ids, ids, ("mark", "marked", " as error"), "in error",
            dry_run=dry_run, ignore_missing=ignore_missing)


@sessions.command(name="touch")
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=completers.session_ids)
@dry_run_option
@ignore_missing_option
@pass_settings
def sessions_touch(settings, ids, dry_run, ignore_missing):
    """Record activity on sprite sessions now (last_active_at now).

    \b
    Examples:
      nitejarctl sessions touch 3f2c9a1e-…
    """
    from nitejarctl.repositories import sprite_sessions as repo

    _by_ids(settings, repo.touch_ids, ids, ("touch", "touched"), "touched this second",
            dry_run=dry_run, ignore_missing=ignore_missing)


@sessions.command(name="purge")
@click.option("--older-than", type=DURATION, required=True, metavar="DURATION",
              help="Delete closed and error sessions last active longer ago than this.")
@dry_run_option
@yes_option
@pass_settings
def sessions_purge(settings, older_than, dry_run, yes):
    """Delete old closed and error sprite sessions (nitejar's deleteOldSessions).

    Asks for confirmation on a terminal; elsewhere --yes is required. The
    deleted sessions are printed as they were.

    \b
    Examples:
      nitejarctl sessions purge --older-than 24h --dry-run
      nitejarctl sessions purge --older-than 7d --yes -o ids
    """
    from nitejarctl.db import now
    from nitejarctl.durations import format_duration
    from nitejarctl.repositories import sprite_sessions as repo

    db, t = settings.database(), now()
    if not dry_run and not yes:
        n = repo.purge(db, older_than, t, dry_run=True)
        question = (f"Delete {_plural(n, 'closed or error session')} last active more than "
                    f"{format_duration(older_than)} ago?")
        if not confirm(settings, question, yes):
            raise OperationalProblem("aborted: nothing deleted")
    _bulk(settings, lambda spool, progress: repo.purge(db, older_than, t, dry_run=dry_run, spool=spool,
                                                       progress=progress),
          ("delete", "deleted"), dry_run=dry_run, remaining=lambda: repo.purge(db, older_than, t, dry_run=True))
