"""Rendering: the only module that knows Rich, JSON, CSV and TSV.

Every command hands its rows (dicts keyed by column name) to `emit` for
listings or `emit_one` for a single object. Values from the database are never
interpreted: Rich gets `Text` objects with markup, emoji and highlighting off.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import operator
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime

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


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def default_format(stream=None) -> str:
    """`table` on a terminal, `tsv` (with a header) in a pipe."""
    return "table" if _isatty(stream or sys.stdout) else "tsv"


def color_allowed(no_color: bool = False, environ=None) -> bool:
    env = os.environ if environ is None else environ
    return not (no_color or "NO_COLOR" in env or env.get("TERM") == "dumb")


# ------------------------------------------------------------------ plain values


def _json_default(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot serialise {type(value).__name__}")


_JSON = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


def to_json(value, *, pretty: bool = False) -> str:
    if pretty:
        return json.dumps(value, default=_json_default, ensure_ascii=False, indent=2)
    return _JSON.encode(value)


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


def format_time(value, now: int | None = None) -> str:
    """Unix seconds -> 'YYYY-MM-DD HH:MM:SS (5m ago)' in local time."""
    if value is None:
        return ""
    from nitejarctl.durations import format_age

    now = int(time.time()) if now is None else now
    stamp = datetime.fromtimestamp(int(value)).strftime("%Y-%m-%d %H:%M:%S")
    delta = now - int(value)
    rel = f"{format_age(delta)} ago" if delta >= 0 else f"in {format_age(-delta)}"
    return f"{stamp} ({rel})"


def _cell(value, column: Column, now: int) -> str:
    if value is None:
        return ""
    if column.kind == "time":
        return format_time(value, now)
    if column.kind == "bool":
        return "yes" if value else "no"
    if column.kind == "float" and isinstance(value, float):
        return f"{value:.3f}"
    if column.kind == "json" and isinstance(value, (dict, list)):
        return to_json(value, pretty=True)
    return _plain(value)


# -------------------------------------------------------------------- listings


def emit(rows, columns, fmt: str, *, out=None, color: bool = True, id_field: str = "id",
         title: str | None = None, fields=None) -> int:
    """Write rows in `fmt`, streaming every format but `table`. Returns the count.

    `rows` are dicts keyed by column name or, given `fields` (the names of
    their values, in order), tuples — as a spool of changed rows holds them."""
    out = out or sys.stdout
    if fmt == "table":
        if fields is not None:
            keys = tuple(fields)
            rows = (dict(zip(keys, row)) for row in rows)
        return _emit_table(rows, columns_of(columns), out, color=color, title=title)
    writer = LineWriter(columns, fmt, id_field=id_field, fields=fields)
    out.write(writer.header())
    for chunk in _tuple_chunks(rows, writer.wanted, fields):
        out.write(writer.lines(chunk))
    out.write(writer.footer())
    out.flush()
    return writer.count


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

    def header(self) -> str:
        if self.fmt == "json":
            return "["
        if self.fmt == "tsv":
            return "\t".join(self.names) + "\n"
        if self.fmt == "csv":
            return _csv_text([self.names])
        return ""

    def lines(self, chunk: list[tuple]) -> str:
        text = self.text(chunk, first=self.count == 0)
        self.count += len(chunk)
        return text

    def text(self, chunk: list[tuple], *, first: bool) -> str:
        """The lines of `chunk` — the first rows printed when `first` — without
        counting them: for a caller that may yet drop them (spool.Spool)."""
        if not chunk:
            return ""
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
        values = [row[0] for row in chunk]  # ids
        if not all(type(v) is str for v in values):
            values = list(map(_plain, values))
        return "\n".join(values) + "\n"

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


def _console(out, color: bool):
    from rich.console import Console

    return Console(file=out, no_color=not color, color_system="auto" if color else None,
                   highlight=False, emoji=False, markup=False, soft_wrap=False)


def _whole(col: Column) -> bool:
    """Ids, numbers and times are read and copied whole: they never wrap."""
    return col.kind in ("time", "int", "float", "bool") or col.name == "id" or col.name.endswith("_id")


TEXT_MIN_WIDTH = 24


def _fit(cols: list[Column], cells: list[list[str]], width: int) -> list[int]:
    """Indexes of the columns to show in `width`. When the whole-value columns
    and a readable share for text do not fit, the rightmost times go first,
    then ids other than the first column, then numbers."""
    def need(i):
        widest = max([len(cols[i].title)] + [len(row[i]) for row in cells])
        return (widest if _whole(cols[i]) else min(widest, TEXT_MIN_WIDTH)) + 3

    def rank(col):
        if col.kind == "time":
            return 0
        if col.kind in ("int", "float", "bool"):
            return 2
        return 1 if _whole(col) else 3

    shown = list(range(len(cols)))
    droppable = sorted(range(1, len(cols)), key=lambda i: (rank(cols[i]), -i))
    for i in droppable:
        if sum(need(j) for j in shown) <= width or rank(cols[i]) == 3:
            break
        shown.remove(i)
    return shown


def _emit_table(rows, cols: list[Column], out, *, color: bool, title: str | None) -> int:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    now = int(time.time())
    cells = [[_cell(row.get(c.name), c, now) for c in cols] for row in rows]
    if not cells:
        return 0
    console = _console(out, color)
    shown = _fit(cols, cells, console.width)
    table = Table(box=box.SIMPLE_HEAD, header_style="bold" if color else None,
                  title=Text(title) if title else None, title_justify="left")
    for i in shown:
        col = cols[i]
        whole = _whole(col)
        table.add_column(Text(col.title), justify="right" if col.kind in ("int", "float") else "left",
                         no_wrap=whole, overflow="ellipsis" if whole else "fold")
    for row in cells:
        table.add_row(*(Text(row[i]) for i in shown))
    console.print(table)
    hidden = [c.name for i, c in enumerate(cols) if i not in shown]
    if hidden and _isatty(sys.stderr):
        sys.stderr.write(f"(not shown at this width: {', '.join(hidden)}; -o json shows every field)\n")
    return len(cells)


# ------------------------------------------------------------------ one object


def emit_one(obj: dict, fmt: str, *, out=None, color: bool = True, id_field: str = "id",
             sections: dict | None = None, kinds: dict | None = None) -> None:
    """Write one object (`show`). `sections` maps a name to (rows, columns):
    nested lists that JSON includes as arrays and a table shows as sub-tables."""
    out = out or sys.stdout
    sections = sections or {}
    kinds = kinds or {}
    if fmt in ("json", "jsonl"):
        full = dict(obj)
        for name, (rows, columns) in sections.items():
            keys = [c.name for c in columns_of(columns)]
            full[name] = [{k: r.get(k) for k in keys} for r in rows]
        out.write((to_json(full, pretty=True) if fmt == "json" else to_json(full)) + "\n")
    elif fmt in ("csv", "tsv"):
        emit([obj], list(obj.keys()), fmt, out=out, color=color, id_field=id_field)
    elif fmt == "ids":
        out.write(_plain(obj.get(id_field)) + "\n")
    elif fmt == "table":
        _emit_vertical(obj, out, color=color, kinds=kinds)
        for name, (rows, columns) in sections.items():
            out.write("\n")
            if not emit(rows, columns, "table", out=out, color=color, title=name):
                _console(out, color).print(f"{name}: none")
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    out.flush()


def _emit_vertical(obj: dict, out, *, color: bool, kinds: dict) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    now = int(time.time())
    table = Table(box=box.SIMPLE, show_header=False)
    table.add_column(style="bold" if color else None)
    table.add_column(overflow="fold")
    for key, value in obj.items():
        kind = kinds.get(key) or ("time" if key.endswith("_at") or key in ("start_time", "end_time")
                                  else "json" if isinstance(value, (dict, list)) else "text")
        table.add_row(Text(key), Text(_cell(value, Column(key, kind), now)))
    _console(out, color).print(table)


# ------------------------------------------------------------------ progress

PROGRESS_DELAY = 1.0  # seconds of work before a progress bar appears


class ProgressBar:
    """A progress bar on stderr for long work (`with ProgressBar(…) as bar:`).

    Drawn only when `enabled` (the caller's rule: stderr is a terminal and
    not -q) and once the work has lasted `delay` seconds, so that quick
    commands never flash one; it disappears when the work ends. `total` is a
    number, a callable that gives it (asked only when the bar appears, so a
    count costs nothing when no bar is drawn), or None: the bar then counts
    without an end. `say` prints a line above the bar while it is drawn."""

    def __init__(self, label: str, total=None, *, enabled: bool = True, color: bool = True,
                 delay: float | None = None):
        self.label, self.total, self.enabled, self.color = label, total, enabled, color
        self.delay = PROGRESS_DELAY if delay is None else delay
        self.completed = 0
        self._since = time.monotonic()
        self._bar = self._task = None

    def __enter__(self) -> ProgressBar:
        self._since = time.monotonic()
        return self

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def update(self, completed: int) -> None:
        """`completed` units of work done so far."""
        self.completed = completed
        if self._bar is None:
            if not self.enabled or time.monotonic() - self._since < self.delay:
                return
            self._start()
        self._bar.update(self._task, completed=completed)

    def advance(self, n: int = 1) -> None:
        self.update(self.completed + n)

    def say(self, line: str) -> bool:
        """Print `line` above the bar; False (nothing printed) when no bar is drawn."""
        if self._bar is None:
            return False
        from rich.text import Text

        self._bar.console.print(Text(line), soft_wrap=True)
        return True

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.enabled = False  # one attempt only
        total = self.total() if callable(self.total) else self.total
        console = Console(stderr=True, no_color=not self.color, highlight=False, emoji=False,
                          markup=False)
        ending = TimeRemainingColumn() if total else TimeElapsedColumn()
        bar = Progress(TextColumn(self.label, markup=False), BarColumn(), MofNCompleteColumn(), ending,
                       console=console, transient=True, redirect_stdout=False, redirect_stderr=False)
        self._task = bar.add_task(self.label, total=total or None, completed=self.completed)
        bar.start()
        self._bar = bar


# ------------------------------------------------------------------- reports


def emit_report(report: dict, fmt: str, *, out=None, color: bool = True, lines=None) -> None:
    """A command's result as one JSON object in json/jsonl, else as `lines` of text."""
    out = out or sys.stdout
    if fmt in ("json", "jsonl"):
        out.write((to_json(report, pretty=True) if fmt == "json" else to_json(report)) + "\n")
    elif fmt == "table":
        from rich.text import Text

        console = _console(out, color)
        for line in lines or ():
            console.print(line if isinstance(line, Text) else Text(str(line)))
    else:
        for line in lines or ():
            out.write(str(line) + "\n")
    out.flush()


