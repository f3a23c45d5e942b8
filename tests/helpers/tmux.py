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


def completion_shell(shell: str, tmp_path, url: str) -> Shell:
    """An interactive bash, zsh or fish with nitejarctl's completion loaded,
    the database named by NITEJAR_DATABASE_URL, and a shell function `argv`
    that writes the words it gets, NUL-terminated, to tmp_path/argv."""
    bindir = os.path.dirname(shutil.which("nitejarctl"))
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "TERM": "xterm", "LANG": "C.UTF-8", "PATH": f"{bindir}:/usr/bin:/bin",
           "NITEJAR_DATABASE_URL": url, "HISTFILE": "/dev/null"}
    argv_file = tmp_path / "argv"
    if shell == "bash":
        rc = home / ".bashrc"
        rc.write_text("PS1='$ '\neval \"$(nitejarctl completion bash)\"\n"
                      f"argv() {{ printf '%s\\0' \"$@\" > {argv_file}; }}\n")
        argv = ["bash", "--noprofile", "--rcfile", str(rc), "-i"]
    elif shell == "zsh":
        (home / ".zshrc").write_text("PS1='$ '\nautoload -U compinit && compinit -u\n"
                                     "eval \"$(nitejarctl completion zsh)\"\n"
                                     f"argv() {{ printf '%s\\0' \"$@\" > {argv_file}; }}\n")
        argv = ["zsh", "-i"]
    else:
        config = home / ".config" / "fish"
        config.mkdir(parents=True)
        (config / "config.fish").write_text(
            "function fish_prompt; echo '$ '; end\nfunction fish_greeting; end\n"
            "nitejarctl completion fish | source\n"
            f"function argv; printf '%s\\0' $argv > {argv_file}; end\n")
        argv = ["fish", "-i"]
    return Shell(argv, env=env, cwd=str(tmp_path))
