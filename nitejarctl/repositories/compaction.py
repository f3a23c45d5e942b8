"""Compaction: idle conversations become session summaries, as nitejar does.

A conversation is a (work_items.session_key, jobs.agent_id) pair; its messages
are those of its COMPLETED jobs, in history order (job created_at, message
created_at, message id). `CompactionRun` compacts every idle, not yet
compacted conversation: it builds the turns (a user message opens one, the
next assistant message closes it; system and tool messages and messages
without text take no part), writes one `session_summaries` row and closes the
conversation's active sprite sessions, both in one transaction.

How the work streams (memory flat in the number of conversations):

1. One set-based statement copies the keys of the idle, un-compacted
   conversations into a temporary table, numbered in key order
   (`row_number()`); nothing of it is held in Python. Temporary tables belong
   to this connection only (SQLite keeps them in its separate temp database,
   so filling one takes no lock on the main database).
2. The messages are read in one pass, in batches of consecutive keys: each
   batch is one query joining the temporary keys (a seq range) with
   work_items, jobs and messages, ordered by key then history order, streamed
   with `db.stream`. Consecutive rows of one key form one conversation; only
   the conversation being read is in memory (without a summarizer, not even
   its messages: the turn count, the first five topics and the first and last
   times). A batch ends after `batch_size` conversations, or early, at a
   conversation boundary, after `batch_seconds` or when the transcripts it
   holds for a summarizer grow past a budget; the next batch resumes after
   the last conversation it finished.
3. The batch's cursor is closed BEFORE anything is written. A read cursor
   must not stay open across a write on the same connection: on SQLite a
   statement still reading keeps the connection's read snapshot, and in WAL
   mode a connection whose snapshot is older than another process's commit
   cannot take the write lock (SQLITE_BUSY_SNAPSHOT, with no busy wait), while
   on PostgreSQL a commit closes the server-side cursor. So reads and writes
   alternate: read a batch (short read transaction), then run the
   summarizer, if any, with nothing open (no lock is held while an external
   command runs), then write.
4. Writes go in one short transaction per batch (on SQLite `BEGIN
   IMMEDIATE`; on PostgreSQL under a transaction-scoped advisory lock that
   serialises concurrent runs): the batch's summaries are staged in a second
   temporary table, then one INSERT … SELECT writes those for which no summary
   with `end_time` ≥ theirs exists yet — the "not yet compacted" check is
   repeated inside the write transaction, so two runs never both write — and
   one UPDATE closes the active sprite sessions of exactly the conversations
   whose summary was written (nitejar's closeSessionsForConversation, for the
   whole batch at once rather than one statement per conversation as
   `sprite_sessions.close_for_conversation` does). With a summarizer the
   writer also commits when `batch_seconds` have passed since its first
   pending summary.

A SIGKILL at any moment therefore leaves every batch either fully committed
(summaries and closed sessions) or not at all, never a duplicate, and a rerun
finds what is left still idle and un-compacted. `end_time` is the newest
message time (and `start_time` the oldest), which is exactly what "compacted"
is measured against, so a second run writes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass

import peewee as pw
from peewee import SQL, Case, NodeList, Value, fn

from nitejarctl.db import dialect, stream
from nitejarctl.db import now as db_now
from nitejarctl.models import (
    Agent,
    Job,
    Message,
    SessionSummary,
    SpriteSession,
    WorkItem,
    database_proxy,
)
from nitejarctl.repositories import messages

SKIPPED_ROLES = ("system", "tool")
TOPIC_TURNS = 5
TOPIC_CHARS = 50
BATCH_CONVERSATIONS = 200
BATCH_SECONDS = 0.2
TRANSCRIPT_BUDGET = 8_000_000  # characters of transcripts one batch may hold
DEFAULT_SUMMARIZER_TIMEOUT = 120.0
PG_LOCK_KEY = 0x6E6A_636F_6D70  # pg_advisory_xact_lock key of compaction writes

SKIP_DISABLED = "compaction disabled in the agent's config"
SKIP_NO_TURN = "no complete turn (user message answered by the assistant)"
SKIP_NOT_IDLE = "no longer idle (a newer message arrived)"
SKIP_ALREADY = "already compacted (by a concurrent run)"


# ----------------------------------------------------------------- the summary


def default_summary(topics: list[str], turn_count: int) -> str:
    """nitejar's generateDefaultSummary: the first 50 characters of the user
    message of each of the first five turns ("..." when longer), then how
    many more exchanges there were."""
    parts = [t[:TOPIC_CHARS] + ("..." if len(t) > TOPIC_CHARS else "") for t in topics[:TOPIC_TURNS]]
    more = turn_count - TOPIC_TURNS
    return "Conversation topics: " + "; ".join(parts) + (f" (and {more} more exchanges)" if more > 0 else "")


class Conversation:
    """The turns of one conversation, fed its messages in history order."""

    __slots__ = ("seq", "session_key", "agent_id", "start_time", "end_time", "turn_count",
                 "topics", "_open", "transcript", "size")

    def __init__(self, seq, session_key, agent_id, *, keep_transcript=False):
        self.seq, self.session_key, self.agent_id = seq, session_key, agent_id
        self.start_time = self.end_time = None
        self.turn_count = 0
        self.topics: list[str] = []
        self._open: str | None = None
        self.transcript: list[str] | None = [] if keep_transcript else None
        self.size = 0

    def add(self, role: str, content, created_at: int) -> None:
        if self.start_time is None or created_at < self.start_time:
            self.start_time = created_at
        if self.end_time is None or created_at > self.end_time:
            self.end_time = created_at
        if role in SKIPPED_ROLES:
            return
        text = messages.message_text(content)
        if self.transcript is not None:
            line = f"{role}: {text}"
            self.transcript.append(line)
            self.size += len(line) + 1
        if not text:
            return
        if role == "user":
            # A topic needs one character more than it shows, to know if it is longer.
            self._open = text[:TOPIC_CHARS + 1]
        elif role == "assistant" and self._open is not None:
            self.turn_count += 1
            if len(self.topics) < TOPIC_TURNS:
                self.topics.append(self._open)
            self._open = None

    def transcript_text(self) -> str:
        return "".join(line + "\n" for line in self.transcript or ())


# ------------------------------------------------------------- the summarizer


class SummarizerFailed(Exception):
    """The summarizer command failed for one conversation (the reason is the message)."""


def run_summarizer(command: str, transcript: str, *, timeout: float, env: dict | None = None) -> str:
    """Run `sh -c command` with the transcript on stdin; its stripped stdout is
    the summary. A time limit, a non-zero exit or empty output raise
    SummarizerFailed. The command gets its own process group, killed whole on
    timeout (so a pipeline's children do not linger holding the pipes)."""
    try:
        proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, env=env)
    except OSError as exc:
        raise SummarizerFailed(f"cannot run the summarizer: {exc.strerror or exc}") from None
    try:
        out, err = proc.communicate(transcript.encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise SummarizerFailed(f"summarizer timed out after {timeout:g}s") from None
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode < 0:
        raise SummarizerFailed(f"summarizer killed by signal {-proc.returncode}")
    if proc.returncode != 0:
        detail = _last_line(err)
        raise SummarizerFailed(f"summarizer exited with status {proc.returncode}"
                               + (f": {detail}" if detail else ""))
    # NUL is no text (PostgreSQL refuses it in a text column): drop it.
    summary = out.decode("utf-8", "replace").replace("\x00", "").strip()
    if not summary:
        raise SummarizerFailed("summarizer printed nothing")
    return summary


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a grandchild left the group and holds a pipe
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


def _last_line(raw: bytes) -> str:
    lines = [line.strip() for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


# -------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """What happened to one conversation: compacted, skipped or failed."""

    status: str
    session_key: str
    agent_id: str
    turn_count: int | None = None
    reason: str | None = None
    id: str | None = None
    summary: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    compacted_at: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------- temporary tables


class _Temp(pw.Model):
    class Meta:
        database = database_proxy


class _Key(_Temp):
    seq = pw.IntegerField(primary_key=True)
    session_key = pw.TextField()
    agent_id = pw.TextField()
    last_message_at = pw.IntegerField()
    enabled = pw.IntegerField(constraints=[SQL("DEFAULT 1")])

    class Meta:
        table_name = "nitejarctl_compaction_keys"


class _Out(_Temp):
    id = pw.TextField(primary_key=True)
    session_key = pw.TextField()
    agent_id = pw.TextField()
    summary = pw.TextField(null=True)
    turn_count = pw.IntegerField()
    start_time = pw.IntegerField()
    end_time = pw.IntegerField()

    class Meta:
        table_name = "nitejarctl_compaction_out"


def compaction_disabled(config) -> bool:
    """True when an agent's config sets sessionSettings.compaction.enabled to false."""
    if not config:
        return False
    try:
        parsed = json.loads(config)
    except (TypeError, ValueError):
        return False
    node = parsed
    for key in ("sessionSettings", "compaction", "enabled"):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return node is False


# ------------------------------------------------------------------ the engine


class CompactionRun:
    """One compaction pass. Use as a context manager (it owns two temporary
    tables); `outcomes()` does the work and yields an Outcome per conversation,
    a compacted one only once its transaction has committed.

    `limit` caps the summaries written (skipped and failed conversations do not
    count). With `dry_run` nothing is written and no summarizer runs (their
    summaries are None); `closed_sessions` then counts the sessions that would
    be closed."""

    def __init__(self, db, *, cutoff: int, session_key: str | None = None, agent_id: str | None = None,
                 summarizer: str | None = None, summarizer_timeout: float = DEFAULT_SUMMARIZER_TIMEOUT,
                 limit: int | None = None, dry_run: bool = False, keep_sprites: bool = False,
                 batch_size: int = BATCH_CONVERSATIONS, batch_seconds: float = BATCH_SECONDS):
        self.db = db
        self.cutoff = cutoff
        self.session_key = session_key
        self.agent_id = agent_id
        self.summarizer = summarizer
        self.summarizer_timeout = summarizer_timeout
        self.limit = limit
        self.dry_run = dry_run
        self.keep_sprites = keep_sprites
        self.batch_size = max(1, batch_size)
        self.batch_seconds = batch_seconds
        self.total = 0
        self.closed_sessions = 0
        self.counts = {"compacted": 0, "skipped": 0, "failed": 0}
        self._postgres = dialect(db) == "postgresql"
        self._pending: list[Outcome] = []
        self._pending_since = 0.0

    # -- lifecycle

    def __enter__(self):
        self._drop()
        _Key.create_table(safe=False, temporary=True)
        _Out.create_table(safe=False, temporary=True)
        try:
            self._fill_keys()
        except BaseException:
            self._drop()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self._drop()
        except Exception:
            if exc_type is None:
                raise
        return False

    def _drop(self) -> None:
        schema = "pg_temp" if self._postgres else "temp"
        for model in (_Out, _Key):
            self.db.execute_sql(f"DROP TABLE IF EXISTS {schema}.{model._meta.table_name}")

    def _fill_keys(self) -> None:
        idle = messages.idle_conversations_query(cutoff=self.cutoff, session_key=self.session_key,
                                                 agent_id=self.agent_id).order_by().alias("idle")
        numbered = (pw.Select([idle], [
            fn.ROW_NUMBER().over(order_by=[idle.c.session_key, idle.c.agent_id]),
            idle.c.session_key, idle.c.agent_id, idle.c.last_message_at]))
        _Key.insert_from(numbered, fields=[_Key.seq, _Key.session_key, _Key.agent_id,
                                           _Key.last_message_at]).execute()
        disabled = self._disabled_agents()
        for start in range(0, len(disabled), 500):
            _Key.update(enabled=0).where(_Key.agent_id.in_(disabled[start:start + 500])).execute()
        if self._postgres:
            self.db.execute_sql(f"ANALYZE {_Key._meta.table_name}")
        self.total = _Key.select().count()

    def _disabled_agents(self) -> list[str]:
        query = Agent.select(Agent.id, Agent.config).where(Agent.config.contains("compaction"))
        if self.agent_id is not None:
            query = query.where(Agent.id == self.agent_id)
        return [row["id"] for row in stream(self.db, query)
                if compaction_disabled(row["config"])]

    # -- the pass

    def outcomes(self):
        for row in stream(self.db, _Key.select(_Key.session_key, _Key.agent_id)
                          .where(_Key.enabled == 0).order_by(_Key.seq)):
            yield self._count(Outcome("skipped", row["session_key"], row["agent_id"], reason=SKIP_DISABLED))
        last = _Key.select(fn.MAX(_Key.seq)).where(_Key.enabled == 1).scalar() or 0
        done = 0
        while done < last and not self._limit_reached():
            items, done = self._read_batch(done)
            for item in items:
                if isinstance(item, Outcome):
                    yield self._count(item)
                    continue
                outcome = self._summarize(item)
                if outcome.status == "failed":
                    yield self._count(outcome)
                    continue
                if not self._pending:
                    self._pending_since = time.monotonic()
                self._pending.append(outcome)
                if self.summarizer and time.monotonic() - self._pending_since >= self.batch_seconds:
                    yield from self._flush()
            yield from self._flush()

    def _count(self, outcome: Outcome) -> Outcome:
        self.counts[outcome.status] += 1
        return outcome

    def _limit_reached(self) -> bool:
        return self.limit is not None and self.counts["compacted"] + len(self._pending) >= self.limit

    def _messages_query(self, after: int, upto: int):
        content = Case(None, [(Message.role.not_in(SKIPPED_ROLES), Message.content)], None)
        # Reach jobs through the conversation's work items, not idx_jobs_agent.
        job_agent = self._unindexed(Job.agent_id)
        return (_Key
                .select(_Key.seq, _Key.session_key, _Key.agent_id, Message.role,
                        content.alias("content"), Message.created_at)
                .join(WorkItem, on=(WorkItem.session_key == _Key.session_key))
                .join(Job, on=((Job.work_item_id == WorkItem.id) & (job_agent == _Key.agent_id)))
                .join(Message, on=(Message.job_id == Job.id))
                .where((_Key.seq > after) & (_Key.seq <= upto) & (_Key.enabled == 1)
                       & (Job.status == "COMPLETED"))
                .order_by(_Key.seq, Job.created_at, Message.created_at, Message.id))

    def _unindexed(self, column):
        """`column` as SQLite's planner may not use an index for (unary +):
        without statistics it would pick the agent_id index — every job or
        summary of the agent — over the far narrower session_key one."""
        return column if self._postgres else NodeList((SQL("+"), column), glue="")

    def _read_batch(self, after: int):
        """Read the conversations after seq `after` (at most batch_size; fewer
        when time, the transcript budget or --limit says stop) and return
        (items, seq of the last conversation read). Items are skip Outcomes and
        finished Conversations. The cursor is closed when this returns."""
        upto = after + self.batch_size
        wanted = None if self.limit is None else self.limit - self.counts["compacted"] - len(self._pending)
        started = time.monotonic()
        items: list = []
        ready = held = 0
        current = None
        rows = stream(self.db, self._messages_query(after, upto))
        stopped = False
        try:
            for row in rows:
                if current is None or row["seq"] != current.seq:
                    if current is not None:
                        item = self._finish(current)
                        items.append(item)
                        if isinstance(item, Conversation):
                            ready += 1
                            held += item.size
                        after = current.seq
                        if ((wanted is not None and ready >= wanted) or held >= TRANSCRIPT_BUDGET
                                or time.monotonic() - started >= self.batch_seconds):
                            current = None
                            stopped = True
                            break
                    current = Conversation(row["seq"], row["session_key"], row["agent_id"],
                                           keep_transcript=bool(self.summarizer) and not self.dry_run)
                current.add(row["role"], row["content"], row["created_at"])
        finally:
            rows.close()
        if current is not None:
            items.append(self._finish(current))
        return items, (after if stopped else upto)

    def _finish(self, conv: Conversation):
        if conv.end_time >= self.cutoff:
            return Outcome("skipped", conv.session_key, conv.agent_id, reason=SKIP_NOT_IDLE)
        if conv.turn_count == 0:
            return Outcome("skipped", conv.session_key, conv.agent_id, turn_count=0, reason=SKIP_NO_TURN)
        return conv

    def _summarize(self, conv: Conversation) -> Outcome:
        outcome = Outcome("compacted", conv.session_key, conv.agent_id, turn_count=conv.turn_count,
                          id=None if self.dry_run else str(uuid.uuid4()),
                          start_time=conv.start_time, end_time=conv.end_time)
        if not self.summarizer:
            outcome.summary = default_summary(conv.topics, conv.turn_count)
        elif not self.dry_run:
            env = dict(os.environ, NITEJAR_SESSION_KEY=conv.session_key, NITEJAR_AGENT_ID=conv.agent_id)
            try:
                outcome.summary = run_summarizer(self.summarizer, conv.transcript_text(),
                                                 timeout=self.summarizer_timeout, env=env)
            except SummarizerFailed as exc:
                outcome.status, outcome.reason, outcome.id = "failed", str(exc), None
        return outcome

    # -- writing

    def _flush(self):
        pending, self._pending = self._pending, []
        if not pending:
            return
        if self.dry_run:
            now = db_now()
            written = {id(o) for o in pending}
            if not self.keep_sprites:
                self._stage(pending)
                try:
                    self.closed_sessions += self._sessions_to_close(written_only=False).count()
                finally:
                    _Out.delete().execute()
        else:
            with self.db.atomic():
                if self._postgres:
                    self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
                # The time once the lock is ours: a session nitejar touched while this
                # transaction waited for it is never closed with an older last_active_at.
                now = db_now()
                self._stage(pending)
                self._insert_summaries(now)
                inserted = {r[0] for r in _Out.select(_Out.id)
                            .join(SessionSummary, on=(SessionSummary.id == _Out.id)).tuples()}
                if not self.keep_sprites:
                    targets = self._sessions_to_close(written_only=True)
                    self.closed_sessions += (SpriteSession
                                             .update(status="closed", last_active_at=now)
                                             .where(SpriteSession.id.in_(targets))
                                             .execute())
                _Out.delete().execute()
            written = {id(o) for o in pending if o.id in inserted}
        for outcome in pending:
            if id(outcome) in written:
                outcome.compacted_at = now
                yield self._count(outcome)
            else:
                yield self._count(Outcome("skipped", outcome.session_key, outcome.agent_id,
                                          turn_count=outcome.turn_count, reason=SKIP_ALREADY))

    def _stage(self, pending: list[Outcome]) -> None:
        names = ("id", "session_key", "agent_id", "summary", "turn_count", "start_time", "end_time")
        sql = (f"INSERT INTO {_Out._meta.table_name} ({', '.join(names)}) "
               f"VALUES ({', '.join([self.db.param] * len(names))})")
        rows = [(o.id or str(uuid.uuid4()), o.session_key, o.agent_id, o.summary, o.turn_count,
                 o.start_time, o.end_time) for o in pending]
        cursor = self.db.cursor()
        try:
            with pw.__exception_wrapper__:
                cursor.executemany(sql, rows)
        finally:
            cursor.close()

    def _insert_summaries(self, now: int) -> None:
        existing = SessionSummary.alias("existing")
        compacted = fn.EXISTS(existing.select(SQL("1")).where(
            (existing.session_key == _Out.session_key) & (self._unindexed(existing.agent_id) == _Out.agent_id)
            & (existing.end_time >= _Out.end_time)))
        source = (_Out.select(_Out.id, _Out.session_key, _Out.agent_id, _Out.summary, _Out.turn_count,
                              _Out.start_time, _Out.end_time, Value(now))
                  .where(~compacted))
        SessionSummary.insert_from(source, fields=[
            SessionSummary.id, SessionSummary.session_key, SessionSummary.agent_id, SessionSummary.summary,
            SessionSummary.turn_count, SessionSummary.start_time, SessionSummary.end_time,
            SessionSummary.compacted_at]).execute()

    def _sessions_to_close(self, *, written_only: bool):
        """The active sprite sessions of the staged conversations (of those whose
        summary this transaction wrote, when `written_only`)."""
        active = SpriteSession.alias("active")
        query = (active.select(active.id)
                 .join(_Out, on=((_Out.session_key == active.session_key)
                                 & (_Out.agent_id == active.agent_id)))
                 .where(active.status == "active"))
        if written_only:
            query = query.join(SessionSummary, on=(SessionSummary.id == _Out.id))
        return query
