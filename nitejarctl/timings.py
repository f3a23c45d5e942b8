"""Where a command spent its time, for -v: the last line on stderr says it.

    -- time: start-up 0.14 s; statements 2.71 s (64); write lock 2.50 s in 30 batches, pauses 0.24 s;
       reading rows 0.61 s; formatting 0.58 s; output 0.05 s; checkpoints 0.95 s, 0.31 s of it waited for;
       total 4.02 s

Start-up runs from the process's start to its first SQL statement (imports,
options, connecting). The other figures are sums over the command's threads
(the rows of a bulk change are read and formatted beside its next batches, and
checkpoints run in the background), so they may add up to more than the total.
Nothing is measured unless `enable()` was called: the figures cost nothing
otherwise. Imports nothing heavy (the command line imports it on every run).
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_spent: dict[str, list] = {}  # phase -> [seconds, count]
_first_statement: float | None = None
enabled = False

PHASES = (  # (phase, how it is said)
    ("statements", "statements {s} ({n})"),
    ("lock", "write lock {s} in {n} {batches}"),
    ("pause", "pauses {s}"),
    ("rows", "reading rows {s}"),
    ("format", "formatting {s}"),
    ("output", "output {s}"),
    ("checkpoint", "checkpoints {s}"),
    ("checkpoint wait", "{s} of it waited for"),
)


def enable() -> None:
    global enabled
    enabled = True


def reset() -> None:
    """Forget everything, and measure nothing until enabled again."""
    global enabled, _first_statement
    with _lock:
        _spent.clear()
        _first_statement = None
        enabled = False


def add(phase: str, seconds: float, count: int = 1) -> None:
    """`seconds` more spent in `phase` (when enabled)."""
    if not enabled:
        return
    global _first_statement
    now = time.perf_counter()
    with _lock:
        if phase == "statements" and _first_statement is None:
            _first_statement = now - seconds
        entry = _spent.setdefault(phase, [0.0, 0])
        entry[0] += seconds
        entry[1] += count


class measured:
    """`with measured("format"): …` adds the block's time to the phase."""

    __slots__ = ("phase", "started")

    def __init__(self, phase: str):
        self.phase = phase

    def __enter__(self):
        self.started = time.perf_counter() if enabled else 0.0
        return self

    def __exit__(self, *exc) -> None:
        if enabled:
            add(self.phase, time.perf_counter() - self.started)


def _process_age() -> float | None:
    """Seconds since this process started (Linux: /proc), else None."""
    try:
        with open("/proc/self/stat") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def summary() -> str:
    """The line -v prints at the end of a command."""
    age = _process_age()
    now = time.perf_counter()
    items = []
    if age is not None and _first_statement is not None:
        items.append(f"start-up {age - (now - _first_statement):.2f} s")
    with _lock:
        spent = {k: tuple(v) for k, v in _spent.items()}
    for phase, text in PHASES:
        if phase in spent:
            seconds, count = spent[phase]
            piece = text.format(s=f"{seconds:.2f} s", n=count, batches="batch" if count == 1 else "batches")
            if phase in ("pause", "checkpoint wait") and items:
                items[-1] += ", " + piece
            else:
                items.append(piece)
    if age is not None:
        items.append(f"total {age:.2f} s")
    return "-- time: " + "; ".join(items)
