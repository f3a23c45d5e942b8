"""How a bulk change is cut into batches: ranges of its table's batch key.

`KeyRanges` (SQLite, and PostgreSQL before 14): batches of `size` rows of the
change's scope in key order, the upper key of each found by a key scan. On
SQLite the key is the rowid, which every index ends with: the scan for the
next range seeks along the scope's index instead of rescanning it.

`PageRanges` (PostgreSQL 14 and later): ranges of the rows' physical
addresses (ctid), read by TID Range Scans. A primary key of random UUIDs
would scatter every key range over the whole heap, and a key scan in key
order would either walk the primary key index or sort every remaining row of
the scope for each batch; pages are what the table is made of, whatever its
keys look like, and one range of them is one short sequential read. The
pages are those the table had when the change began: rows that move or
arrive behind them meanwhile (a concurrent writer's) wait for the next run.
Where half the table or more is in scope, a batch is the window of pages
that hold about `size` rows, read once; where the scope is sparser, a key
scan first finds where its `size` rows end (see PageRanges).

Each `next()` runs inside the batch's transaction and returns the batch's
condition (None: nothing left); `measured(changed, seconds)` after its commit
sizes the next one so that its transaction takes about `batching.seconds`.
"""

from __future__ import annotations

from peewee import SQL, Expression, fn


def upper_key(model, key, scope, last, size: int):
    """The key of the `size`-th row in `scope` after `last` (or of the last
    one), and how many there are up to it."""
    keys = model.select(key.alias("k")).where(scope)
    if last is not None:
        keys = keys.where(key > last)
    keys = keys.order_by(key).limit(size)
    return model.select(fn.MAX(SQL("k")), fn.COUNT(SQL("*"))).from_(keys.alias("batch")).tuples().get()


class KeyRanges:
    def __init__(self, change, key, batching, size: int | None = None):
        self.change, self.key, self.batching = change, key, batching
        self.size = batching.first if size is None else size
        self.last = None  # the upper key of the last batch
        self.finished = False  # the last batch found fewer rows than its size: no more

    def next(self):
        upper, found = upper_key(self.change.scan, self.key, self.change.scope, self.last, self.size)
        if upper is None:
            return None
        key, last = self.key, self.last
        self.finished = found < self.size
        self.last = upper
        return key <= upper if last is None else (key > last) & (key <= upper)

    def measured(self, changed: int, seconds: float) -> None:
        self.size = self.batching.next_size(self.size, seconds)


class PageRanges:
    """Batches of `change.scan` by row address (see the module's docstring).
    Each batch's key scan reads the scope's rows in physical order from
    where the last batch ended, within a window of pages, and stops at the
    batch's size: the batch is the address range up to the last row it found
    (or, when the window holds fewer, the whole window). So a batch has at
    most `size` rows wherever they are dense, a sparse stretch of the table
    is read twice at most, and nothing is sorted. The
    size adapts to the time of batches that filled it, the window to the
    time of those that did not (a window with nothing in it costs one read
    of its pages)."""

    def __init__(self, db, change, batching):
        self.db, self.change, self.batching = db, change, batching
        self.key = db.batch_key(change.scan)
        self.end = db.table_pages(change.scan)  # the pages the table has now: the change's extent
        self.size = batching.first
        estimate = db.estimated_rows(change.scan.select(SQL("1")).where(change.scope))
        # The planner expects a few rows (half a first batch, or `batching.few`):
        # they are first looked for the planner's way (an index, usually), and
        # changed in one statement, not by reading every page.
        few = batching.few if batching.few is not None else self.size // 2
        self.few = estimate <= few
        self.few_limit = max(self.size, 2 * few)  # more found than this: the pages are read after all
        if estimate <= self.size:  # the planner expects one batch: one window over the table
            self.window = self.end
        else:  # pages for twice the batch's rows, as the planner expects them spread
            self.window = int(2 * self.size * self.end / estimate)
        self.window = min(max(1, self.window), max(1, self.end))
        # Half the table or more in scope: a window of the pages that hold
        # `size` rows at the table's density has about that many in scope
        # wherever they are, and no key scan needs to find where it ends.
        self.dense = False
        if not self.few:
            total = db.estimated_rows(change.scan.select(SQL("1")))
            self.per_page = max(1.0, total / max(1, self.end))
            self.dense = 2 * estimate >= total
        self.start = (0, 0)  # the first row address not yet covered
        self.filled = False  # whether the last batch stopped at its size
        self.finished = False

    def next(self):
        db, key = self.db, self.key
        if self.few:
            self.few = False
            batch = self._few()
            if batch is not False:
                return batch
        if self.start[0] >= self.end:
            return None
        if self.dense:
            self.window = max(1, int(self.size / self.per_page))
        upto = min(self.end, self.start[0] + self.window)
        low, high = db.row_address(*self.start), db.row_address(upto, 0)
        if self.dense:
            self.filled = True  # its size adapts, and the window with it
            self.start = (upto, 0)
            self.finished = upto >= self.end
            return (key >= low) & (key < high)
        # The address of the size-th row in the window, if it has that many
        # (OFFSET: no aggregate over the rows before it).
        upper = (self.change.scan.select(key).where(self.change.scope & (key >= low) & (key < high))
                 .offset(self.size - 1).limit(1).tuples().first())
        self.filled = upper is not None
        if self.filled:
            page, offset = db.parse_row_address(upper[0])
            self.start = (page, offset + 1)
            return (key >= low) & (key <= upper[0])
        self.start = (upto, 0)
        self.finished = upto >= self.end
        return (key >= low) & (key < high)

    def _few(self):
        """The batch of every row in scope, when there are fewer than a batch's
        size: None when there is none, else the rows' addresses (a Tid Scan);
        False when there are more (the pages are read range by range)."""
        scan, scope, key = self.change.scan, self.change.scope, self.key
        found = scan.select(SQL("1")).where(scope).limit(self.few_limit).count()
        if found >= self.few_limit:
            return False
        self.finished = True
        if not found:
            return None
        # In address order: the order every batch locks its rows in (no two changes deadlock).
        addresses = scan.select(key).where(scope).order_by(key).limit(self.few_limit)
        return Expression(key, "=", fn.ANY(fn.ARRAY(addresses)))

    def measured(self, changed: int, seconds: float) -> None:
        if self.filled:
            self.size = self.batching.next_size(self.size, seconds)
        else:
            self.window = max(1, int(self.window * self.batching.factor(seconds)))