# ---------------------------------------------------------------- pictures


def bar(count: int, largest: int, width: int = 30) -> str:
    """A horizontal bar proportional to count/largest (at least one block when > 0)."""
    if count <= 0 or largest <= 0:
        return ""
    return "█" * max(1, round(width * count / largest))


def spark(values: list[int]) -> str:
    """A one-line histogram: one block character per value, scaled to the largest."""
    blocks = " ▁▂▃▄▅▆▇█"
    largest = max(values) if values else 0
    if largest <= 0:
        return " " * len(values)
    return "".join(blocks[0] if v <= 0 else blocks[max(1, round(8 * v / largest))] for v in values)


def emit_figures(report: dict, sections: list[tuple[str, list[dict], list]], fmt: str, *,
                 out=None, color: bool = True) -> None:
    """A stats report: the whole report as one JSON object in json/jsonl; each
    section as a titled table otherwise (csv/tsv/ids: the first section's rows)."""
    out = out or sys.stdout
    if fmt in ("json", "jsonl"):
        emit_report(report, fmt, out=out, color=color)
        return
    if fmt != "table":
        title, rows, columns = sections[0]
        emit(iter(rows), columns, fmt, out=out, color=color)
        return
    for i, (title, rows, columns) in enumerate(sections):
        if i:
            out.write("\n")
        emit(iter(rows), columns, "table", out=out, color=color, title=title)
