"""Idempotency keys — nitejar's idempotency repository, plus pruning.

nitejar records one key per delivered webhook event to drop duplicates; it
never deletes them. Old keys are only useful while a sender may still retry,
so `prune` deletes those created before a cutoff, in short batches.
"""

from __future__ import annotations

from peewee import SQL

from nitejarctl.db import require_table
from nitejarctl.models import IdempotencyKey as K
from nitejarctl.repositories._batch import batch_key, change_in_batches

COLUMNS = ("key", "work_item_id", "created_at")


def _condition(cutoff: int | None):
    return K.created_at < cutoff if cutoff is not None else SQL("1 = 1")


def list_query(db, *, cutoff: int | None = None, limit: int | None = None):
    """Keys (created before `cutoff` when given), oldest first: a query to stream."""
    require_table(db, K._meta.table_name)
    query = (K.select(K.key, K.work_item_id, K.created_at).where(_condition(cutoff))
             .order_by(K.created_at, K.key))
    return query.limit(limit) if limit is not None else query


def prune_preview(db, cutoff: int):
    """The keys prune would delete, in the order it deletes them."""
    require_table(db, K._meta.table_name)
    return (K.select(K.key, K.work_item_id, K.created_at).where(_condition(cutoff))
            .order_by(batch_key(db, K)))


def count(db, *, cutoff: int | None = None) -> int:
    require_table(db, K._meta.table_name)
    return K.select().where(_condition(cutoff)).count()


def prune(db, cutoff: int, spool=None, *, progress=None) -> int:
    """Delete keys created before `cutoff`: one set-based DELETE per key-range
    batch, each in its own short transaction. The deleted rows (COLUMNS) go
    to `spool`; `progress(done)` follows the commits."""
    require_table(db, K._meta.table_name)
    return change_in_batches(db, K, K.created_at < cutoff, None, columns=[K.key, K.work_item_id, K.created_at],
                             sink=None if spool is None else spool.add, progress=progress)
