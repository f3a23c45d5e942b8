"""The terminal, as far as output needs to know it: is a stream one, which
format is the default, may colour be used. Imports nothing heavy (the
command line uses it on every run)."""

from __future__ import annotations

import os
import sys


def isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def default_format(stream=None) -> str:
    """`table` on a terminal, `tsv` (with a header) in a pipe."""
    return "table" if isatty(stream or sys.stdout) else "tsv"


def color_allowed(no_color: bool = False, environ=None) -> bool:
    env = os.environ if environ is None else environ
    return not (no_color or "NO_COLOR" in env or env.get("TERM") == "dumb")


def interactive() -> bool:
    """A person can answer a question: stdin and stderr are terminals."""
    return isatty(sys.stdin) and isatty(sys.stderr)
