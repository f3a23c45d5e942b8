"""PostgreSQL: a batch's changed rows as TSV text the server writes.

Where a bulk change's rows go straight to TSV (or `-o ids`) output and every
printed column is text or an integer, the batch's statement runs as `COPY
(UPDATE/DELETE … RETURNING the printed columns) TO STDOUT`: the server
formats the rows, and nothing is built row by row in Python (a million rows
cost no more than their bytes). COPY's text format is nitejarctl's TSV —
tabs, newlines, carriage returns and backslashes escaped, NULL empty — but
for three control characters it also escapes (backspace, form feed, vertical
tab), which are put back as they are, as nitejarctl's TSV writes them.
"""

from __future__ import annotations

import io
import re
import time

import peewee as pw

from nitejarctl.db.changed_rows import Returning

# The live column types whose text COPY writes as Python's str() would.
PLAIN_TYPES = ("text", "integer", "bigint", "smallint", "character varying")
_EXTRA_ESCAPES = re.compile(rb"\\(.)", re.DOTALL)
_PUT_BACK_NEEDED = re.compile(rb"\\[bfv]")
_PUT_BACK = {b"b": b"\x08", b"f": b"\x0c", b"v": b"\x0b"}
COPY = "COPY ({}) TO STDOUT WITH (NULL '')"


class TextRows:
    """A batch's rows as formatted lines (`tsv`, UTF-8), and how many."""

    __slots__ = ("tsv", "count")

    def __init__(self, tsv: bytes, count: int):
        self.tsv, self.count = tsv, count


def columns_for(db, change, names) -> list | None:
    """The change's reported columns named `names`, in that order, when each is
    a plain column of the changed table holding text or integers; else None."""
    if not names or db.connection().encoding != "UTF8":
        return None
    by_name = {}
    for column in change.columns:
        if isinstance(column, pw.Field) and column.model is change.model:
            by_name[column.name] = column
    if not all(name in by_name for name in names):
        return None
    types = db.live_column_types(change.model._meta.table_name)
    if not all(types.get(by_name[name].column_name, "").startswith(PLAIN_TYPES) for name in names):
        return None
    return [by_name[name] for name in names]


class CopiedText(Returning):
    """`apply(batch)` returns how many rows changed and a callable yielding one
    TextRows of them once the batch has committed."""

    def __init__(self, db, change, columns: list):
        super().__init__(db, change)
        self.columns = columns

    def apply(self, batch):
        db = self.db
        sql, params = self.change.statement(batch).returning(*self.columns).sql()
        cursor = db.cursor()
        buffer = io.BytesIO()  # one batch's rows, at most the batching's largest
        started = time.perf_counter()
        try:
            with pw.__exception_wrapper__:
                statement = cursor.mogrify(sql, params).decode("utf-8")
                cursor.copy_expert(COPY.format(statement), buffer)
            changed = cursor.rowcount
        finally:
            cursor.close()
            if db.trace is not None:
                db.trace(COPY.format(sql), params, time.perf_counter() - started)
        text = buffer.getvalue()
        # A batch is megabytes: one look for a backslash (memchr) tells most
        # batches apart, and one regular expression the rest.
        if b"\\" in text and _PUT_BACK_NEEDED.search(text):
            text = _EXTRA_ESCAPES.sub(lambda m: _PUT_BACK.get(m.group(1), m.group(0)), text)
        rows = TextRows(text, changed)
        return changed, lambda: _handed(rows)


def _handed(rows: TextRows):
    yield rows
