"""Rows as COPY text, their checksum, and the values PostgreSQL cannot take.

Every copied row becomes one line of COPY's text format. The line is also
what the row's checksum is taken of (md5, first 8 bytes as a signed integer,
summed over the table: order-independent), and db-side `checksum_sql`
rebuilds exactly that line from the stored values, so that the target's
checksum is computed the same way as the source's.

A value of the wrong kind (text in an integer column, invalid UTF-8, a NUL
character, …) makes the fast path fail — a Python error while formatting, or
PostgreSQL refusing the batch — and then `classify` looks at that batch value
by value to name each bad value with its row and column.
"""

from __future__ import annotations

import hashlib
import struct

# Target column kinds (target.column_kind maps PostgreSQL types onto them).
INT, FLOAT, FLOAT4, TEXT, BYTEA = "int", "float", "float4", "text", "bytea"
INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}

NULL = "\\N"


def float4(value) -> float:
    """The value a PostgreSQL real (4 bytes) stores for `value`."""
    return struct.unpack("f", struct.pack("f", float(value)))[0]


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_EXPRESSIONS = {
    INT: "str(v{i})",
    FLOAT: "repr(float(v{i}))",
    FLOAT4: "repr(float4(v{i}))",
    TEXT: (r"v{i}.replace('\\', '\\\\').replace('\t', '\\t').replace('\n', '\\n')"
           r".replace('\r', '\\r')"),
    BYTEA: r"'\\\\x' + v{i}.hex()",
}


# In the line a checksum is taken of, a float is its 8 bytes in hex: what
# PostgreSQL prints of a double is not always Python's shortest repr.
_HASHED = dict(_EXPRESSIONS, **{FLOAT: "pack('>d', v{i}).hex()", FLOAT4: "pack('>d', float4(v{i})).hex()"})


def formatter(kinds, *, hashed: bool = False):
    """A function of a row `(rowid, value, …)` giving its COPY line (with
    `hashed`, the line its checksum is taken of).

    Generated per table so that a row costs one Python call, not one per value
    (a million-row table is formatted in a second or two)."""
    expressions = _HASHED if hashed else _EXPRESSIONS
    names = "".join(f"v{i}, " for i in range(len(kinds)))
    values = ", ".join(f"{NULL!r} if v{i} is None else {expressions[kind].format(i=i)}"
                       for i, kind in enumerate(kinds))
    source = f"def line(row):\n    _, {names}= row\n    return '\\t'.join(({values},)) + '\\n'\n"
    scope = {"float4": float4, "pack": struct.pack}
    exec(compile(source, "<transfer formatter>", "exec"), scope)  # noqa: S102
    return scope["line"]


def row_hash(line: bytes) -> int:
    return int.from_bytes(hashlib.md5(line).digest()[:8], "big", signed=True)


def encode_batch(lines: list[str], hashed: list[str] | None = None) -> tuple[bytes, int]:
    """The COPY data of a batch and the sum of its rows' hashes (of `hashed`,
    the lines to take them of, when they differ from the COPY lines)."""
    encoded = [line.encode("utf-8") for line in lines]
    if hashed is None:
        return b"".join(encoded), sum(map(row_hash, encoded))
    return b"".join(encoded), sum(row_hash(line.encode("utf-8")) for line in hashed)


# ------------------------------------------------------------- bad values


def classify(kinds, columns, limits, nullable, row, types) -> list[tuple[str, str, object]]:
    """The bad values of one row read raw (text as bytes) with each value's
    SQLite storage class: [(column, problem, value)]. `limits[i]` is the
    integer bound or varchar length of column i, or None."""
    bad = []
    for kind, name, limit, null_ok, value, storage in zip(kinds, columns, limits, nullable, row, types):
        if storage == "null" and not null_ok:
            bad.append((name, "NULL in a NOT NULL column", value))
            continue
        problem = _problem(kind, limit, value, storage)
        if problem is not None:
            bad.append((name, problem, value))
    return bad


def _problem(kind, limit, value, storage) -> str | None:
    if storage == "null":
        return None
    if kind == INT:
        if storage != "integer":
            return f"{storage} in an integer column"
        if limit is not None and not -limit <= value < limit:
            return f"{value} is out of range for the target's integer column"
        return None
    if kind in (FLOAT, FLOAT4):
        return None if storage in ("integer", "real") else f"{storage} in a real column"
    if kind == BYTEA:
        return None if storage == "blob" else f"{storage} in a blob column"
    # text
    if storage != "text":
        return f"{storage} in a text column"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 (byte {exc.start})"
    if "\x00" in text:
        return "NUL character in text"
    if limit is not None and len(text) > limit:
        return f"longer than the target's {limit} characters"
    return None


def decoded(kinds, row, types):
    """A raw row (text as bytes) as the fast path reads it, once it has no bad value."""
    return tuple(v.decode("utf-8") if kind == TEXT and t == "text" else v
                 for kind, v, t in zip(kinds, row, types))


def shown(value, width: int = 200) -> str:
    """A bad value for the reject file: printable, at most `width` characters."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return "x'" + value[:width // 2].hex() + ("…" if len(value) > width // 2 else "") + "'"
    text = repr(value) if not isinstance(value, str) else value
    text = text.encode("unicode_escape").decode("ascii")
    return text[:width] + ("…" if len(text) > width else "")


# ---------------------------------------------------------- the target side


def checksum_sql(table: str, columns, kinds) -> str:
    """count(*) and the checksum of `table`, rebuilt from its stored values
    exactly as `formatter` writes each row's line."""
    parts = []
    for name, kind in zip(columns, kinds):
        c = quote(name)
        if kind == TEXT:
            expr = (f"replace(replace(replace(replace({c}, '\\', '\\\\'), E'\\t', '\\t'), "
                    f"E'\\n', '\\n'), E'\\r', '\\r')")
        elif kind == BYTEA:
            expr = f"'\\\\x' || encode({c}, 'hex')"
        elif kind in (FLOAT, FLOAT4):
            expr = f"encode(float8send({c}::float8), 'hex')"
        else:
            expr = f"{c}::text"
        parts.append(f"coalesce({expr}, '\\N')")
    line = f"concat_ws(E'\\t', {', '.join(parts)}) || E'\\n'"
    return (f"SELECT count(*), coalesce(sum(('x' || left(md5({line}), 16))"
            f"::bit(64)::bigint), 0) FROM {quote(table)}")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
