"""Rows a bulk change wrote, kept until the change is over.

A bulk change commits in many short transactions and reports every row it
changed on stdout (SPEC §2.2). Writing them to stdout batch by batch would
hold the write lock while a slow reader (`| less`, a stalled pipe) takes
them; keeping them in memory would grow with the change. So each batch hands
its rows (tuples, in `columns` order) to a `Spool` inside its transaction,
which appends them to a temporary file — in memory while small — at the cost
of a memcpy, and the command reads them back once every batch is over.

Given the database, the spool reports only what committed: rows added in a
transaction count once it commits (peewee's after_commit), and those of a
transaction that rolled back are dropped when the next rows come or when
the spool is read. Without a database every added row counts at once.
"""

from __future__ import annotations

import marshal
import struct
import tempfile
from collections.abc import Iterator, Sequence

MEMORY_LIMIT = 8 << 20  # bytes kept in memory before the spool moves to a file
_LENGTH = struct.Struct("<Q")  # each batch: its length, then its rows (marshal)


class Spool:
    def __init__(self, columns: Sequence[str], db=None):
        self.columns = tuple(columns)
        self.count = 0  # rows committed so far
        self._db = db
        self._file = tempfile.SpooledTemporaryFile(max_size=MEMORY_LIMIT)
        self._end = 0  # where the committed rows end in the file
        self._pending = 0  # rows added since, not committed yet
        self._transaction = None  # the transaction they were added in

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.count

    def add(self, rows: Sequence[tuple]) -> None:
        """Keep `rows` (a list of tuples). Quick: called inside a write transaction."""
        if not rows:
            return
        transaction = self._db.top_transaction() if self._db is not None else None
        if self._pending and transaction is not self._transaction:
            self._drop_pending()  # left over by a transaction that rolled back
        data = marshal.dumps(rows if type(rows) is list else list(rows))
        self._file.seek(0, 2)
        self._file.write(_LENGTH.pack(len(data)))
        self._file.write(data)
        self._pending += len(rows)
        if transaction is None:
            self._commit()
        elif self._transaction is not transaction:
            self._transaction = transaction
            self._db.after_commit(self._commit)

    def _commit(self) -> None:
        self._transaction = None
        self._end = self._file.seek(0, 2)
        self.count += self._pending
        self._pending = 0

    def _drop_pending(self) -> None:
        self._file.truncate(self._end)
        self._pending = 0

    def rows(self) -> Iterator[tuple]:
        """The committed rows, as tuples in `columns` order, in the order added."""
        if self._pending and (self._db is None or self._db.top_transaction() is not self._transaction):
            self._drop_pending()
        end, file, size = self._end, self._file, _LENGTH.size
        position = 0
        while position < end:
            file.seek(position)
            (length,) = _LENGTH.unpack(file.read(size))
            batch = marshal.loads(file.read(length))
            position += size + length
            yield from batch

    def dicts(self) -> Iterator[dict]:
        columns = self.columns
        for row in self.rows():
            yield dict(zip(columns, row))

    __iter__ = dicts

    def close(self) -> None:
        self._file.close()
