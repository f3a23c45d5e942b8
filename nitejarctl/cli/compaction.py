"""`nitejarctl compaction`: idle conversations become session summaries."""

from __future__ import annotations

import sys

import click

from nitejarctl.cli import completers
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import (
    DURATION,
    BoundedIntRange,
    FiniteFloatRange,
    confirm,
    dry_run_option,
    emit_listing,
    fetch_limit,
    group,
    ignore_missing_option,
    limit_option,
    yes_option,
)
from nitejarctl.errors import NotFound, PartialFailure

IDLE_FIELDS = ("session_key", "agent_id", "agent_name", "message_count", "last_message_at")
SUMMARY_FIELDS = ("id", "session_key", "agent_id", "turn_count", "start_time", "end_time",
                  "compacted_at", "summary")
CONVERSATION_TABLES = ("agents", "work_items", "jobs", "messages", "session_summaries")
TABLE_ROWS = 100


def _columns(names):
    from nitejarctl.output import Column

    kinds = {"message_count": "int", "turn_count": "int", "compacted": "bool"}
    return [Column(n, "time" if n.endswith(("_at", "_time")) else kinds.get(n, "text")) for n in names]


def _plural(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _require(db, *tables) -> None:
    from nitejarctl.db import require_table

    for table in tables:
        require_table(db, table)


def _agent_id(db, ref: str | None) -> str | None:
    if ref is None:
        return None
    from nitejarctl.repositories import agents

    return agents.resolve_id(db, ref)


@group()
def compaction():
    """Compact idle conversations into session summaries, as nitejar does.

    A conversation is a (session key, agent) pair; its messages are those of
    its COMPLETED jobs. It is idle when its newest message is older than
    --idle, compacted when a summary reaches that message.

    \b
    Examples:
      nitejarctl compaction idle --idle 30m
      nitejarctl compaction run --dry-run
      nitejarctl compaction run --summarizer 'llm -s "Summarize this conversation"'
      nitejarctl compaction summaries --agent support-bot
    """


# -------------------------------------------------------------------- idle


@compaction.command(name="idle")
@click.option("--idle", "idle", type=DURATION, default="30m", show_default=True, metavar="DURATION",
              help="Idle when the newest message is older than this.")
@click.option("--all", "include_all", is_flag=True,
              help="Include compacted conversations too (adds the compacted field).")
@click.option("--agent", metavar="ID|NAME", shell_complete=completers.agents, help="Conversations of this agent.")
@click.option("--session-key", metavar="KEY", shell_complete=completers.session_keys, help="Conversations with this session key.")
@limit_option
@pass_settings
def compaction_idle(settings, idle, include_all, agent, session_key, limit):
    """List idle conversations not yet compacted (with --all, every idle one).

    \b
    Examples:
      nitejarctl compaction idle
      nitejarctl compaction idle --idle 2h --all -o json
      nitejarctl compaction idle --agent support-bot -o tsv
    """
    from nitejarctl.cli.options import effective_limit
    from nitejarctl.db import now, stream
    from nitejarctl.repositories import messages

    db = settings.database()
    _require(db, *CONVERSATION_TABLES)
    query = messages.idle_conversations_query(cutoff=now() - idle, include_compacted=include_all,
                                              session_key=session_key, agent_id=_agent_id(db, agent))
    limit = effective_limit(settings, limit)
    names = IDLE_FIELDS + (("compacted",) if include_all else ())

    def rows():
        for row in stream(db, query.limit(fetch_limit(limit)) if limit else query):
            row["compacted"] = bool(row["compacted"])
            yield row

    emit_listing(settings, rows(), _columns(names), limit=limit, id_field="session_key",
                 count=lambda: query.order_by().count(), noun="idle conversations")


# --------------------------------------------------------------------- run


@compaction.command(name="run")
@click.option("--idle", "idle", type=DURATION, default="30m", show_default=True, metavar="DURATION",
              help="Compact conversations whose newest message is older than this.")
@click.option("--session-key", metavar="KEY", shell_complete=completers.session_keys, help="Only conversations with this session key.")
@click.option("--agent", metavar="ID|NAME", shell_complete=completers.agents, help="Only conversations of this agent.")
@click.option("--summarizer", metavar="CMD", callback=lambda ctx, param, value: _summarizer(value),
              help="Shell command that reads the transcript ('role: text' lines) on stdin "
                   "and prints the summary [default: nitejar's topic list].")
@click.option("--summarizer-timeout", type=FiniteFloatRange(min=0, min_open=True), default=120.0,
              show_default=True, metavar="SECONDS", help="Time limit of one summarizer run.")
@click.option("--limit", type=BoundedIntRange(min=1), default=None, metavar="N",
              help="Write at most N summaries.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=200, show_default=True,
              metavar="N", help="Conversations per write transaction (each also ends after ~0.2 s).")
@dry_run_option
@click.option("--keep-sprites", is_flag=True,
              help="Do not close the compacted conversations' active sprite sessions.")
@pass_settings
def compaction_run(settings, idle, session_key, agent, summarizer, summarizer_timeout, limit,
                   batch_size, dry_run, keep_sprites):
    """Compact idle conversations into session summaries.

    For each idle conversation not yet compacted: build its turns (a user
    message answered by the assistant; system and tool messages are left
    out), write one summary and close the conversation's active sprite
    sessions, both in one transaction. Conversations without a complete turn,
    and agents whose config sets sessionSettings.compaction.enabled to false,
    are skipped. A second run writes nothing.

    The default summary is nitejar's: "Conversation topics: " and the start
    of the first five user messages. --summarizer runs a command through
    sh -c for each conversation (NITEJAR_SESSION_KEY and NITEJAR_AGENT_ID in
    its environment); when it fails, times out or prints nothing, that
    conversation is reported and left as it was, the others go on, and the
    exit code is 4. A dry run does not run the summarizer.

    Prints the written summaries (with -o json a report of the compacted,
    skipped and failed conversations) and a summary line on stderr.

    \b
    Examples:
      nitejarctl compaction run --dry-run
      nitejarctl compaction run --idle 1h --limit 500
      nitejarctl compaction run --session-key telegram:12345 --agent support-bot
      nitejarctl compaction run --summarizer './summarize.sh' --summarizer-timeout 60 -o json
    """
    from nitejarctl.db import now
    from nitejarctl.repositories.compaction import CompactionRun

    db = settings.database()
    _require(db, *CONVERSATION_TABLES, *(() if keep_sprites else ("sprite_sessions",)))
    agent_id = _agent_id(db, agent)
    if dry_run and summarizer:
        settings.info("dry run: the summarizer does not run, summaries are left empty")
    run = CompactionRun(db, cutoff=now() - idle, session_key=session_key, agent_id=agent_id,
                        summarizer=summarizer, summarizer_timeout=summarizer_timeout, limit=limit,
                        dry_run=dry_run, keep_sprites=keep_sprites, batch_size=batch_size)
    with run, Progress(settings, run.total) as progress:
        outcomes = progress.track(run.outcomes())
        if settings.fmt == "json":
            _json_report(run, outcomes, dry_run=dry_run, keep_sprites=keep_sprites)
        else:
            settings.emit(_summary_rows(settings, outcomes, progress), _columns(SUMMARY_FIELDS))
    settings.info(summary_line(run, dry_run=dry_run, keep_sprites=keep_sprites))
    failed = run.counts["failed"]
    if failed:
        raise PartialFailure(f"{_plural(failed, 'conversation')} could not be compacted "
                             "(each is reported above)")


def _summarizer(value: str | None) -> str | None:
    # An empty command is a mistake (an unset variable), not "use the default".
    if value is not None and not value.strip():
        raise click.BadParameter("the command is empty (leave the option out for nitejar's default summary).")
    return value


def summary_line(run, *, dry_run: bool, keep_sprites: bool) -> str:
    if run.total == 0:
        return "no idle conversations to compact"
    c = run.counts
    line = f"{'would compact' if dry_run else 'compacted'} {_plural(c['compacted'], 'conversation')}"
    if not keep_sprites:
        line += f", {'would close' if dry_run else 'closed'} {_plural(run.closed_sessions, 'sprite session')}"
    others = [f"{c[k]} {k}" for k in ("skipped", "failed") if c[k]]
    if others:
        line += "; " + ", ".join(others)
    return line + (" (dry run)" if dry_run else "")


def _summary_rows(settings, outcomes, progress):
    """The compacted conversations' summaries as rows; skipped and failed ones
    reported on stderr (those of agents with compaction disabled, one line per
    agent). A table shows the first rows only (the run goes on)."""
    from nitejarctl.repositories.compaction import SKIP_DISABLED

    shown = 0
    disabled: dict[str, int] = {}
    for outcome in outcomes:
        where = f"{outcome.session_key} (agent {outcome.agent_id})"
        if outcome.status == "skipped" and outcome.reason == SKIP_DISABLED:
            disabled[outcome.agent_id] = disabled.get(outcome.agent_id, 0) + 1
        elif outcome.status == "skipped":
            progress.say(f"skipped {where}: {outcome.reason}")
        elif outcome.status == "failed":
            progress.say(f"failed {where}: {outcome.reason}", warning=True)
        else:
            shown += 1
            if settings.fmt != "table" or shown <= TABLE_ROWS:
                yield {name: getattr(outcome, name) for name in SUMMARY_FIELDS}
    for agent_id, n in disabled.items():
        progress.say(f"skipped {_plural(n, 'conversation')} of agent {agent_id}: {SKIP_DISABLED}")
    if settings.fmt == "table" and shown > TABLE_ROWS:
        progress.say(f"… {shown - TABLE_ROWS} more summaries not shown (use -o tsv or -o json)")


REPORT_FIELDS = {
    "compacted": ("id", "session_key", "agent_id", "turn_count", "start_time", "end_time", "summary"),
    "skipped": ("session_key", "agent_id", "reason"),
    "failed": ("session_key", "agent_id", "turn_count", "reason"),
}


def _json_report(run, outcomes, *, dry_run: bool, keep_sprites: bool) -> None:
    """The report object, its lists spooled to temporary files while the run
    goes on (memory stays flat however many conversations there are)."""
    import tempfile

    from nitejarctl.output import to_json

    spools = {status: tempfile.TemporaryFile("w+", encoding="utf-8") for status in REPORT_FIELDS}
    try:
        for outcome in outcomes:
            fields = REPORT_FIELDS[outcome.status]
            spools[outcome.status].write(to_json({f: getattr(outcome, f) for f in fields}) + "\n")
        out = sys.stdout
        out.write('{\n  "dry_run": ' + to_json(dry_run) + ",\n")
        for status, spool in spools.items():
            spool.seek(0)
            out.write(f'  "{status}": [')
            count = 0
            for count, line in enumerate(spool, 1):
                out.write(("\n    " if count == 1 else ",\n    ") + line.rstrip("\n"))
            out.write("\n  ],\n" if count else "],\n")
        closed = None if keep_sprites else run.closed_sessions
        out.write('  "closed_sessions": ' + to_json(closed) + "\n}\n")
        out.flush()
    finally:
        for spool in spools.values():
            spool.close()


class Progress:
    """The run's progress bar on stderr (output.ProgressBar: on a terminal, not
    with -q, after a second); lines meant for stderr go above it while it shows."""

    def __init__(self, settings, total: int):
        from nitejarctl.output import ProgressBar

        self.settings = settings
        self._bar = ProgressBar("compacting", total, color=settings.color,
                                enabled=bool(total) and settings.stderr_is_terminal() and not settings.quiet)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._bar.stop()
        return False

    def track(self, outcomes):
        for outcome in outcomes:
            self._bar.advance()
            yield outcome

    def say(self, line: str, *, warning: bool = False) -> None:
        if self._bar.say(("Warning: " if warning else "") + line):
            return
        if warning:
            self.settings.warn(line)
        else:
            self.settings.info(line)


# --------------------------------------------------------------- summaries


@compaction.command(name="summaries")
@click.option("--agent", metavar="ID|NAME", shell_complete=completers.agents, help="Summaries of this agent.")
@click.option("--session-key", metavar="KEY", shell_complete=completers.session_keys, help="Summaries of this session key.")
@limit_option
@pass_settings
def compaction_summaries(settings, agent, session_key, limit):
    """List session summaries, newest compaction first.

    \b
    Examples:
      nitejarctl compaction summaries
      nitejarctl compaction summaries --agent support-bot --session-key telegram:12345 -o json
    """
    from nitejarctl.cli.options import effective_limit
    from nitejarctl.db import stream
    from nitejarctl.repositories import sessions as repo

    db = settings.database()
    _require(db, "session_summaries")
    query = repo.list_query(db, agent_id=_agent_id(db, agent), session_key=session_key)
    limit = effective_limit(settings, limit)
    emit_listing(settings, stream(db, query.limit(fetch_limit(limit)) if limit else query),
                 _columns(SUMMARY_FIELDS), limit=limit, count=lambda: query.order_by().count(),
                 noun="summaries")


@compaction.command(name="show")
@click.argument("summary_id", metavar="ID", shell_complete=completers.summary_ids)
@pass_settings
def compaction_show(settings, summary_id):
    """Show one session summary.

    \b
    Examples:
      nitejarctl compaction show 3f2c9a1e-…
      nitejarctl compaction show 3f2c9a1e-… -o json | jq -r .summary
    """
    from nitejarctl.repositories import sessions as repo

    db = settings.database()
    _require(db, "session_summaries")
    settings.emit_one(repo.get(db, summary_id), kinds={"turn_count": "int"})


@compaction.command(name="delete")
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=completers.summary_ids)
@dry_run_option
@yes_option
@ignore_missing_option
@pass_settings
def compaction_delete(settings, ids, dry_run, yes, ignore_missing):
    """Delete session summaries (the conversation counts as not compacted again).

    Asks for confirmation on a terminal; elsewhere --yes is required. An
    unknown id is an error (exit 3, nothing deleted) unless --ignore-missing.

    \b
    Examples:
      nitejarctl compaction delete 3f2c9a1e-… --dry-run
      nitejarctl compaction summaries --agent old-bot -o ids | xargs -r nitejarctl compaction delete --yes
    """
    from nitejarctl.repositories import sessions as repo

    db = settings.database()
    _require(db, "session_summaries")
    found = repo.find(db, ids)
    known = {row["id"] for row in found}
    missing = [i for i in dict.fromkeys(ids) if i not in known]
    if missing and not ignore_missing:
        shown = ", ".join(repr(i) for i in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise NotFound(f"no session summary with id {shown}{more}" if len(missing) == 1
                       else f"no session summaries with ids {shown}{more}")
    for summary_id in missing:
        settings.warn(f"no session summary with id {summary_id!r}")
    noun = ("session summary", "session summaries")
    if dry_run:
        _emit_changed(settings, found)
        settings.info(f"would delete {_plural(len(found), *noun)} (dry run)")
        return
    if found and not confirm(settings, f"Delete {_plural(len(found), *noun)}?", yes):
        settings.info("nothing deleted")
        raise click.exceptions.Exit(1)
    deleted = repo.delete(db, [row["id"] for row in found]) if found else 0
    _emit_changed(settings, found)
    settings.info(f"deleted {_plural(deleted, *noun)}")


def _emit_changed(settings, rows) -> None:
    if rows or settings.fmt != "table":
        settings.emit(iter(rows), _columns(SUMMARY_FIELDS))
