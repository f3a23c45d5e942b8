"""Rows a bulk change wrote, kept until the change is over.

A bulk change commits in many short transactions and reports every row it
changed on stdout (SPEC §2.2). Writing them to stdout batch by batch would
hold the write lock while a slow reader (`| less`, a stalled pipe, `| head`
that went away) takes them; keeping them in memory would grow with the
change. So each batch hands its rows (tuples, in `columns` order) to a
`Spool` inside its transaction; once the transaction has committed
(peewee's after_commit), the spool writes them to a temporary file — in
memory while small — and the command prints that file when every batch is
over.

What the file holds depends on what will be printed: with a `writer` (an
output.LineWriter: json, jsonl, csv, tsv, ids) the formatted lines, which
`write_to` then copies out; otherwise the rows themselves (marshal), read
back by `rows()` / `dicts()` — with `keep`, only the first `keep` rows (a
table shows the first ones), the others being counted only. Lines are
formatted as the rows are added, while the batch's change may still be
running in another thread (repositories._batch), and kept in memory until
the commit.

Given the database, the spool reports only what committed: the rows of a
transaction that rolled back are dropped. Without a database (or outside a
transaction) rows count at once.
"""

from __future__ import annotations

import codecs
import marshal
import shutil
import struct
import tempfile
from collections.abc import Iterator, Sequence

MEMORY_LIMIT = 8 << 20  # bytes kept in memory before the spool moves to a file
_LENGTH = struct.Struct("<Q")  # each batch of rows: its length, then the rows (marshal)


class Spool:
    def __init__(self, columns: Sequence[str], db=None, *, writer=None, keep: int | None = None):
        self.columns = tuple(columns)
        self.writer = writer
        self.keep = keep
        self.count = 0  # rows committed so far
        self._db = db
        self._kept = 0
        self._file = tempfile.SpooledTemporaryFile(max_size=MEMORY_LIMIT)
        self._pending: list[list] = []  # batches added in the open transaction
        self._transaction = None  # that transaction

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.count

    def add(self, rows: Sequence[tuple]) -> None:
        """Take `rows` (tuples in `columns` order), added inside a write
        transaction: with a writer they are formatted at once, and the text
        kept until the commit (dropped if the transaction rolls back)."""
        if not rows:
            return
        transaction = self._db.top_transaction() if self._db is not None else None
        if self._pending and transaction is not self._transaction:
            self._pending = []  # left over by a transaction that rolled back
        if self.writer is not None:
            first = self.count == 0 and not self._pending
            self._pending.append((len(rows), self.writer.text(rows, first=first).encode("utf-8")))
        else:
            self._pending.append((len(rows), rows))
        if transaction is None:
            self._commit()
        elif self._transaction is not transaction:
            self._transaction = transaction
            self._db.after_commit(self._commit)

    def _commit(self) -> None:
        pending, self._pending, self._transaction = self._pending, [], None
        file = self._file
        for n, rows in pending:
            self.count += n
            if self.writer is not None:
                file.write(rows)  # their text
                self.writer.count += n
                continue
            if self.keep is not None:
                rows = rows[:max(0, self.keep - self._kept)]
                if not rows:
                    continue
                self._kept += len(rows)
            data = marshal.dumps(rows if type(rows) is list else list(rows))
            file.write(_LENGTH.pack(len(data)))
            file.write(data)

    def rows(self) -> Iterator[tuple]:
        """The committed rows (the first `keep` ones), as tuples in `columns`
        order, in the order added. Not with a writer."""
        if self.writer is not None:
            raise TypeError("this spool holds formatted lines, not rows")
        file, size = self._file, _LENGTH.size
        end = file.seek(0, 2)
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

    def write_to(self, out) -> int:
        """With a writer: print the formatted rows to the text stream `out`,
        with the format's header and footer. Returns how many rows."""
        out.write(self.writer.header())
        out.flush()
        self._file.seek(0)
        binary = getattr(out, "buffer", None)
        if binary is None or str(getattr(out, "encoding", "")).lower().replace("-", "") != "utf8":
            binary = _TextSink(out)  # through the text layer: its own encoding and errors
        shutil.copyfileobj(self._file, binary, 1 << 20)
        binary.flush()
        out.write(self.writer.footer())
        out.flush()
        return self.count

    def close(self) -> None:
        self._file.close()


def for_format(fields: Sequence[str], columns, fmt: str, db=None, *, id_field: str = "id",
               keep: int | None = None) -> Spool:
    """A spool for rows (tuples of `fields`) that will be printed as `columns`
    in `fmt`: their lines for a machine format, the first `keep` rows for a
    table."""
    if fmt == "table":
        return Spool(fields, db, keep=keep)
    from nitejarctl.output import LineWriter

    return Spool(fields, db, writer=LineWriter(columns, fmt, id_field=id_field, fields=fields))


class _TextSink:
    """UTF-8 bytes written to a text stream (one without a binary buffer, or
    with another encoding)."""

    def __init__(self, out):
        self.out = out
        self.decode = codecs.getincrementaldecoder("utf-8")().decode

    def write(self, data: bytes) -> int:
        return self.out.write(self.decode(data))

    def flush(self) -> None:
        self.out.flush()
