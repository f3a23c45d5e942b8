"""Progress bars on stderr, for long work."""

from __future__ import annotations

import time

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
                 delay: float | None = None, force_terminal: bool | None = None, unit: str | None = None):
        self.label, self.total, self.enabled, self.color = label, total, enabled, color
        self.unit = unit  # shows the rate, in `unit`/s
        self.force_terminal = force_terminal  # draw on stderr even when it is no terminal
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
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        unit = self.unit

        class Rate(ProgressColumn):
            def render(self, task):
                return Text(f"{task.speed or 0:,.0f} {unit}/s")

        self.enabled = False  # one attempt only
        total = self.total() if callable(self.total) else self.total
        console = Console(stderr=True, no_color=not self.color, highlight=False, emoji=False,
                          markup=False, force_terminal=self.force_terminal)
        ending = TimeRemainingColumn() if total else TimeElapsedColumn()
        columns = [TextColumn(self.label, markup=False), BarColumn(), MofNCompleteColumn()]
        if unit:
            columns.append(Rate())
        bar = Progress(*columns, ending,
                       console=console, transient=True, redirect_stdout=False, redirect_stderr=False)
        self._task = bar.add_task(self.label, total=total or None, completed=self.completed)
        bar.start()
        self._bar = bar
