"""Rendering: every command hands its rows (dicts keyed by column name, or
tuples of named fields) to `emit` for listings, `emit_one` for a single
object, `emit_report` for a command's result. Machine formats are in
formats, tables (Rich) in table; nothing else knows Rich, JSON, CSV or TSV.
"""

from __future__ import annotations

import sys

from nitejarctl.output.formats import (
    FORMATS,
    Column,
    LineWriter,
    _tuple_chunks,
    columns_of,
    id_line,
    to_json,
)
from nitejarctl.output.progress import PROGRESS_DELAY, ProgressBar
from nitejarctl.output.table import _console, bar, emit_table, emit_vertical, format_time, spark
from nitejarctl.output.terminal import color_allowed, default_format, isatty
from nitejarctl.visible import visible

__all__ = ["FORMATS", "PROGRESS_DELAY", "Column", "LineWriter", "ProgressBar", "bar", "color_allowed",
           "columns_of", "default_format", "emit", "emit_figures", "emit_one", "emit_report",
           "format_time", "isatty", "spark", "to_json"]


def emit(rows, columns, fmt: str, *, out=None, color: bool = True, id_field: str = "id",
         title: str | None = None, fields=None, notice=None, fit: str = "rank", keep=None) -> int:
    """Write rows in `fmt`, streaming every format but `table`. Returns the count.

    `rows` are dicts keyed by column name or, given `fields` (the names of
    their values, in order), tuples — as a spool of changed rows holds them.
    `fit` and `keep` say which columns a table drops when the terminal is too
    narrow (output.table)."""
    out = out or sys.stdout
    if fmt == "table":
        if fields is not None:
            keys = tuple(fields)
            rows = (dict(zip(keys, row)) for row in rows)
        return emit_table(rows, columns_of(columns), out, color=color, title=title, notice=notice,
                          fit=fit, keep=keep)
    writer = LineWriter(columns, fmt, id_field=id_field, fields=fields)
    out.write(writer.header())
    for chunk in _tuple_chunks(rows, writer.wanted, fields):
        out.write(writer.lines(chunk))
    out.write(writer.footer())
    out.flush()
    return writer.count


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
        out.write(id_line(obj.get(id_field)))
    elif fmt == "table":
        emit_vertical(obj, out, color=color, kinds=kinds)
        for name, (rows, columns) in sections.items():
            out.write("\n")
            if not emit(rows, columns, "table", out=out, color=color, title=name):
                _console(out, color).print(f"{name}: none")
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    out.flush()


def emit_report(report: dict, fmt: str, *, out=None, color: bool = True, lines=None) -> None:
    """A command's result as one JSON object in json/jsonl, else as `lines` of text."""
    out = out or sys.stdout
    if fmt in ("json", "jsonl"):
        out.write((to_json(report, pretty=True) if fmt == "json" else to_json(report)) + "\n")
    elif fmt == "table":
        from rich.text import Text

        console = _console(out, color)
        for line in lines or ():
            console.print(line if isinstance(line, Text) else Text(visible(str(line))))
    else:
        for line in lines or ():
            out.write(visible(str(line)) + "\n")
    out.flush()


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
