"""Reading the conversations compaction compacts, batch by batch
(maintenance.compaction).

A batch is a range of the keys' numbers (staging.Key.seq). Its messages —
those of the conversations' COMPLETED jobs, in history order — come from one
query: on the change's own connection joined with the temporary keys
(`messages_query`), or, where the database has a reader beside the change's
connection (db.side_reader: SQLite in WAL mode), with the batch's keys in
the query itself (`listed_messages_query`: a temporary table is its own
connection's only). The reader reads the next batch while the change works
on this one and writes it (`Pipeline`).
"""

from __future__ import annotations

import peewee as pw
from peewee import Case

from nitejarctl.maintenance.staging import Key
from nitejarctl.maintenance.turns import SKIPPED_ROLES
from nitejarctl.models import Job, Message, WorkItem

FIELDS = ("seq", "session_key", "agent_id", "role", "content", "created_at")


def _content():
    # Only the roles that take part in turns need their text.
    return Case(None, [(Message.role.not_in(SKIPPED_ROLES), Message.content)], None).alias("content")


def messages_query(db, after: int, upto: int):
    """The messages of the keys numbered (after, upto], as rows of FIELDS."""
    # Reach jobs through the conversation's work items, not idx_jobs_agent.
    job_agent = db.unindexed(Job.agent_id)
    return (Key
            .select(Key.seq, Key.session_key, Key.agent_id, Message.role, _content(), Message.created_at)
            .join(WorkItem, on=(WorkItem.session_key == Key.session_key))
            .join(Job, on=((Job.work_item_id == WorkItem.id) & (job_agent == Key.agent_id)))
            .join(Message, on=(Message.job_id == Job.id))
            .where((Key.seq > after) & (Key.seq <= upto) & (Key.enabled == 1) & (Job.status == "COMPLETED"))
            .order_by(Key.seq, Job.created_at, Message.created_at, Message.id))


def listed_messages_query(db, keys: list[tuple]):
    """The messages of `keys` ((seq, session_key, agent_id) tuples), as rows of FIELDS."""
    k = pw.ValuesList(keys).cte("nitejarctl_keys", columns=("seq", "session_key", "agent_id"))
    # From the keys to their work items, jobs and messages, each through its
    # index: without statistics SQLite would rather walk every message and look
    # its job, work item and key up, unless those lookups are ruled out.
    u = db.unindexed
    return (WorkItem
            .select(k.c.seq, k.c.session_key, k.c.agent_id, Message.role, _content(), Message.created_at)
            .from_(k)
            .join(WorkItem, on=(WorkItem.session_key == u(k.c.session_key)))
            .join(Job, on=((Job.work_item_id == u(WorkItem.id)) & (u(Job.agent_id) == u(k.c.agent_id))))
            .join(Message, on=(Message.job_id == u(Job.id)))
            .where(Job.status == "COMPLETED")
            .order_by(k.c.seq, Job.created_at, Message.created_at, Message.id)
            .with_cte(k))


def batch_keys(after: int, upto: int) -> list[tuple]:
    return list(Key.select(Key.seq, Key.session_key, Key.agent_id)
                .where((Key.seq > after) & (Key.seq <= upto) & (Key.enabled == 1))
                .order_by(Key.seq).tuples())


class Pipeline:
    """The batches of keys numbered up to `last`, `size` at a time, read by
    `reader` one batch ahead. `next(after)` returns the batch after number
    `after` — (its last number, its Rows: chunks of FIELDS tuples) — and has
    the reader read the one after it meanwhile. Two batches are under way at
    most (the one being taken and the next)."""

    def __init__(self, db, reader, last: int, size: int):
        self.db, self.reader, self.last, self.size = db, reader, last, size
        self._queued: list = []  # (after, upto, Rows) in order: the keys numbered (after, upto]
        self._after = 0  # where the next batch to queue starts

    def _queue(self) -> None:
        start = self._after  # the batch holds the keys after it (ranges without any skipped)
        while self._after < self.last:
            after, upto = self._after, min(self._after + self.size, self.last)
            self._after = upto
            keys = batch_keys(after, upto)
            if keys:
                self._queued.append((start, upto, self.reader.read(listed_messages_query(self.db, keys))))
                return

    def next(self, after: int):
        # The batch read ahead is the next one only if the last one was taken
        # to its end; one taken half-way (--limit) resumes where it stopped.
        if self._queued and self._queued[0][0] != after:
            self.close()
        if not self._queued:
            self._after = after
            self._queue()
        if not self._queued:
            return self.last, _Nothing()
        _, upto, rows = self._queued.pop(0)
        self._queue()  # read while this one is taken
        return upto, rows

    def close(self) -> None:
        for _, _, rows in self._queued:
            rows.close()
        self._queued.clear()


class _Nothing(list):
    def close(self) -> None:
        pass
