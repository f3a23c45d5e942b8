"""Bulk writes in short transactions, batched by key range.

nitejar's own writers wait at most 5 s for SQLite's write lock, so a bulk
change never holds it for long: each batch finds the upper key of the next
`size` matching rows and applies one set-based statement to the key range
(last, upper], in its own write transaction. On SQLite the key is the rowid
(every index ends with it, so the scan for the next range seeks instead of
rescanning); on PostgreSQL the primary key. The batch size adapts so that each
transaction takes about TARGET_SECONDS: small enough for nitejar's writers,
large enough that per-commit costs do not dominate a million-row change.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from peewee import SQL, fn

from nitejarctl.db import dialect

DEFAULT_BATCH = 5000
MIN_BATCH = 500
MAX_BATCH = 200_000
TARGET_SECONDS = 0.25


def batch_key(db, model):
    return SQL("rowid") if dialect(db) == "sqlite" else model._meta.primary_key


def in_batches(db, model, where, apply: Callable[[object], int], *,
               batch_size: int = DEFAULT_BATCH) -> int:
    """Call `apply(condition)` once per batch, where `condition` is `where`
    restricted to the batch's key range, each call in its own write
    transaction. `apply` runs one set-based statement and returns the rows it
    changed. Returns the total."""
    key = batch_key(db, model)
    total = 0
    last = None
    size = batch_size
    while True:
        started = time.monotonic()
        with db.atomic():
            keys = model.select(key.alias("k")).where(where)
            if last is not None:
                keys = keys.where(key > last)
            keys = keys.order_by(key).limit(size)
            upper = model.select(fn.MAX(SQL("k"))).from_(keys.alias("batch")).scalar()
            if upper is None:
                return total
            condition = where & (key <= upper)
            if last is not None:
                condition = condition & (key > last)
            total += apply(condition)
        last = upper
        size = _next_size(size, time.monotonic() - started)


def _next_size(size: int, seconds: float) -> int:
    if seconds < TARGET_SECONDS / 2:
        return min(MAX_BATCH, size * 2)
    if seconds > TARGET_SECONDS * 2:
        return max(MIN_BATCH, size // 2)
    return size
