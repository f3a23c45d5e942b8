"""`nitejarctl sessions`: sprite (remote shell) sessions."""

from __future__ import annotations

import click

from nitejarctl.cli import completers
from nitejarctl.cli.changes import Words, run_bulk, show_changed
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.ids import prefixed
from nitejarctl.cli.options import (
    DURATION,
    agent_option,
    confirm,
    dry_run_option,
    group,
    ignore_missing_option,
    listing,
    listing_options,
    require_confirmation,
    yes_option,
)
from nitejarctl.cli.stats import sessions_stats
from nitejarctl.errors import UsageProblem, missing_ids

STATUS_CHOICES = ("active", "closed", "error", "all")
FIELDS = ("id", "sprite_name", "session_id", "session_key", "agent_id", "status",
          "created_at", "last_active_at")
HISTORY_FIELDS = ("id", "created_at", "job_id", "agent_id", "job_status", "role", "text")
# What a table shows, most important first (-o wide adds the rest).
TABLE = ("sprite_name", "status", "last_active_at", "agent", "session_key", "created_at", "id")
HISTORY_TABLE = ("created_at", "role", "text", "agent", "job_status", "id")


def _columns(names=FIELDS):
    from nitejarctl.output import Column

    return [Column(n, "time" if n.endswith("_at") else "text") for n in names]


def _owner(db, value: str) -> bool:
    """sprite_sessions.agent_id references no table: a value that names no
    agent is still an owner when a session has it as its agent id."""
    from nitejarctl.repositories import sprite_sessions

    return sprite_sessions.has_agent(db, value)


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


@sessions.command(name="list", counts=True)
@click.option("--stale", type=DURATION, metavar="DURATION",
              help="Only active sessions last active longer ago than this (e.g. 1h).")
@click.option("--status", type=click.Choice(STATUS_CHOICES), default=None,
              help="Sessions in this status [default: active].")
@agent_option("Sessions of this agent.", literal=_owner)
@click.option("--sprite", metavar="NAME", help="Sessions on this sprite.")
@click.option("--session-key", metavar="KEY", shell_complete=completers.sprite_session_keys,
              help="Sessions of this conversation key.")
@listing_options
@pass_settings
def sessions_list(settings, stale, status, agent_id, sprite, session_key, limit):
    """List sprite sessions, oldest activity first.

    --stale D selects active sessions whose last activity is older than now - D
    (nitejar's findStaleSessions).

    \b
    Examples:
      nitejarctl sessions list
      nitejarctl sessions list --stale 1h -o json
      nitejarctl sessions list --status all --agent support-bot --limit 20
    """
    from nitejarctl.db import now
    from nitejarctl.repositories import sprite_sessions as repo

    if stale is not None and status in ("closed", "error"):
        raise UsageProblem(f"--stale selects active sessions; it cannot be combined with --status {status}")
    query = repo.list_query(settings.database(), status=status or "active", stale=stale, agent_id=agent_id,
                            sprite=sprite, session_key=session_key, now=now())
    listing(settings, query, _columns(), limit=limit, noun="sessions", table=TABLE)


@sessions.command(name="show")
@click.argument("session_id", metavar="ID", shell_complete=completers.session_ids,
              callback=prefixed("SpriteSession", "sprite sessions"))
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


@sessions.command(name="history", counts=True)
@click.argument("session_key", shell_complete=completers.session_keys)
@agent_option("Only the messages of this agent's jobs.")
@click.option("--include-incomplete", is_flag=True,
              help="Also messages of jobs that did not complete (pending, running, failed, cancelled).")
@listing_options
@pass_settings
def sessions_history(settings, session_key, agent_id, include_incomplete, limit):
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
    from nitejarctl.repositories import messages

    db = settings.database()
    for table in ("work_items", "jobs", "messages"):
        db.require_table(table)
    query = messages.session_history_query(db, session_key, agent_id=agent_id,
                                           include_incomplete=include_incomplete)

    def with_text(rows):
        for row in rows:
            row["text"] = messages.message_text(row.pop("content"))
            yield row

    listing(settings, query, _columns(HISTORY_FIELDS), limit=limit, rows=with_text, noun="messages",
            table=HISTORY_TABLE)


# ------------------------------------------------------------------- changes

