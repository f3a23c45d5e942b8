"""`nitejarctl compaction`: idle conversations become session summaries."""

from __future__ import annotations

import click

from nitejarctl.cli import completers
from nitejarctl.cli.changes import Words, show_changed
from nitejarctl.cli.context import pass_settings, say
from nitejarctl.cli.ids import prefixed
from nitejarctl.cli.options import (
    DURATION,
    TABLE_LIMIT,
    BoundedIntRange,
    FiniteFloatRange,
    agent_option,
    confirm,
    dry_run_option,
    group,
    ignore_missing_option,
    listing,
    listing_options,
    yes_option,
)
from nitejarctl.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    Interrupted,
    PartialFailure,
    Terminated,
    missing_ids,
)

IDLE_FIELDS = ("session_key", "agent_id", "agent_name", "message_count", "last_message_at")
SUMMARY_FIELDS = ("id", "session_key", "agent_id", "turn_count", "start_time", "end_time",
                  "compacted_at", "summary")
CONVERSATION_TABLES = ("agents", "work_items", "jobs", "messages", "session_summaries")
COMPACT = Words("compact", "compacted", "conversation", label="compacting")


def _columns(names):
    from nitejarctl.output import Column

    kinds = {"message_count": "int", "turn_count": "int", "compacted": "bool"}
    return [Column(n, "time" if n.endswith(("_at", "_time")) else kinds.get(n, "text")) for n in names]


def _database(settings, *tables):
    """The open database, which must have `tables`."""
    db = settings.database()
    for table in tables:
        db.require_table(table)
    return db


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


@compaction.command(name="idle", counts=True)
@click.option("--idle", "idle", type=DURATION, default="30m", show_default=True, metavar="DURATION",
              help="Idle when the newest message is older than this.")
@click.option("--all", "include_all", is_flag=True,
              help="Include compacted conversations too (adds the compacted field).")
@agent_option("Conversations of this agent.")
@click.option("--session-key", metavar="KEY", shell_complete=completers.session_keys,
              help="Conversations with this session key.")
@listing_options
@pass_settings
def compaction_idle(settings, idle, include_all, agent_id, session_key, limit):
    """List idle conversations not yet compacted (with --all, every idle one).

    \b
    Examples:
      nitejarctl compaction idle
      nitejarctl compaction idle --idle 2h --all -o json
      nitejarctl compaction idle --agent support-bot -o tsv
    """
    from nitejarctl.db import now
    from nitejarctl.repositories import messages

    _database(settings, *CONVERSATION_TABLES)
    query = messages.idle_conversations_query(cutoff=now() - idle, include_compacted=include_all,
                                              session_key=session_key, agent_id=agent_id)

    def flagged(rows):
        for row in rows:
            row["compacted"] = bool(row["compacted"])
            yield row

    names = IDLE_FIELDS + (("compacted",) if include_all else ())
    listing(settings, query, _columns(names), limit=limit, rows=flagged, id_field="session_key",
            noun="idle conversations",
            table=("session_key", "agent_name", "last_message_at", "message_count", "compacted"))


# --------------------------------------------------------------------- run


@compaction.command(name="run")
@click.option("--idle", "idle", type=DURATION, default="30m", show_default=True, metavar="DURATION",
              help="Compact conversations whose newest message is older than this.")
@click.option("--session-key", metavar="KEY", shell_complete=completers.session_keys,
              help="Only conversations with this session key.")
