"""Running a `--summarizer` command for one conversation."""

from __future__ import annotations

import os
import signal
import subprocess

from nitejarctl import signals

DEFAULT_SUMMARIZER_TIMEOUT = 120.0


# What the summarizer must not inherit: where the database is and how to log
# in to it. It gets the transcript, not the database.
WITHHELD = ("NITEJAR_DATABASE_URL", "DATABASE_URL", "PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE")


def summarizer_environment(environ=None, **extra: str) -> dict:
    """nitejarctl's environment without WITHHELD's variables, plus `extra`
    (NITEJAR_SESSION_KEY, NITEJAR_AGENT_ID)."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k not in WITHHELD}
    env.update(extra)
    return env


class SummarizerFailed(Exception):
    """The summarizer command failed for one conversation (the reason is the message)."""


def run_summarizer(command: str, transcript: str, *, timeout: float, env: dict | None = None) -> str:
    """Run `sh -c command` with the transcript on stdin; its stripped stdout is
    the summary. A time limit, a non-zero exit or empty output raise
    SummarizerFailed. The command gets its own process group, killed whole on
    timeout (so a pipeline's children do not linger holding the pipes)."""
    held = sorted(name for name, value in (env or {}).items() if "\x00" in name + value)
    if held:
        # No environment can carry a NUL (nitejar's session keys may hold one).
        raise SummarizerFailed(f"cannot run the summarizer: {', '.join(held)} would hold a NUL "
                               "character, which no environment variable can")
    proc = None
    try:
        # A signal arriving while the child starts waits until `proc` is known,
        # so that the child's group is killed with it, never left behind.
        with signals.deferred():
            try:
                proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True, env=env)
            except (OSError, ValueError) as exc:
                raise SummarizerFailed(f"cannot run the summarizer: {exc.strerror or exc}") from None
        out, err = proc.communicate(transcript.encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise SummarizerFailed(f"summarizer timed out after {timeout:g}s") from None
    except BaseException:
        if proc is not None:
            _kill_group(proc)
        raise
    if proc.returncode < 0:
        raise SummarizerFailed(f"summarizer killed by signal {-proc.returncode}")
    if proc.returncode != 0:
        detail = _last_line(err)
        raise SummarizerFailed(f"summarizer exited with status {proc.returncode}"
                               + (f": {detail}" if detail else ""))
    # NUL is no text (PostgreSQL refuses it in a text column): drop it.
    summary = out.decode("utf-8", "replace").replace("\x00", "").strip()
    if not summary:
        raise SummarizerFailed("summarizer printed nothing")
    return summary


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a grandchild left the group and holds a pipe
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


def _last_line(raw: bytes) -> str:
    lines = [line.strip() for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
