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
   Where the database has a reader beside the change's own connection
   (db.side_reader: SQLite in WAL mode) and no summarizer runs, that reader
   reads each batch — its keys listed in the query — one batch ahead, in a
   thread of its own, while this one turns the previous batch's rows into
   summaries and writes them (maintenance.conversations): each batch is then
   its `batch_size` conversations.
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
   pending summary. On SQLite in WAL mode the checkpoints run beside the
   writes, as a bulk change's do (db.checkpoints), not in the commits.

A SIGKILL at any moment therefore leaves every batch either fully committed
(summaries and closed sessions) or not at all, never a duplicate, and a rerun
finds what is left still idle and un-compacted. `end_time` is the newest
message time (and `start_time` the oldest), which is exactly what "compacted"
is measured against, so a second run writes nothing.
"""

from __future__ import annotations

import contextlib
import time
import uuid

import peewee as pw
from peewee import fn

from nitejarctl import signals
from nitejarctl.db import now as db_now
from nitejarctl.maintenance import conversations, staging
from nitejarctl.maintenance.staging import Key
from nitejarctl.maintenance.summarizer import (
    DEFAULT_SUMMARIZER_TIMEOUT,
    SummarizerFailed,
    run_summarizer,
    summarizer_environment,
)
from nitejarctl.maintenance.turns import (
    SKIP_ALREADY,
    SKIP_DISABLED,
    SKIP_NO_TURN,
    SKIP_NOT_IDLE,
    Conversation,
    Outcome,
    compaction_disabled,
    default_summary,
)
from nitejarctl.models import Agent, SpriteSession
from nitejarctl.repositories import messages

BATCH_CONVERSATIONS = 200
BATCH_SECONDS = 0.2
TRANSCRIPT_BUDGET = 8_000_000  # characters of transcripts one batch may hold

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
        self._pending: list[Outcome] = []
        self._pending_since = 0.0
        self._ready: list[Outcome] = []  # outcomes written (or skipped) and not yet yielded
        self._reader = None  # db.side_reader, when the database has one
        self._pipeline = None  # the batches it reads, while outcomes() runs
        self._session = contextlib.ExitStack()  # the database's bulk session, while writing
        self._writes = None  # its session (committed(seconds) after each write transaction)

    # -- lifecycle

    def __enter__(self):
        staging.create(self.db)
        try:
            self._fill_keys()
            # Without a summarizer the reading is what takes the time: beside the
            # connection that writes, one batch ahead (maintenance.conversations).
            self._reader = None if self.summarizer else self.db.side_reader()
            if not self.dry_run:
                # Checkpoints beside the writes, as for a bulk change (SQLite in WAL
                # mode), not by the commit that passes 1000 pages; the page cache
                # stays as it is (memory flat in the number of conversations).
                self._writes = self._session.enter_context(self.db.bulk_session(cache=False))
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
        reader, self._reader = self._reader, None
        try:
            if reader is not None:
                reader.close()
            staging.drop(self.db)
        finally:
            self._writes = None
            self._session.close()

    def _fill_keys(self) -> None:
        idle = messages.idle_conversations_query(cutoff=self.cutoff, session_key=self.session_key,
                                                 agent_id=self.agent_id).order_by().alias("idle")
        numbered = (pw.Select([idle], [
            fn.ROW_NUMBER().over(order_by=[idle.c.session_key, idle.c.agent_id]),
            idle.c.session_key, idle.c.agent_id, idle.c.last_message_at]))
        Key.insert_from(numbered, fields=[Key.seq, Key.session_key, Key.agent_id,
                                           Key.last_message_at]).execute()
        disabled = self._disabled_agents()
        for start in range(0, len(disabled), 500):
            Key.update(enabled=0).where(Key.agent_id.in_(disabled[start:start + 500])).execute()
        self.db.analyze_temporary(Key._meta.table_name)
        self.total = Key.select().count()

    def _disabled_agents(self) -> list[str]:
        query = Agent.select(Agent.id, Agent.config).where(Agent.config.contains("compaction"))
        if self.agent_id is not None:
            query = query.where(Agent.id == self.agent_id)
        return [row["id"] for row in self.db.stream(query)
                if compaction_disabled(row["config"])]

    # -- the pass

    def outcomes(self):
        for row in self.db.stream(Key.select(Key.session_key, Key.agent_id)
                          .where(Key.enabled == 0).order_by(Key.seq)):
            yield self._count(Outcome("skipped", row["session_key"], row["agent_id"], reason=SKIP_DISABLED))
        last = Key.select(fn.MAX(Key.seq)).where(Key.enabled == 1).scalar() or 0
        if self._reader is not None:
            self._pipeline = conversations.Pipeline(self.db, self._reader, last, self.batch_size)
        try:
            yield from self._batches(last)
        finally:
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None

    def _batches(self, last: int):
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

    def _conversations(self, chunks, wanted: int | None):
        """The batch's finished conversations (skip Outcomes and
        Conversations) from its rows, and the number of the last one when
        `wanted` Conversations came before the batch's end (else None)."""
        items: list = []
        current = None
        ready = 0
        for chunk in chunks:
            for seq, session_key, agent_id, role, content, created_at in chunk:
                if current is None or seq != current.seq:
                    if current is not None:
                        items.append(item := self._finish(current))
                        if isinstance(item, Conversation):
                            ready += 1
                            if wanted is not None and ready >= wanted:
                                return items, current.seq
                    current = Conversation(seq, session_key, agent_id)
                current.add(role, content, created_at)
        if current is not None:
            items.append(self._finish(current))
        return items, None

    def _read_batch(self, after: int):
        """Read the conversations after seq `after` (at most batch_size; fewer
        when time, the transcript budget or --limit says stop) and return
        (items, seq of the last conversation read). Items are skip Outcomes and
        finished Conversations. The cursor is closed when this returns."""
        if self._pipeline is not None:  # read beside, a batch ahead: the next one is this one
            upto, chunks = self._pipeline.next(after)
            wanted = None if self.limit is None else self.limit - self.counts["compacted"] - len(self._pending)
            try:
                items, stopped_at = self._conversations(chunks, wanted)
            finally:
                chunks.close()
            return items, upto if stopped_at is None else stopped_at
        upto = after + self.batch_size
        wanted = None if self.limit is None else self.limit - self.counts["compacted"] - len(self._pending)
        started = time.monotonic()
        items: list = []
        ready = held = 0
        current = None
        rows = self.db.stream(conversations.messages_query(self.db, after, upto))
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
            env = summarizer_environment(NITEJAR_SESSION_KEY=conv.session_key,
                                         NITEJAR_AGENT_ID=conv.agent_id)
            try:
                outcome.summary = run_summarizer(self.summarizer, conv.transcript_text(),
                                                 timeout=self.summarizer_timeout, env=env)
            except SummarizerFailed as exc:
                outcome.status, outcome.reason, outcome.id = "failed", str(exc), None
        return outcome

    # -- writing

    def _flush(self):
        """Write the pending summaries (one transaction) and yield their outcomes."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        if self.dry_run:
            self._would_write(pending)
        else:
            # The outcomes of a committed batch are ready before an interrupt
            # can take effect: `ready()` hands them over even then.
            with signals.deferred():
                self._write(pending)
        yield from self.ready()

    def ready(self):
        """The outcomes of the batches committed so far that were not yielded yet."""
        while self._ready:
            yield self._count(self._ready.pop(0))

    def _would_write(self, pending: list[Outcome]) -> None:
        now = db_now()
        if not self.keep_sprites:
            staging.stage(self.db, pending)
            try:
                self.closed_sessions += staging.sessions_to_close(written_only=False).count()
            finally:
                staging.clear()
        for outcome in pending:
            outcome.compacted_at = now
        self._ready += pending

    def _write(self, pending: list[Outcome]) -> None:
        started = time.monotonic()
        with self.db.atomic():
            self.db.serialise_writes()
            # The time once the lock is ours: a session nitejar touched while this
            # transaction waited for it is never closed with an older last_active_at.
            now = db_now()
            staging.stage(self.db, pending)
            inserted = staging.insert_summaries(self.db, now)
            closed = 0
            if not self.keep_sprites:
                closing = SpriteSession.id.in_(staging.sessions_to_close(written_only=True))
                # locked in the order a concurrent bulk change locks them; on PostgreSQL
                # nitejar may touch one until it is locked: the time is taken then
                closed = self.db.update_in_order(
                    SpriteSession, closing, lambda: {"status": "closed", "last_active_at": max(now, db_now())})
            staging.clear()
        if self._writes is not None:
            self._writes.committed(time.monotonic() - started)
            self._writes.between()
        self.closed_sessions += closed
        for outcome in pending:
            if outcome.id in inserted:
                outcome.compacted_at = now
                self._ready.append(outcome)
            else:
                self._ready.append(Outcome("skipped", outcome.session_key, outcome.agent_id,
                                           turn_count=outcome.turn_count, reason=SKIP_ALREADY))
