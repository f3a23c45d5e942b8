"""Rows a bulk change reported, kept until the change is over.

A bulk change commits in many short transactions and reports every row it
changed on stdout. Writing them to stdout batch by batch would let a slow
reader (`| less`, a stalled pipe, `| head` that went away) hold up the change;
keeping them in memory would grow with the change. So the change hands each
committed batch's rows (tuples, in `fields` order) to `Spool.add`, which
writes them to a temporary file — in memory while small — and the command
prints that file once the change is over (or has been interrupted).

What the file holds depends on what will be printed: with a `writer` (a
formats.LineWriter: json, jsonl, csv, tsv, ids) the formatted lines, which
`write_to` then copies out; otherwise the rows themselves (marshal), read
back by `rows()` — with `keep`, only the first `keep` rows (a table shows the
first ones), the others being counted only.
"""

from __future__ import annotations

import codecs
import marshal
import shutil
import struct
import tempfile
from collections.abc import Iterator, Sequence

MEMORY_LIMIT = 8 << 20  # bytes kept in memory before the spool moves to a file
CHUNK = 5000  # rows formatted at a time
_LENGTH = struct.Struct("<Q")  # each batch of rows: its length, then the rows (marshal)


class Spool:
    def __init__(self, fields: Sequence[str], *, writer=None, keep: int | None = None,
                 memory_limit: int = MEMORY_LIMIT):
        self.fields = tuple(fields)
        self.writer = writer
        self.keep = keep
        self.count = 0  # rows added so far
        self._kept = 0
        self._file = tempfile.SpooledTemporaryFile(max_size=memory_limit)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.count

    @property
    def on_disk(self) -> bool:
        """Whether the rows outgrew memory and went to a temporary file."""
        return self._file._rolled

    @property
    def text_columns(self) -> list[str] | None:
        """The columns the spool keeps as TSV lines (tsv and ids), else None:
        `add()` then also takes their lines, formatted (an object with `tsv`,
        UTF-8 bytes, and `count`)."""
        return self.writer.text_columns if self.writer is not None else None

    def add(self, rows: Sequence[tuple]) -> None:
        """Keep `rows` (tuples in `fields` order): a sink for db.batches."""
        tsv = getattr(rows, "tsv", None)
        if tsv is not None:
            self.count += rows.count
            self.writer.count += rows.count
            self._file.write(tsv)
            return
        for start in range(0, len(rows), CHUNK):
            self._add(rows[start:start + CHUNK])

    def _add(self, rows: Sequence[tuple]) -> None:
        self.count += len(rows)
        if self.writer is not None:
            self._file.write(self.writer.lines(rows).encode("utf-8"))
            return
        if self.keep is not None:
            rows = rows[:max(0, self.keep - self._kept)]
            if not rows:
                return
            self._kept += len(rows)
        data = marshal.dumps(list(rows))
        self._file.write(_LENGTH.pack(len(data)) + data)

    def rows(self) -> Iterator[tuple]:
        """The rows kept (the first `keep` ones), as tuples in `fields` order,
        in the order added. Not with a writer."""
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
        fields = self.fields
        for row in self.rows():
            yield dict(zip(fields, row))

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
