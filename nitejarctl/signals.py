"""SIGINT and SIGTERM end a command, but never in the middle of a batch.

`handled()` (the root command, while a command runs) turns SIGINT into
KeyboardInterrupt and SIGTERM into errors.Terminated, as Python does for
SIGINT alone. A batch of a bulk
change runs in `deferred()`: a signal that arrives meanwhile takes effect
once the batch has committed and its rows are reported, so that what the
command says it changed is exactly what committed.
"""

from __future__ import annotations

import contextlib
import signal

from nitejarctl.errors import Terminated

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_depth = 0
_pending: int | None = None


def _raise(signum: int):
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt


def _handler(signum, frame) -> None:
    global _pending
    if _depth:
        _pending = signum
        return
    _raise(signum)


@contextlib.contextmanager
def handled():
    """Our handlers for SIGINT and SIGTERM while the block runs (from the main
    thread; elsewhere signals are left as they are)."""
    try:
        previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def deferred():
    """A signal arriving while the block runs is raised when it ends."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            _raise(signum)
