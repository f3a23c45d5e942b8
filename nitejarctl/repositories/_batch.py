"""Bulk writes in short transactions, batched by key range.

nitejar's own writers wait at most 5 s for SQLite's write lock, so a bulk
change never holds it for long: each batch selects the next keys in key order
and applies one set-based statement to them, in its own write transaction.
On SQLite the key is the rowid (the indexes end with it, so the batch scan
seeks rather than rescans); on PostgreSQL the primary key.
"""

from __future__ import annotations

from collections.abc import Callable

from peewee import SQL

from nitejarctl.db import dialect

DEFAULT_BATCH = 5000


def batch_key(db, model):
    return SQL("rowid") if dialect(db) == "sqlite" else model._meta.primary_key


def in_batches(db, model, where, apply: Callable[[object], int], *,
               batch_size: int = DEFAULT_BATCH) -> int:
    """Call `apply(condition)` once per batch, where `condition` is `where`
    restricted to the batch's keys, each call in its own write transaction.
    `apply` runs one set-based statement and returns the rows it changed.
    Returns the total."""
    key = batch_key(db, model)
    total = 0
    last = None
    while True:
        with db.atomic():
            query = model.select(key).where(where)
            if last is not None:
                query = query.where(key > last)
            keys = [k for (k,) in query.order_by(key).limit(batch_size).tuples()]
            if not keys:
                return total
            total += apply(where & key.in_(keys))
        last = keys[-1]
