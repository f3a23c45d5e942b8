"""Tables on a terminal, with Rich: values are shown, never interpreted
(`Text` objects; markup, emoji and highlighting off)."""

from __future__ import annotations

import sys
import time
from datetime import datetime

from nitejarctl.output.formats import Column, _plain, to_json
from nitejarctl.output.terminal import isatty
from nitejarctl.visible import visible, visible_cell


def format_time(value, now: int | None = None) -> str:
    """Unix seconds -> 'YYYY-MM-DD HH:MM:SS (5m ago)' in local time."""
    if value is None:
        return ""
    from nitejarctl.durations import format_age

    try:
        seconds = int(value)
        stamp = datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return _plain(value)  # not a time (text in an integer column): shown as it is
    now = int(time.time()) if now is None else now
    delta = now - seconds
    rel = f"{format_age(delta)} ago" if delta >= 0 else f"in {format_age(-delta)}"
    return f"{stamp} ({rel})"


CELL_LINES = 8  # lines of the terminal a table cell shows at most


def _cell(value, column: Column, now: int, width: int) -> str:
    """What a table shows of a value: at most CELL_LINES lines of the
    terminal's `width`, its controls escaped (nitejarctl.visible)."""
    return visible_cell(cut(_shown(value, column, now), width))


def cut(text: str, width: int) -> str:
    """`text` cut to what a cell can show, saying how much more there is.
    Done before Rich measures it: measuring and wrapping a cell costs Rich more
    than its length (a 10 MB message took minutes), what it shows does not."""
    limit = max(width, 20) * CELL_LINES
    if len(text) <= limit and text.count("\n") < CELL_LINES:
        return text
    head = text[:limit]
    end = -1
    for _ in range(CELL_LINES):
        end = head.find("\n", end + 1)
        if end < 0:
            break
    if end >= 0:
        head = head[:end]
    return f"{head}… {len(text) - len(head):,} more characters; -o json shows all"


def _shown(value, column: Column, now: int) -> str:
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


def _console(out, color: bool, width: int | None = None):
    from rich.console import Console

    return Console(file=out, no_color=not color, color_system="auto" if color else None,
                   highlight=False, emoji=False, markup=False, soft_wrap=False, width=width)


def _whole(col: Column) -> bool:
    """Ids, numbers and times are read and copied whole: they never wrap."""
    return col.kind in ("time", "int", "float", "bool") or col.name == "id" or col.name.endswith("_id")


TEXT_MIN_WIDTH = 24


def _need(col: Column, cells: list[list[str]], i: int) -> int:
    """The width a column needs: whole values whole, text a readable share."""
    widest = max([len(col.title)] + [len(row[i]) for row in cells])
    return (widest if _whole(col) else min(widest, TEXT_MIN_WIDTH)) + 3


def _fit(cols: list[Column], cells: list[list[str]], width: int, how: str = "rank",
         keep: str | None = None) -> list[int]:
    """Indexes of the columns to show in `width`. `how` is "order" (the
    columns come most important first: the rightmost go first), "rank" (the
    rightmost times go first, then ids other than the first column, then
    numbers; text stays) or "none" (every column stays). Neither the first
    column nor the one named `keep` (the sorted-on one) is ever dropped."""
    def rank(col):
        if col.kind == "time":
            return 0
        if col.kind in ("int", "float", "bool"):
            return 2
        return 1 if _whole(col) else 3

    shown = list(range(len(cols)))
    if how == "none":
        return shown
    candidates = [i for i in range(1, len(cols)) if cols[i].name != keep]
    if how == "order":
        droppable = candidates[::-1]
    else:
        droppable = [i for i in sorted(candidates, key=lambda i: (rank(cols[i]), -i)) if rank(cols[i]) < 3]
    need = [_need(c, cells, i) for i, c in enumerate(cols)]
    for i in droppable:
        if sum(need[j] for j in shown) + 1 <= width:  # + the table's right edge
            break
        shown.remove(i)
    return shown


def emit_table(rows, cols: list[Column], out, *, color: bool, title: str | None, notice=None,
               fit: str = "rank", keep: str | None = None) -> int:
    """A table of `rows`; `notice(line)` hears which columns did not fit (by
    default stderr does, when it is a terminal). `fit` and `keep`: see _fit;
    with fit "none" the table is as wide as its columns need, wider than the
    terminal if it must (its lines wrap there), and cuts nothing."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    now = int(time.time())
    console = _console(out, color)
    cells = [[_cell(row.get(c.name), c, now, console.width) for c in cols] for row in rows]
    if not cells:
        return 0
    shown = _fit(cols, cells, console.width, fit, keep)
    if fit == "none":
        needed = sum(_need(c, cells, i) for i, c in enumerate(cols)) + 1
        if needed > console.width:
            console = _console(out, color, width=needed)
    table = Table(box=box.SIMPLE_HEAD, header_style="bold" if color else None,
                  title=Text(visible(title)) if title else None, title_justify="left")
    for i in shown:
        col = cols[i]
        whole = _whole(col)
        table.add_column(Text(col.title), justify="right" if col.kind in ("int", "float") else "left",
                         no_wrap=whole, overflow="ellipsis" if whole else "fold")
    for row in cells:
        table.add_row(*(Text(row[i]) for i in shown))
    console.print(table)
    hidden = [c.name for i, c in enumerate(cols) if i not in shown]
    if notice is None and isatty(sys.stderr):
        notice = sys.stderr.write
    if hidden and notice is not None:
        notice(f"(not shown at this width: {', '.join(hidden)}; -o wide shows every column)\n")
    return len(cells)


def emit_vertical(obj: dict, out, *, color: bool, kinds: dict) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    now = int(time.time())
    console = _console(out, color)
    table = Table(box=box.SIMPLE, show_header=False)
    table.add_column(style="bold" if color else None)
    table.add_column(overflow="fold")
    for key, value in obj.items():
        kind = kinds.get(key) or ("time" if key.endswith("_at") or key in ("start_time", "end_time")
                                  else "json" if isinstance(value, (dict, list)) else "text")
        table.add_row(Text(visible(cut(str(key), console.width))),
                      Text(_cell(value, Column(key, kind), now, console.width)))
    console.print(table)


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