@agent_option("Only conversations of this agent.")
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
def compaction_run(settings, idle, session_key, agent_id, summarizer, summarizer_timeout, limit,
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
    its environment; NITEJAR_DATABASE_URL, DATABASE_URL, PGPASSWORD, PGPASSFILE
    and PGSERVICEFILE removed from it); when it fails, times out or prints nothing, that
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
    from nitejarctl.maintenance.compaction import CompactionRun

    db = _database(settings, *CONVERSATION_TABLES, *(() if keep_sprites else ("sprite_sessions",)))
    if dry_run and summarizer:
        settings.info("dry run: the summarizer does not run, summaries are left empty")
    run = CompactionRun(db, cutoff=now() - idle, session_key=session_key, agent_id=agent_id,
                        summarizer=summarizer, summarizer_timeout=summarizer_timeout, limit=limit,
                        dry_run=dry_run, keep_sprites=keep_sprites, batch_size=batch_size)
    stopped: list[BaseException] = []
    with run, settings.progress(COMPACT.label, run.total or None) as bar:
        outcomes = _tracked(run, bar, stopped)
        if settings.fmt == "json":
            _json_report(run, outcomes, dry_run=dry_run, keep_sprites=keep_sprites)
        else:
            settings.emit(_summary_rows(settings, outcomes, bar), _columns(SUMMARY_FIELDS))
    if stopped:
        _interrupted(run, stopped[0])
    settings.info(summary_line(run, dry_run=dry_run, keep_sprites=keep_sprites))
    failed = run.counts["failed"]
    if failed:
        raise PartialFailure(f"{COMPACT.count(failed)} could not be compacted (each is reported above)")


def _tracked(run, bar, stopped: list):
    """The run's outcomes, the progress bar following them. Whatever stops the
    run, the outcomes of its committed batches still come (and the listing
    ends well-formed); what stopped it is kept in `stopped`."""
    try:
        for outcome in run.outcomes():
            bar.advance()
            yield outcome
    except BaseException as exc:
        if run.dry_run:
            raise
        stopped.append(exc)
        bar.stop()
        yield from run.ready()


def _interrupted(run, exc: BaseException) -> None:
    line = COMPACT.interrupted(run.counts["compacted"], run.total)
    if isinstance(exc, KeyboardInterrupt):
        raise Interrupted(line, EXIT_INTERRUPTED) from None
    if isinstance(exc, Terminated):
        raise Interrupted(line, EXIT_TERMINATED) from None
    if run.counts["compacted"]:
        say(line)
    raise exc


def _summarizer(value: str | None) -> str | None:
    # An empty command is a mistake (an unset variable), not "use the default".
    if value is not None and not value.strip():
        raise click.BadParameter("the command is empty (leave the option out for nitejar's default summary).")
    return value


def summary_line(run, *, dry_run: bool, keep_sprites: bool) -> str:
    from nitejarctl.output.words import plural

    if run.total == 0:
        return "no idle conversations to compact"
    c = run.counts
    line = f"{'would compact' if dry_run else 'compacted'} {COMPACT.count(c['compacted'])}"
    if not keep_sprites:
        line += f", {'would close' if dry_run else 'closed'} {plural(run.closed_sessions, 'sprite session')}"
    others = [f"{c[k]:,} {k}" for k in ("skipped", "failed") if c[k]]
    if others:
        line += "; " + ", ".join(others)
    return line + (" (dry run)" if dry_run else "")


def _say(settings, bar, line: str, *, warning: bool = False) -> None:
    """A line on stderr, above the progress bar while it shows."""
    if bar.say(("Warning: " if warning else "") + line):
        return
    if warning:
        settings.warn(line)
    else:
        settings.info(line)


def _summary_rows(settings, outcomes, bar):
    """The compacted conversations' summaries as rows; skipped and failed ones
    reported on stderr (those of agents with compaction disabled, one line per
    agent). A table shows the first rows only (the run goes on)."""
    from nitejarctl.maintenance.compaction import SKIP_DISABLED

    shown = 0
    disabled: dict[str, int] = {}
    for outcome in outcomes:
        where = f"{outcome.session_key} (agent {outcome.agent_id})"
        if outcome.status == "skipped" and outcome.reason == SKIP_DISABLED:
            disabled[outcome.agent_id] = disabled.get(outcome.agent_id, 0) + 1
        elif outcome.status == "skipped":
            _say(settings, bar, f"skipped {where}: {outcome.reason}")
        elif outcome.status == "failed":
            _say(settings, bar, f"failed {where}: {outcome.reason}", warning=True)
        else:
            shown += 1
            if settings.fmt != "table" or shown <= TABLE_LIMIT:
                yield {name: getattr(outcome, name) for name in SUMMARY_FIELDS}
    for agent_id, n in disabled.items():
        _say(settings, bar, f"skipped {COMPACT.count(n)} of agent {agent_id}: {SKIP_DISABLED}")
    if settings.fmt == "table" and shown > TABLE_LIMIT:
        _say(settings, bar, f"… {shown - TABLE_LIMIT:,} more summaries not shown (use -o tsv or -o json)")


