"""Progress bars on stderr, for long work."""

from __future__ import annotations

import time

from nitejarctl.visible import visible

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
                 delay: float | None = None, force_terminal: bool | None = None):
        self.label, self.total, self.enabled, self.color = label, total, enabled, color
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

        self._bar.console.print(Text(visible(line)), soft_wrap=True)
        return True

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.enabled = False  # one attempt only
        total = self.total() if callable(self.total) else self.total
        console = Console(stderr=True, no_color=not self.color, highlight=False, emoji=False,
                          markup=False, force_terminal=self.force_terminal)
        ending = TimeRemainingColumn() if total else TimeElapsedColumn()
        bar = Progress(TextColumn(self.label, markup=False), BarColumn(), count_column(), ending,
                       console=console, transient=True, redirect_stdout=False, redirect_stderr=False)
        self._task = bar.add_task(self.label, total=total or None, completed=self.completed)
        bar.start()
        self._bar = bar


class ProgressBars:
    """Several progress bars at once on stderr, one line each in one live
    display (work that runs side by side, such as the tables of a transfer),
    each with its rate in `unit`/s. Drawn as ProgressBar is: when `enabled`
    and once the work has lasted `delay` seconds."""

    def __init__(self, *, enabled: bool = True, color: bool = True, delay: float | None = None,
                 force_terminal: bool | None = None, unit: str = "rows"):
        import threading

        self.enabled, self.color, self.force_terminal, self.unit = enabled, color, force_terminal, unit
        self.delay = PROGRESS_DELAY if delay is None else delay
        self._since = time.monotonic()
        self._progress = None
        self._lock = threading.Lock()

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc) -> bool:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        return False

    def bar(self, label: str, total=None) -> _Line:
        """One line (`with bars.bar(…) as line: line.advance(n)`); `total` may be a callable."""
        return _Line(self, label, total)

    def _live(self):
        with self._lock:
            if self._progress is None and self.enabled and time.monotonic() - self._since >= self.delay:
                self._progress = _rich_progress(self.color, self.force_terminal, self.unit)
                self._progress.start()
            return self._progress


class _Line:
    def __init__(self, bars: ProgressBars, label: str, total):
        self.bars, self.label, self.total = bars, label, total
        self.completed = 0
        self._task = None

    def __enter__(self) -> _Line:
        return self

    def __exit__(self, *exc) -> bool:
        if self._task is not None and self.bars._progress is not None:
            self.bars._progress.remove_task(self._task)
        return False

    def advance(self, n: int = 1) -> None:
        self.completed += n
        progress = self.bars._live()
        if progress is None:
            return
        if self._task is None:
            total = self.total() if callable(self.total) else self.total
            self._task = progress.add_task(self.label, total=total or None, completed=self.completed)
        progress.update(self._task, completed=self.completed)


def _rich_progress(color: bool, force_terminal, unit: str):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed or 0:,.0f} {unit}/s")

    console = Console(stderr=True, no_color=not color, highlight=False, emoji=False, markup=False,
                      force_terminal=force_terminal)
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), count_column(),
                    Rate(), TimeRemainingColumn(), console=console, transient=True,
                    redirect_stdout=False, redirect_stderr=False)


def count_column():
    """Done of total as 12,000/1,000,000 (Rich's MofNCompleteColumn has no
    thousands separators)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Count(ProgressColumn):
        def render(self, task):
            total = "?" if task.total is None else f"{int(task.total):,}"
            return Text(f"{int(task.completed):,}/{total}")

    return Count()
