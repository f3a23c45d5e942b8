"""Shell completion scripts, database-backed candidates, and a light start-up path."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nitejarctl.cli import COMMANDS
from nitejarctl.cli.completion import script
from tests import factories as f
from tests.conftest import Run

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("rich", "peewee", "psycopg2", "nitejarctl.models", "nitejarctl.output")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_scripts_are_current(shell):
    committed = (ROOT / "completions" / f"nitejarctl.{shell}").read_text()
    printed = Run(None)("completion", shell).stdout
    assert printed == committed == script(shell) + ("" if script(shell).endswith("\n") else "\n")


def test_unknown_shell():
    result = Run(None)("completion", "tcsh")
    assert result.exit_code == 2


PROBE = """
import sys, atexit
atexit.register(lambda: sys.stderr.write(
    "LOADED:" + ",".join(m for m in HEAVY if m in sys.modules) + "\\n"))
sys.argv = ["nitejarctl"] + ARGS
from nitejarctl.cli import main
main()
"""


def _probe(args, env):
    """Run nitejarctl in a fresh interpreter; return the process and the heavy
    modules it imported."""
    code = f"HEAVY = {HEAVY!r}\nARGS = {list(args)!r}\n" + PROBE
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    line = [x for x in proc.stderr.splitlines() if x.startswith("LOADED:")][-1]
    return proc, [m for m in line[len("LOADED:"):].split(",") if m]


def _loaded_modules(args):
    return _probe(args, dict(os.environ))


def test_root_help_imports_nothing_heavy():
    proc, loaded = _loaded_modules(["--help"])
    assert proc.returncode == 0
    assert loaded == []


@pytest.mark.parametrize("group", sorted(set(COMMANDS) - {"status"}))
def test_group_help_imports_nothing_heavy(group):
    proc, loaded = _loaded_modules([group, "--help"])
    assert proc.returncode == 0, proc.stderr
    assert loaded == []


def test_every_command_has_help_and_an_example():
    import click

    from nitejarctl.cli import cli

    missing = []

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), path + [name])
            if path:
                check(cmd, path)
        else:
            check(cmd, path)

    def check(cmd, path):
        doc = cmd.help or ""
        if not doc.strip() or "Examples:" not in doc or "\b" not in doc:
            missing.append(" ".join(path))

    walk(cli, [])
    assert missing == []


def _complete(words, cword, url):
    """Candidates as bash's completion gets them: the line up to the cursor,
    and readline's word (what follows the last blank, `:` or `=`)."""
    line = words if len(words.split()) > cword else words + " "
    env = {**os.environ, "_NITEJARCTL_COMPLETE": "bash_complete", "COMP_LINE": line,
           "COMP_WORD": re.split(r"[ :=]", line)[-1], "NITEJAR_DATABASE_URL": url}
    env.pop("DATABASE_URL", None)
    proc, loaded = _probe([], env)
    values = [x.split(",", 1)[1] for x in proc.stdout.splitlines() if "," in x]
    return proc, values, loaded


def _bind(url):
    from nitejarctl.db import open_database, parse_url

    return open_database(parse_url(url))


def test_completion_lists_session_ids_from_sqlite(sqlite_url):
    db_url = sqlite_url
    _bind(db_url)
    ids = sorted(f.sprite_session(id=f"sess-{i:03d}")["id"] for i in range(60))
    f.sprite_session(id="other-1")
    proc, values, loaded = _complete("nitejarctl sessions close sess-0", 3, db_url)
    assert proc.returncode == 0
    assert values == ids[:50]
    assert loaded == []
    _, values, _ = _complete("nitejarctl sessions close sess-05", 3, db_url)
    assert values == [f"sess-05{i}" for i in range(10)]


def test_completion_from_postgres(pg_url):
    db_url = pg_url
    _bind(db_url)
    f.agent("alpha-agent", id="id-alpha")
    f.agent("beta-agent", id="id-beta")
    _, values, _ = _complete("nitejarctl memories list --agent al", 4, db_url)
    assert values == ["alpha-agent"]


def test_completion_is_silent_without_database(tmp_path):
    proc, values, _ = _complete("nitejarctl sessions close ", 3, str(tmp_path / "missing.db"))
    assert proc.returncode == 0 and values == [] and proc.stderr.startswith("LOADED:")
    assert not (tmp_path / "missing.db").exists()
    proc, values, _ = _complete("nitejarctl sessions close ", 3, "postgresql://u:pw@127.0.0.1:1/x")
    assert proc.returncode == 0 and values == [] and "pw" not in proc.stderr.replace("LOADED", "")


def test_completion_of_agents_integrations_jobs_work_items_and_summaries(sqlite_url):
    _bind(sqlite_url)
    a = f.agent("alpha-agent", id="agent-id-1")
    i = f.integration("telegram", "tg-main", id="int-1")
    wi = f.work_item("tg:chat-9", id="wi-1")
    f.job(wi["id"], a["id"], id="job-1")
    f.summary("tg:chat-9", a["id"], id="sum-1")
    cases = [("nitejarctl agents show al", 3, ["alpha-agent"]),
             ("nitejarctl agents link alpha-agent in", 4, [i["id"]]),
             ("nitejarctl integrations disable int", 3, ["int-1"]),
             ("nitejarctl jobs show jo", 3, ["job-1"]),
             ("nitejarctl jobs list --work-item wi", 4, ["wi-1"]),
             ("nitejarctl work-items list --session-key tg:", 4, ["chat-9"]),  # after readline's ':'
             ("nitejarctl work-items list --session-key tg:c", 4, ["chat-9"]),
             ("nitejarctl compaction show su", 3, ["sum-1"]),
             ("nitejarctl compaction delete sum-1 su", 4, ["sum-1"]),
             ("nitejarctl compaction run --agent al", 4, ["alpha-agent"]),
             ("nitejarctl compaction idle --session-key tg:", 4, ["chat-9"])]
    for words, cword, expected in cases:
        proc, values, loaded = _complete(words, cword, sqlite_url)
        assert (words, values, loaded) == (words, expected, [])
