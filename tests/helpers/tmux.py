"""A real interactive shell under tmux, for completion as an operator meets it:
keys typed, Tab pressed, Enter pressed, the screen read back."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time

_sockets = itertools.count()


class Shell:
    """An interactive shell (`argv`, e.g. ["bash", "--rcfile", rc, "-i"]) in
    its own tmux server, started in `cwd` with exactly `env`."""

    def __init__(self, argv: list[str], *, env: dict, cwd: str):
        self.socket = f"nitejarctl-test-{os.getpid()}-{next(_sockets)}"
        command = " ".join(_quoted(a) for a in ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv])
        self._tmux("new-session", "-d", "-x", "220", "-y", "50", "-c", cwd, command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True,
                              text=True, timeout=30).stdout

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-l", text)

    def press(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J")

    def wait_for(self, predicate, what: str, timeout: float = 30.0):
        """Poll until predicate() is true (returning it); fail naming `what`."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{self.screen()}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)

    def __enter__(self) -> Shell:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _quoted(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def available(shell: str) -> bool:
    return shutil.which("tmux") is not None and shutil.which(shell) is not None