REPORT_FIELDS = {
    "compacted": ("id", "session_key", "agent_id", "turn_count", "start_time", "end_time", "summary"),
    "skipped": ("session_key", "agent_id", "reason"),
    "failed": ("session_key", "agent_id", "turn_count", "reason"),
}


def _json_report(run, outcomes, *, dry_run: bool, keep_sprites: bool) -> None:
    """The report object, its lists spooled while the run goes on (memory
    stays flat however many conversations there are)."""
    import sys

    from nitejarctl.output.formats import JsonReport

    with JsonReport(REPORT_FIELDS) as report:
        for outcome in outcomes:
            report.add(outcome.status, {f: getattr(outcome, f) for f in REPORT_FIELDS[outcome.status]})
        report.write_to(sys.stdout, before={"dry_run": dry_run},
                        after={"closed_sessions": None if keep_sprites else run.closed_sessions})


# --------------------------------------------------------------- summaries


@compaction.command(name="summaries", counts=True)
@agent_option("Summaries of this agent.")
@click.option("--session-key", metavar="KEY", shell_complete=completers.session_keys,
              help="Summaries of this session key.")
@listing_options
@pass_settings
def compaction_summaries(settings, agent_id, session_key, limit):
    """List session summaries, newest compaction first.

    \b
    Examples:
      nitejarctl compaction summaries
      nitejarctl compaction summaries --agent support-bot --session-key telegram:12345 -o json
    """
    from nitejarctl.repositories import sessions as repo

    db = _database(settings, "session_summaries")
    listing(settings, repo.list_query(db, agent_id=agent_id, session_key=session_key),
            _columns(SUMMARY_FIELDS), limit=limit, noun="summaries",
            table=("session_key", "agent", "compacted_at", "turn_count", "start_time", "end_time", "summary", "id"))


@compaction.command(name="show")
@click.argument("summary_id", metavar="ID", shell_complete=completers.summary_ids,
              callback=prefixed("SessionSummary", "summaries"))
@pass_settings
def compaction_show(settings, summary_id):
    """Show one session summary.

    \b
    Examples:
      nitejarctl compaction show 3f2c9a1e-…
      nitejarctl compaction show 3f2c9a1e-… -o json | jq -r .summary
    """
    from nitejarctl.repositories import sessions as repo

    db = _database(settings, "session_summaries")
    settings.emit_one(repo.get(db, summary_id), kinds={"turn_count": "int"})


@compaction.command(name="delete", counts=True)
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=completers.summary_ids,
              callback=prefixed("SessionSummary", "summaries"))
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

    db = _database(settings, "session_summaries")
    found = repo.find(db, ids)
    known = {row["id"] for row in found}
    missing = [i for i in dict.fromkeys(ids) if i not in known]
    if missing and not ignore_missing:
        raise missing_ids("session summary", "session summaries", missing)
    for summary_id in missing:
        settings.warn(f"no session summary with id {summary_id!r}")
    words = Words("delete", "deleted", "session summary", "session summaries")
    if found and not dry_run:
        confirm(settings, f"Delete {words.count(len(found))}?", yes)
        repo.delete(db, [row["id"] for row in found])
    show_changed(settings, found, _columns(SUMMARY_FIELDS), words, dry_run=dry_run)
