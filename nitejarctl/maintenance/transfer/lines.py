"""A batch's COPY lines built by SQLite: the fast path of the copy.

SQLite concatenates each batch of rows into one blob in C, with control
bytes where COPY's text format has its separators (\\x01 after a value,
\\x02 after a row, \\x03 for NULL); Python then escapes the whole blob at
once (bytes.replace, in C too) and turns the markers into tabs, newlines and
`\\N`. The bytes that arrive are those rows.formatter writes for the same rows
(what the checksum is taken of), without a Python object per value.

Reals are the exception: SQLite's own text of a double is not always exact.
A table's real columns come last in its layout; SQLite builds each row's
line up to them and the Python formatter writes the reals (and the part of
the line their checksum is taken of).

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
REALS = (R.FLOAT, R.FLOAT4)

# The storage classes each kind of target column takes from SQLite (NULL aside).
_TAKES = {R.INT: ("integer",), R.TEXT: ("text",), R.BYTEA: ("blob",), R.FLOAT: ("integer", "real"),
          R.FLOAT4: ("integer", "real")}


class WrongClass(ValueError):
    """A value of a storage class its column does not take."""


class Builder:
    """How SQLite builds the batches of a table whose columns are `columns`
    (of target kinds `kinds`, reals last)."""

    def __init__(self, table: str, columns, kinds):
        self.plain = sum(k not in REALS for k in kinds)
        plain = [(quote(c), k) for c, k in zip(columns, kinds) if k not in REALS]
        reals = [quote(c) for c, k in zip(columns, kinds) if k in REALS]
        self.rowwise = bool(reals)  # the reals written by the Python formatter, row by row
        wrong = " + ".join(f"(typeof({quote(c)}) NOT IN ({', '.join(repr(t) for t in _TAKES[k])}, 'null'))"
                           for c, k in zip(columns, kinds))
        nulls = " + ".join(f"count({c})" for c, _ in plain)
        # With reals, each line up to them (a separator after its last value),
        # and the rows' rowids in the same order (two aggregates of one query
        # see the rows in one order); the reals come from a second query in
        # rowid order, and the two are matched by rowid.
        line = (" || char(1) || ".join(_value(c, k) for c, k in plain) + (" || char(1)" if reals else "")
                + " || char(2)")
        self.sql = (f"SELECT max(rowid), count(*), {len(plain)} * count(*) - ({nulls}), total({wrong}), "
                    f"CAST(group_concat({line}, '') AS BLOB){', group_concat(rowid)' if reals else ''} "
                    f"FROM (SELECT rowid, {', '.join(quote(c) for c in columns)} FROM {quote(table)} "
                    "WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?)")
        if reals:
            self.tail = R.formatter(kinds[self.plain:])
            self.hashed_tail = R.formatter(kinds[self.plain:], hashed=True)
            self.reals_sql = (f"SELECT rowid, {', '.join(reals)} FROM {quote(table)} "
                              "WHERE rowid > ? AND rowid <= ? ORDER BY rowid")

    def batch(self, snapshot, after, upto: int, size: int):
        """(last rowid, rows, COPY data, checksum) of the rows after `after` up
        to `upto` (at most `size`); None when a value holds a marker byte;
        WrongClass."""
        upper, n, nulls, wrong, blob, *order = snapshot.execute(self.sql, (after, upto, size)).fetchone()
        if not n:
            return after, 0, b"", 0
        if wrong:
            raise WrongClass()
        if not self.rowwise:
            data = finish(blob, n, nulls, n * (self.plain - 1))
            return None if data is None else (upper, n, data, R.checksum(data))
        prefixes = finish(blob, n, nulls, n * self.plain)
        rows = snapshot.execute(self.reals_sql, (after, upper)).fetchall()
        if prefixes is None or order[0] != ",".join([str(r[0]) for r in rows]):
            return None
        parts = [b""] * (2 * n)
        parts[0::2] = prefixes.split(b"\n")[:n]
        parts[1::2] = "".join(map(self.tail, rows)).encode().splitlines(keepends=True)
        data = b"".join(parts)
        parts[1::2] = "".join(map(self.hashed_tail, rows)).encode().splitlines(keepends=True)
        return upper, n, data, R.checksum(b"".join(parts))


def supported(kinds) -> bool:
    """Whether SQLite can build the lines: any kinds, with at least one not a real."""
    return all(kind in _TAKES for kind in kinds) and any(kind not in REALS for kind in kinds)


def _value(c: str, kind: str) -> str:
    if kind == R.BYTEA:  # hex(NULL) is '', not NULL
        return f"CASE WHEN {c} IS NULL THEN char(3) ELSE '\\x' || lower(hex({c})) END"
    return f"coalesce({c}, char(3))"


def finish(blob: bytes, rows: int, nulls: int, separators: int) -> bytes | None:
    """The COPY data of a blob of `rows` rows with `separators` value markers
    and `nulls` NULLs, or None when a value holds a marker byte itself."""
    if blob.count(_ROW) != rows or blob.count(_VALUE) != separators or blob.count(_NULL) != nulls:
        return None
    data = (blob.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
            .replace(b"\r", b"\\r"))
    return data.replace(_VALUE, b"\t").replace(_NULL, b"\\N").replace(_ROW, b"\n")