CLOSE = Words("close", "closed", "session", label="closing")


def _bulk(settings, change, words: Words, *, dry_run: bool, remaining=None) -> None:
    """Run `change(bulk)`, a batched change of sprite sessions, and report it."""
    from nitejarctl.repositories import sprite_sessions as repo

    db = settings.database()
    run_bulk(settings, change, fields=[f.name for f in repo.fields(db)], columns=_columns(), words=words,
             dry_run=dry_run, remaining=remaining)


def _by_ids(settings, change, ids, words: Words, already: str, *, dry_run: bool, ignore_missing: bool) -> None:
    from nitejarctl.db import now

    result = change(settings.database(), ids, now(), dry_run=dry_run)
    tail = f" ({len(result.unchanged)} already {already})" if result.unchanged else ""
    show_changed(settings, result.changed, _columns(), words, dry_run=dry_run, tail=tail)
    if not result.missing:
        return
    if not ignore_missing:
        raise missing_ids("sprite session", "sprite sessions", result.missing)
    for session_id in result.missing:
        settings.warn(f"no sprite session with id {session_id!r}")


@sessions.command(name="close", counts=True)
@click.argument("ids", nargs=-1, metavar="[ID]...", shell_complete=completers.active_session_ids,
              callback=prefixed("SpriteSession", "sprite sessions"))
@click.option("--stale", type=DURATION, metavar="DURATION",
              help="Close every active session last active longer ago than this.")
@click.option("--conversation", metavar="SESSION_KEY", shell_complete=completers.sprite_session_keys,
              help="Close the active sessions of this conversation key (with --agent).")
@agent_option("The conversation's agent (with --conversation).", literal=_owner)
@dry_run_option
@ignore_missing_option
@pass_settings
def sessions_close(settings, ids, stale, conversation, agent_id, dry_run, ignore_missing):
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

    if (conversation is None) != (agent_id is None):
        raise UsageProblem("--conversation and --agent go together")
    modes = sum((bool(ids), stale is not None, conversation is not None))
    if modes == 0:
        raise UsageProblem("give session ids, --stale DURATION, or --conversation SESSION_KEY --agent AGENT")
    if modes > 1:
        raise UsageProblem("session ids, --stale and --conversation are alternatives: give one of them")
    if ids:
        _by_ids(settings, repo.close_ids, ids, CLOSE, "closed", dry_run=dry_run,
                ignore_missing=ignore_missing)
        return
    db, t = settings.database(), now()
    if stale is not None:
        _bulk(settings, lambda bulk: repo.close_stale(db, stale, t, bulk),
              Words("close", "closed", "session", label="closing", whole="stale session"), dry_run=dry_run,
              remaining=lambda: repo.count_stale(db, stale, t))
    else:
        _bulk(settings, lambda bulk: repo.close_for_conversation(db, conversation, agent_id, t, bulk),
              CLOSE, dry_run=dry_run)


@sessions.command(name="error", counts=True)
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=completers.active_session_ids,
              callback=prefixed("SpriteSession", "sprite sessions"))
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

    _by_ids(settings, repo.error_ids, ids, Words("mark", "marked", "session", suffix=" as error"),
            "in error", dry_run=dry_run, ignore_missing=ignore_missing)


@sessions.command(name="touch", counts=True)
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=completers.active_session_ids,
              callback=prefixed("SpriteSession", "sprite sessions"))
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

    _by_ids(settings, repo.touch_ids, ids, Words("touch", "touched", "session"), "touched this second",
            dry_run=dry_run, ignore_missing=ignore_missing)


@sessions.command(name="purge", counts=True)
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
    from nitejarctl.output.words import plural
    from nitejarctl.repositories import sprite_sessions as repo

    require_confirmation(settings, yes, dry_run)
    db, t = settings.database(), now()
    if not (dry_run or yes):
        n = repo.count_purgeable(db, older_than, t)
        confirm(settings, f"Delete {plural(n, 'closed or error session')} last active more than "
                          f"{format_duration(older_than)} ago?", yes)
    _bulk(settings, lambda bulk: repo.purge(db, older_than, t, bulk),
          Words("delete", "deleted", "session", label="deleting"), dry_run=dry_run,
          remaining=lambda: repo.count_purgeable(db, older_than, t))
