"""Running the installed nitejarctl on a pseudo-terminal, as an operator does."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest


@dataclass
class Screen:
    code: int
    text: str  # what the terminal shows: stdout and stderr as they arrived, "\r\n" made "\n"


def nitejarctl() -> list[str]:
    exe = shutil.which("nitejarctl")
    return [exe] if exe else [sys.executable, "-m", "nitejarctl"]


def on_terminal(*args, columns: int = 120, answer: str | None = None, env=None) -> Screen:
    """Run `nitejarctl ARGS` under script(1): stdin, stdout and stderr are a
    terminal `columns` wide; `answer` is typed at it (a prompt's reply)."""
    if shutil.which("script") is None:
        pytest.skip("script(1) is not installed")
    command = shlex.join([*nitejarctl(), *map(str, args)])
    environ = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm", **(env or {})}
    environ.pop("NO_COLOR", None)
    done = subprocess.run(["script", "-qec", command, "/dev/null"], input=answer or "",
                          capture_output=True, text=True, env=environ, timeout=120)
    return Screen(done.returncode, done.stdout.replace("\r\n", "\n"))
