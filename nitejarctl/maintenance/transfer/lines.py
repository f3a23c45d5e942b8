"""A batch's COPY lines built by SQLite: the fast path of the copy.

SQLite concatenates each batch of rows into one blob in C, with control
bytes where COPY's text format has its separators (\\x01 after a value,
\\x02 after a row, \\x03 for NULL); Python then escapes the whole blob at
once (bytes.replace, in C too) and turns the markers into tabs, newlines and
`\\N`. The bytes that arrive are those rows.formatter writes for the same rows,
without a Python object per value; the blob as SQLite built it, before the
escapes, is what the rows' checksums are taken of (rows.formatter with
`hashed`).

Reals are the exception: SQLite's own text of a double is not always exact.
A table's real columns come last in its layout; SQLite builds each row's
line up to them and the Python formatter writes the reals (and the part of
the row their checksum is taken of).

Two things send a batch back to the value-by-value path (copying.py): a value
of a storage class its column does not take (a blob in a text column, text
in an integer column, …: counted in the same query), and a value that holds
one of the marker bytes itself (seen as a marker count that does not add up).
Values PostgreSQL refuses (invalid UTF-8, NUL, out of range) are sent as they
are and refused, as on the Python path.
"""

from __future__ import annotations

from nitejarctl.maintenance.transfer import rows as R
from nitejarctl.maintenance.transfer.rows import quote

_VALUE, _ROW, _NULL = b"\x01", b"\x02", b"\x03"
_ESCAPES = ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"))  # the backslash first
_SEPARATORS = bytes.maketrans(_VALUE + _ROW, b"\t\n")
REALS = (R.FLOAT, R.FLOAT4)

# The storage classes each kind of target column takes from SQLite (NULL aside).
_TAKES = {R.INT: ("integer",), R.TEXT: ("text",), R.BYTEA: ("blob",), R.FLOAT: ("integer", "real"),
          R.FLOAT4: ("integer", "real")}


class WrongClass(ValueError):
    """A value of a storage class its column does not take."""


class Builder:
    """How SQLite builds the batches of a table whose columns are `columns`
    (of target kinds `kinds`, reals last)."""

    def __init__(self, table, columns, kinds):
        self.plain = sum(k not in REALS for k in kinds)
        source = {c.name: c for c in table.columns}
        plain = [(quote(c), k, source[c].notnull) for c, k in zip(columns, kinds) if k not in REALS]
        reals = [quote(c) for c, k in zip(columns, kinds) if k in REALS]
        self.rowwise = bool(reals)  # the reals written by the Python formatter, row by row
        wrong = " + ".join(_wrong(quote(c), k, source[c]) for c, k in zip(columns, kinds))
        # NOT NULL is one constraint SQLite always enforces: only the others' NULLs are counted.
        counted = [quote(c) for c, k in zip(columns, kinds) if k not in REALS and not source[c].notnull]
        nulls = f"{len(counted)} * count(*) - ({' + '.join(f'count({c})' for c in counted)})" if counted else "0"
        # With reals, each line up to them (a separator after its last value),
        # and the rows' rowids in the same order (two aggregates of one query
        # see the rows in one order); the reals come from a second query in
        # rowid order, and the two are matched by rowid.
        line = (" || char(1) || ".join(_value(c, k, notnull) for c, k, notnull in plain) + (" || char(1)" if reals else "")
                + " || char(2)")
        self.sql = (f"SELECT max(rowid), count(*), {nulls}, total({wrong}), "
                    f"CAST(group_concat({line}, '') AS BLOB){', group_concat(rowid)' if reals else ''} "
                    f"FROM (SELECT rowid, {', '.join(quote(c) for c in columns)} FROM {quote(table.name)} "
                    "WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?)")
        if reals:
            self.tail = R.formatter(kinds[self.plain:])
            self.hashed_tail = R.formatter(kinds[self.plain:], hashed=True)
            self.reals_sql = (f"SELECT rowid, {', '.join(reals)} FROM {quote(table.name)} "
                              "WHERE rowid > ? AND rowid <= ? ORDER BY rowid")

    def batch(self, snapshot, after, upto: int, size: int):
        """(last rowid, rows, COPY data, what each row's checksum is taken of)
        of the rows after `after` up to `upto` (at most `size`); None when a
        value holds a marker byte; WrongClass."""
        upper, n, nulls, wrong, blob, *order = snapshot.execute(self.sql, (after, upto, size)).fetchone()
        if not n:
            return after, 0, b"", []
        if wrong:
            raise WrongClass()
        if not self.rowwise:
            data = finish(blob, n, nulls, n * (self.plain - 1))
            return None if data is None else (upper, n, data, blob.split(_ROW)[:n])
        prefixes = finish(blob, n, nulls, n * self.plain)
        rows = snapshot.execute(self.reals_sql, (after, upper)).fetchall()
        if prefixes is None or order[0] != ",".join([str(r[0]) for r in rows]):
            return None
        parts = [b""] * (2 * n)
        parts[0::2] = prefixes.split(b"\n")[:n]
        parts[1::2] = "".join(map(self.tail, rows)).encode().splitlines(keepends=True)
        tails = "\x02".join(map(self.hashed_tail, rows)).encode().split(_ROW)
        return upper, n, b"".join(parts), list(map(bytes.__add__, blob.split(_ROW), tails))


def supported(kinds) -> bool:
    """Whether SQLite can build the lines: any kinds, with at least one not a real."""
    return all(kind in _TAKES for kind in kinds) and any(kind not in REALS for kind in kinds)


def _wrong(c: str, kind: str, column) -> str:
    """1 where the value is of a storage class the column does not take."""
    if kind == R.TEXT and column.affinity == "text":  # which stores text, blobs and NULL only
        return f"(typeof({c}) = 'blob')"
    if kind == R.INT:
        # Cheaper than typeof(). Text, a blob or a fraction differs from its
        # integer; a real of integral value does not, but SQLite writes it
        # as `2.0`, which PostgreSQL refuses for an integer column (and the
        # value-by-value path then names it).
        return f"({c} IS NOT CAST({c} AS INTEGER))"
    return f"(typeof({c}) NOT IN ({', '.join(repr(t) for t in _TAKES[kind])}, 'null'))"


def _value(c: str, kind: str, notnull: bool) -> str:
    if kind == R.BYTEA:  # hex(NULL) is '', not NULL
        return f"CASE WHEN {c} IS NULL THEN char(3) ELSE '\\x' || lower(hex({c})) END"
    # A NULL where SQLite enforces NOT NULL cannot be; if it were, its row's
    # line would be NULL, left out by group_concat: a row count that does not
    # add up, which sends the batch to the value-by-value path.
    return c if notnull else f"coalesce({c}, char(3))"


def finish(blob: bytes, rows: int, nulls: int, separators: int) -> bytes | None:
    """The COPY data of a blob of `rows` rows with `separators` value markers
    and `nulls` NULLs, or None when a value holds a marker byte itself."""
    if blob is None:  # every row's line NULL (see _value)
        return None
    if blob.count(_ROW) != rows or blob.count(_VALUE) != separators or blob.count(_NULL) != nulls:
        return None
    for char, escaped in _ESCAPES:
        if char in blob:  # a scan far quicker than replace's, which most batches need not
            blob = blob.replace(char, escaped)
    if nulls:
        blob = blob.replace(_NULL, b"\\N")
    return blob.translate(_SEPARATORS)
