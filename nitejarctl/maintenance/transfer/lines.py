"""A batch's COPY lines built by SQLite: the fast path of the copy.

SQLite concatenates each batch of rows into one blob in C, with control
bytes where COPY's text format has its separators (\\x01 between values,
\\x02 after each row, \\x03 for NULL); Python then escapes the whole blob at
once (bytes.replace, in C too) and turns the markers into tabs, newlines and
`\\N`. The bytes that arrive are those rows.formatter writes for the same rows
(what the checksum is taken of), without a Python object per value.

Two things send a batch back to the value-by-value path (copying.py): a value
whose storage class its column does not take (a blob in a text column, text
in an integer column, …: counted in the same query), and a value that holds
one of the marker bytes itself (seen as a marker count that does not add up).
Values PostgreSQL refuses (invalid UTF-8, NUL, out of range) are sent as they
are and refused, as on the Python path.

Reals cannot go this way: SQLite's own text for a double is not always exact,
so a table with a real column keeps the Python formatter.
"""

from __future__ import annotations

from nitejarctl.maintenance.transfer import rows as R
from nitejarctl.maintenance.transfer.rows import quote

_VALUE, _ROW, _NULL = b"\x01", b"\x02", b"\x03"

# The storage classes each kind of target column takes from SQLite (NULL aside).
_TAKES = {R.INT: ("integer",), R.TEXT: ("text",), R.BYTEA: ("blob",)}


def supported(kinds) -> bool:
    return all(kind in _TAKES for kind in kinds)


def batch_sql(table: str, columns, kinds) -> str:
    """The query of a batch (parameters: the rowid after which it starts, and
    its number of rows): its last rowid, its rows, its NULLs, its values of a
    storage class their column does not take, and its rows as one blob."""
    values, nulls, wrong = [], [], []
    for name, kind in zip(columns, kinds):
        c = quote(name)
        if kind == R.BYTEA:  # hex(NULL) is '', not NULL
            values.append(f"CASE WHEN {c} IS NULL THEN char(3) ELSE '\\x' || lower(hex({c})) END")
        else:
            values.append(f"coalesce({c}, char(3))")
        nulls.append(f"count({c})")
        taken = ", ".join(f"'{t}'" for t in _TAKES[kind] + ("null",))
        wrong.append(f"(typeof({c}) NOT IN ({taken}))")
    line = " || char(1) || ".join(values) + " || char(2)"
    return (f"SELECT max(rowid), count(*), {len(columns)} * count(*) - ({' + '.join(nulls)}), "
            f"total({' + '.join(wrong)}), CAST(group_concat({line}, '') AS BLOB) "
            f"FROM (SELECT rowid, {', '.join(quote(c) for c in columns)} FROM {quote(table)} "
            "WHERE rowid > ? ORDER BY rowid LIMIT ?)")


def finish(blob: bytes, rows: int, nulls: int, width: int) -> bytes | None:
    """The COPY data of a blob of `rows` rows of `width` values holding
    `nulls` NULLs, or None when a value holds a marker byte itself."""
    if (blob.count(_ROW) != rows or blob.count(_VALUE) != rows * (width - 1)
            or blob.count(_NULL) != nulls):
        return None
    data = (blob.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
            .replace(b"\r", b"\\r"))
    return data.replace(_VALUE, b"\t").replace(_NULL, b"\\N").replace(_ROW, b"\n")
