"""Retention: deleting what nitejar only ever adds to.

Messages: nitejar keeps every message for ever. Once compaction has written a
conversation's summary, its older messages are what the summary stands for:
a message is *covered* when it belongs to a COMPLETED job (the messages
compaction reads) and a summary of the same session key and agent ends at or
after it (`end_time` ≥ its `created_at`). `prune_messages` deletes the covered
messages older than a cutoff, and never the others unless told to
(`include_uncompacted`) — even then never those of a job still PENDING or
RUNNING. Batched by key range like every bulk change (db.batches).

Work items: `finished_work_items` selects, as the root of a foreign-key
cascade (maintenance.cascade), the work items of some finished statuses last
updated before a cutoff whose jobs have all finished; the cascade deletes
with them their jobs, messages, idempotency keys and whatever else the
database's keys tie to them, and previews exactly that.
"""

from __future__ import annotations

from peewee import SQL, fn

from nitejarctl.db.batches import Bulk
from nitejarctl.db.changed_rows import Change
from nitejarctl.errors import SchemaProblem
from nitejarctl.models import Job, Message, SessionSummary, WorkItem

MESSAGE_COLUMNS = ("id", "job_id", "role", "created_at")
LIVE_JOBS = ("PENDING", "RUNNING")
FINISHED_JOBS = ("COMPLETED", "FAILED", "CANCELLED")
NEW_WORK_ITEM = "NEW"  # not yet taken up: never "finished"
TABLES = ("messages", "jobs", "work_items", "session_summaries")


def _covered():
    summary = ((SessionSummary.session_key == WorkItem.session_key) & (SessionSummary.agent_id == Job.agent_id)
               & (SessionSummary.end_time >= Message.created_at))
    return fn.EXISTS(Job.select(SQL("1"))
                     .join(WorkItem, on=(WorkItem.id == Job.work_item_id))
                     .join(SessionSummary, on=summary)
                     .where((Job.id == Message.job_id) & (Job.status == "COMPLETED")))


def _not_live():
    return ~fn.EXISTS(Job.select(SQL("1")).where((Job.id == Message.job_id) & Job.status.in_(LIVE_JOBS)))


def prunable(cutoff: int, *, include_uncompacted: bool = False):
    """The messages older than `cutoff` that a prune deletes."""
    old = Message.created_at < cutoff
    return old & (_not_live() if include_uncompacted else _covered())


def count_prunable(db, cutoff: int, *, include_uncompacted: bool = False) -> int:
    for table in TABLES:
        db.require_table(table)
    return Message.select().where(prunable(cutoff, include_uncompacted=include_uncompacted)).count()


def prune_messages(db, cutoff: int, bulk: Bulk, *, include_uncompacted: bool = False) -> int:
    """Delete the messages `prunable` selects; the sink gets MESSAGE_COLUMNS of each."""
    for table in TABLES:
        db.require_table(table)
    referring = sorted(fk.name for fk in db.foreign_keys() if fk.parent == "messages" and db.has_table(fk.child))
    if referring:
        # Nothing in nitejar's schemas refers to a message; a schema that does would
        # have rows deleted or refused with them that no preview of messages names.
        raise SchemaProblem(f"{', '.join(referring)} refer(s) to messages: deleting messages would change "
                            "those rows too, which this prune does not preview; nothing was deleted")
    where = prunable(cutoff, include_uncompacted=include_uncompacted)
    return bulk.apply(db, Change(Message, where, columns=[Message.id, Message.job_id, Message.role,
                                                          Message.created_at]))


def finished_work_items(db, statuses, cutoff: int):
    """The cascade root (a condition on `t`, an instance of work_items): a
    status among `statuses`, updated_at before `cutoff`, and no job that is
    not COMPLETED, FAILED or CANCELLED (a NULL or unknown status counts as
    unfinished)."""
    from nitejarctl.db import foreign_keys as fks

    for table in ("work_items", "jobs"):
        db.require_table(table)

    def where(t):
        jobs = fks.table(db, "jobs")
        unfinished = jobs.select(SQL("1")).where(
            (jobs.c.work_item_id == t.c.id) & (jobs.c.status.is_null() | jobs.c.status.not_in(FINISHED_JOBS)))
        return t.c.status.in_(list(statuses)) & (t.c.updated_at < cutoff) & ~fn.EXISTS(unfinished)

    return where
