"""The collector over the program's life (nitejarctl.startup): paused while it
starts, collecting once the database is open, garbage gone before it exits."""

from __future__ import annotations

import gc
import subprocess
import sys

# Runs the program as its console script does, watching the collector from
# the moment the database opens; an object in a reference cycle made as the
# database closes is garbage the process must still finalize before it ends.
DRIVER = r"""
import gc, sys
from nitejarctl.cli import context, main

opened = context.Settings.database
seen = {}

class Cycle:
    def __init__(self):
        self.me = self
    def __del__(self):
        sys.stderr.write("finalized\n")

def database(self, **kwargs):
    if not seen:
        seen["before"] = gc.isenabled()
        db = opened(self, **kwargs)
        seen["after"] = gc.isenabled()
        seen["frozen"] = gc.get_freeze_count()
        sys.stderr.write(f"before={seen['before']} after={seen['after']} frozen={seen['frozen']}\n")
        return db
    return opened(self, **kwargs)

closed = context.Settings.close

def close(self):
    closed(self)
    Cycle()

context.Settings.database = database
context.Settings.close = close
sys.argv = ["nitejarctl", *sys.argv[1:]]
main()
"""


def _program(*args):
    return subprocess.run([sys.executable, "-c", DRIVER, *args], capture_output=True, text=True, timeout=120)


def test_the_program_collects_from_the_moment_its_database_is_open(db_url):
    done = _program("-d", db_url, "idempotency", "prune", "--older-than", "3650d", "--yes", "-o", "count")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "0\n"
    state = done.stderr.splitlines()[0].split()
    assert state[:2] == ["before=False", "after=True"]
    assert int(state[2].removeprefix("frozen=")) > 10_000  # start-up's objects: never walked again
    # garbage made at the very end is collected, its finalizer run, before the process ends
    assert done.stderr.splitlines()[-1] == "finalized"
    assert done.stderr.count("finalized") == 1


def test_a_failing_command_still_ends_the_same_way(db_url):
    done = _program("-d", db_url, "sessions", "close", "no-such-session")
    assert done.returncode != 0
    assert "finalized" in done.stderr.splitlines()
    assert "Traceback" not in done.stderr


def test_commands_run_in_process_leave_the_collector_as_it_was(run):
    frozen = gc.get_freeze_count()
    assert gc.isenabled()
    result = run("idempotency", "prune", "--older-than", "3650d", "--yes", "-o", "count")
    assert result.exit_code == 0, result.output
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
