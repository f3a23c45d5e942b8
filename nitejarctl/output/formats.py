"""The machine formats — json, jsonl, csv, tsv, ids — a chunk of rows at a
time, and the JSON of reports. The only code that knows JSON, CSV and TSV."""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import operator
from dataclasses import dataclass

FORMATS = ("table", "json", "jsonl", "csv", "tsv", "ids")


@dataclass(frozen=True)
class Column:
    """A listed field: its database name and how a table shows it."""

    name: str
    kind: str = "text"  # text | int | float | time | bool | json
    header: str | None = None

    @property
    def title(self) -> str:
        return self.header or self.name


def columns_of(spec) -> list[Column]:
    return [c if isinstance(c, Column) else Column(c) for c in spec]


def _json_default(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot serialise {type(value).__name__}")


_JSON = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


def to_json(value, *, pretty: bool = False) -> str:
    if pretty:
        return json.dumps(value, default=_json_default, ensure_ascii=False, indent=2)
    return _JSON.encode(value)


def id_line(value) -> str:
    """One id as `-o ids` writes it (TSV's escapes)."""
    return _tsv_escape(_plain(value)) + "\n"


def _plain(value) -> str:
    """A value as CSV/TSV text: empty for NULL, JSON for nested structures."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _json_default(value)
    if isinstance(value, (dict, list)):
        return to_json(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _tsv_escape(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return (text.replace("\\", "\\\\").replace("\t", "\\t")
                .replace("\n", "\\n").replace("\r", "\\r"))
    return text


def _tsv_cell(value) -> str:
    kind = type(value)
    if kind is str:
        return _tsv_escape(value)
    if kind is int or kind is float:
        return str(value)
    return _tsv_escape(_plain(value))


class LineWriter:
    """The text of a machine format (json, jsonl, csv, tsv, ids), a chunk of
    rows at a time: `header()`, then `lines(chunk)` for each chunk in order,
    then `footer()`. A chunk is a list of tuples of the `fields` named (by
    default the `wanted` values: the columns' in order, the id field's alone
    for ids), converted column by column: a bulk change may print a million
    rows."""

    def __init__(self, columns, fmt: str, *, id_field: str = "id", fields=None):
        if fmt not in FORMATS or fmt == "table":
            raise ValueError(f"unknown output format {fmt!r}")
        self.fmt = fmt
        self.names = [c.name for c in columns_of(columns)]
        self.wanted = [id_field] if fmt == "ids" else self.names
        self._project = None if fields is None else _projection(fields, self.wanted)
        self.count = 0

    @property
    def text_columns(self) -> list[str] | None:
        """The names of the columns whose lines are TSV, escaped as this
        writer escapes them (tsv and ids), else None."""
        return list(self.wanted) if self.fmt in ("tsv", "ids") and self.wanted else None

    def header(self) -> str:
        if self.fmt == "json":
            return "["
        if self.fmt == "tsv":
            return "\t".join(self.names) + "\n"
        if self.fmt == "csv":
            return _csv_text([self.names])
        return ""

    def lines(self, chunk: list[tuple]) -> str:
        """The text of `chunk`, the rows that follow those written so far."""
        if not chunk:
            return ""
        first = self.count == 0
        self.count += len(chunk)
        if self._project is not None:
            chunk = self._project(chunk)
        fmt = self.fmt
        if fmt == "tsv":
            if not self.names:
                return "\n" * len(chunk)
            return "\n".join(map("\t".join, zip(*map(_tsv_column, zip(*chunk))))) + "\n"
        if fmt == "json":
            return ("\n" if first else ",\n") + ",\n".join(_json_lines(chunk, self.wanted))
        if fmt == "jsonl":
            return "\n".join(_json_lines(chunk, self.wanted)) + "\n"
        if fmt == "csv":
            return _csv_text(_csv_rows(chunk))
        # ids: one a line, escaped as TSV does, so that an id holding a tab or a
        # newline stays one argument for xargs.
        values = [row[0] for row in chunk]
        if not all(type(v) is str for v in values):
            values = list(map(_plain, values))
        return "\n".join(_tsv_column(values)) + "\n"

    def footer(self) -> str:
        if self.fmt == "json":
            return "\n]\n" if self.count else "]\n"
        return ""


def _csv_text(rows) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


CHUNK = 2000  # rows per write


def _chunks(rows, size: int = CHUNK):
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _tuple_chunks(rows, wanted: list[str], fields):
    """Chunks of rows: dicts (no `fields`) as tuples of the `wanted` values,
    tuples as they come (a LineWriter given `fields` picks the wanted ones)."""
    if fields is not None:
        yield from _chunks(rows)
        return
    if len(wanted) == 1:
        name = wanted[0]
        for chunk in _chunks(rows):
            yield [(row.get(name),) for row in chunk]
        return
    for chunk in _chunks(rows):
        yield [tuple([row.get(n) for n in wanted]) for row in chunk]


def _projection(fields, wanted: list[str]):
    """A function turning tuples of `fields` into tuples of the `wanted`
    values (None for a field they lack), or None when they are the same."""
    fields = list(fields)
    if fields == wanted:
        return None
    positions = [fields.index(n) if n in fields else None for n in wanted]
    if None in positions:
        return lambda chunk: [tuple([None if i is None else row[i] for i in positions]) for row in chunk]
    pick = operator.itemgetter(*positions)
    if len(positions) == 1:
        return lambda chunk: [(pick(row),) for row in chunk]
    return lambda chunk: list(map(pick, chunk))


def _json_lines(chunk: list[tuple], names: list[str]) -> list[str]:
    encode = _JSON.encode
    return [encode(dict(zip(names, row))) for row in chunk]


_CSV_NATIVE = {str, int, float, type(None)}  # written by the csv module as _plain would


def _csv_rows(chunk: list[tuple]):
    if set(map(type, itertools.chain.from_iterable(chunk))) <= _CSV_NATIVE:
        return chunk
    return [[_plain(v) for v in row] for row in chunk]


def _tsv_column(values: tuple) -> list[str] | tuple:
    """One column of a chunk as TSV cells."""
    kinds = set(map(type, values))
    if kinds <= _TEXTS:
        if kinds != _STR:
            values = [v or "" for v in values]  # NULL is empty
        text = "".join(values)
        if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
            return list(map(_tsv_escape, values))
        return values
    if kinds <= _NUMBERS:
        return list(map(str, values))
    if kinds <= _NULLABLE_NUMBERS:
        return ["" if v is None else str(v) for v in values]
    return list(map(_tsv_cell, values))


_STR = {str}
_TEXTS = {str, type(None)}
_NUMBERS = {int, float}
_NULLABLE_NUMBERS = {int, float, type(None)}


class JsonReport:
    """A report object whose lists arrive item by item (a compaction's
    outcomes): each list is spooled to a temporary file while it grows, so
    that memory stays flat, then `write_to` prints the object — the `before`
    fields, the lists (one compact item a line), the `after` fields."""

    def __init__(self, lists):
        import tempfile

        self._files = {name: tempfile.TemporaryFile("w+", encoding="utf-8") for name in lists}

    def __enter__(self) -> JsonReport:
        return self

    def __exit__(self, *exc) -> None:
        for file in self._files.values():
            file.close()

    def add(self, name: str, item: dict) -> None:
        self._files[name].write(to_json(item) + "\n")

    def write_to(self, out, *, before: dict, after: dict) -> None:
        out.write("{\n")
        for key, value in before.items():
            out.write(f"  {to_json(key)}: {to_json(value)},\n")
        for name, file in self._files.items():
            file.seek(0)
            out.write(f"  {to_json(name)}: [")
            count = 0
            for count, line in enumerate(file, 1):
                out.write(("\n    " if count == 1 else ",\n    ") + line.rstrip("\n"))
            out.write("\n  ]" if count else "]")
            out.write(",\n" if after or name != list(self._files)[-1] else "\n")
        items = list(after.items())
        for i, (key, value) in enumerate(items):
            out.write(f"  {to_json(key)}: {to_json(value)}" + (",\n" if i < len(items) - 1 else "\n"))
        out.write("}\n")
        out.flush()
