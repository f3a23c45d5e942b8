"""First contact on a terminal: bare groups, suggestions, singular aliases,
`help`, and `version`."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Run
from tests.helpers.terminal import on_terminal

GROUPS = ["sessions", "agents", "memories", "integrations", "jobs", "work-items", "compaction",
          "idempotency", "repair"]
ALIASES = {"session": "sessions", "agent": "agents", "memory": "memories", "integration": "integrations",
           "job": "jobs", "work-item": "work-items", "summary": "compaction"}


# ------------------------------------------------------------------ bare groups


def test_bare_nitejarctl_prints_its_help_as_help_does():
    screen = on_terminal(columns=100)
    assert screen.code == 0
    assert screen.text == on_terminal("--help", columns=100).text
    assert screen.text.startswith("Usage: nitejarctl [OPTIONS] COMMAND [ARGS]...\n\n  Admin and maintenance")
    assert "Error" not in screen.text
    assert "\nCommands:\n  migrate " in screen.text and "\n  Exit codes:\n" in screen.text
    assert max(len(line) for line in screen.text.splitlines()) <= 100  # formatted for the terminal


@pytest.mark.parametrize("group", GROUPS)
def test_a_bare_group_prints_its_help_on_stdout_and_exits_0(group):
    result = Run(None)(group)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == Run(None)(group, "--help").stdout
    assert result.stdout.startswith(f"Usage: nitejarctl {group} [OPTIONS] COMMAND [ARGS]...\n")


def test_a_bare_group_on_a_terminal_is_formatted():
    screen = on_terminal("sessions", columns=80)
    assert screen.code == 0
    assert screen.text == on_terminal("sessions", "--help", columns=80).text
    assert "\nCommands:\n  close " in screen.text and "Error" not in screen.text


def test_global_options_without_a_command_print_the_help():
    result = Run(None)("-q", "-o", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == Run(None)("--help").stdout


# ------------------------------------------------------------------ suggestions


def test_a_mistyped_group_is_suggested_at_the_top_level():
    result = Run(None)("sesions", "list")
    assert result.exit_code == 2
    assert result.stderr == ("Error: No such command 'sesions'. Did you mean 'sessions'? "
                             "(see 'nitejarctl --help')\n")
    assert Run(None)("compacton").stderr.startswith("Error: No such command 'compacton'. Did you mean "
                                                    "'compaction'?")


def test_suggestions_in_groups_and_on_a_terminal():
    assert Run(None)("sessions", "lst").stderr == ("Error: No such command 'lst'. Did you mean 'list'? "
                                                   "(see 'nitejarctl sessions --help')\n")
    screen = on_terminal("memorys", "list")
    assert screen.code == 2
    assert screen.text == ("Error: No such command 'memorys'. Did you mean 'memories'? "
                           "(see 'nitejarctl --help')\n")


def test_nothing_close_is_no_suggestion():
    assert Run(None)("frobnicate").stderr == "Error: No such command 'frobnicate'. (see 'nitejarctl --help')\n"


# ---------------------------------------------------------------------- aliases


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_singular_aliases_are_the_group(alias):
    result = Run(None)(alias, "--help")
    assert result.exit_code == 0
    group = Run(None)(ALIASES[alias], "--help").stdout
    assert result.stdout == group.replace(f"nitejarctl {ALIASES[alias]} ", f"nitejarctl {alias} ", 1)


def test_aliases_are_hidden_from_the_help_and_completion():
    shown = Run(None)("--help").stdout
    commands = shown.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    names = [line.split()[0] for line in commands.splitlines()]
    assert not set(ALIASES) & set(names)
    assert {"sessions", "query", "version", "help"} <= set(names)
    assert _complete("nitejarctl sess") == "plain,sessions\n"  # not session
    assert _complete("nitejarctl wor") == "plain,work-items\n"


def _complete(line: str) -> str:
    import os
    import subprocess

    from tests.helpers.terminal import nitejarctl

    env = {**os.environ, "_NITEJARCTL_COMPLETE": "bash_complete", "COMP_LINE": line,
           "COMP_WORD": line.rsplit(" ", 1)[-1]}
    return subprocess.run(nitejarctl(), env=env, capture_output=True, text=True, timeout=60).stdout


def test_an_alias_and_help_complete_the_commands_of_the_group():
    assert _complete("nitejarctl session cl") == "plain,close\n"
    assert _complete("nitejarctl help ses") == "plain,sessions\n"
    assert _complete("nitejarctl help sessions c") == "plain,close\n"
    assert _complete("nitejarctl help doctor ").strip() == ""  # no subcommands: no candidates


def test_an_alias_runs_the_command(run, db):
    from tests import factories as f

    f.sprite_session(session_key="k1")
    assert run("session", "list", "-o", "json").stdout == run("sessions", "list", "-o", "json").stdout
    assert len(json.loads(run("session", "list", "-o", "json").stdout)) == 1


# ------------------------------------------------------------------------- help


def test_help_without_a_command_is_the_root_help():
    result = Run(None)("help")
    assert (result.exit_code, result.stdout) == (0, Run(None)("--help").stdout)


@pytest.mark.parametrize("path", [["sessions"], ["sessions", "close"], ["migrate", "status"], ["query"]])
def test_help_of_a_command_is_its_help(path):
    result = Run(None)("help", *path)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == Run(None)(*path, "--help").stdout


def test_help_through_an_alias_and_on_a_terminal():
    screen = on_terminal("help", "session", "close", columns=80)
    assert screen.code == 0
    assert screen.text.startswith("Usage: nitejarctl session close [OPTIONS] [ID]...\n")
    assert screen.text == on_terminal("session", "close", "--help", columns=80).text


def test_help_of_an_unknown_command_suggests():
    result = Run(None)("help", "sesions")
    assert result.exit_code == 2
    assert result.stderr == "Error: No such command 'sesions'. Did you mean 'sessions'? (see 'nitejarctl --help')\n"
    deeper = Run(None)("help", "sessions", "clsoe")
    assert deeper.stderr.startswith("Error: No such command 'clsoe'. Did you mean 'close'?")
    beyond = Run(None)("help", "doctor", "extra")
    assert beyond.exit_code == 2
    assert beyond.stderr.startswith("Error: 'nitejarctl doctor' has no subcommands (no 'extra')")


@pytest.mark.parametrize("args, meant, path", [
    (["migrate", "stauts"], "status", "nitejarctl migrate"),
    (["session", "lst"], "list", "nitejarctl session"),
    (["memories", "prnue"], "prune", "nitejarctl memories"),
    (["compaction", "summries"], "summaries", "nitejarctl compaction"),
    (["hlep"], "help", "nitejarctl"),
    (["qurey", "SELECT 1"], "query", "nitejarctl"),
])
def test_every_level_suggests(args, meant, path):
    result = Run(None)(*args)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: No such command {args[len(path.split()) - 1]!r}. Did you mean {meant!r}? "
                             f"(see '{path} --help')\n")
