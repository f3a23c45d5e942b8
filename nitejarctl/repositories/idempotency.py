"""Idempotency keys — nitejar's idempotency repository, plus pruning.

nitejar records one key per delivered webhook event to drop duplicates; it
never deletes them. Old keys are only useful while a sender may still retry,
so `prune` deletes those created before a cutoff, in short batches.
"""

from __future__ import annotations

from peewee import SQL

from nitejarctl.db.batches import Bulk
from nitejarctl.db.changed_rows import Change
from nitejarctl.models import IdempotencyKey as K

COLUMNS = ("key", "work_item_id", "created_at")


def _condition(cutoff: int | None):
    return K.created_at < cutoff if cutoff is not None else SQL("1 = 1")


def list_query(db, *, cutoff: int | None = None):
    """Keys (created before `cutoff` when given), oldest first: a query to stream."""
    db.require_table(K._meta.table_name)
    return (K.select(K.key, K.work_item_id, K.created_at).where(_condition(cutoff))
            .order_by(K.created_at, K.key))


def count(db, *, cutoff: int | None = None) -> int:
    db.require_table(K._meta.table_name)
    return K.select().where(_condition(cutoff)).count()


def prune(db, cutoff: int, bulk: Bulk) -> int:
    """Delete keys created before `cutoff`: one set-based DELETE per key-range
    batch, each in its own short transaction; the sink gets them (COLUMNS)."""
    db.require_table(K._meta.table_name)
    return bulk.apply(db, Change(K, K.created_at < cutoff, columns=[K.key, K.work_item_id, K.created_at]))
