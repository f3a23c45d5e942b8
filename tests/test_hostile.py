"""Hostile input: every case gets the right exit code, an error of at most three
lines starting with `Error:` (no traceback, no password), and leaves the
database exactly as it was (a full dump before and after).

The database holds something for every maintenance command to do (stale and
old sessions, idle conversations, decayable and prunable memories, old
idempotency keys), so a command that went ahead instead of refusing would show
in the dump. On PostgreSQL the commands connect with a password, which must
never appear in what they print.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass

import pytest
from freezegun import freeze_time

from nitejarctl.db import open_database, parse_url
from tests import factories as f
from tests.conftest import PG_PASSWORD, PG_PASSWORD_USER, Run
from tests.helpers import tmux
from tests.helpers.dbdump import Dumper, dump

NOW = 1_790_000_000
FROZEN = "2026-09-21 14:13:20"  # NOW
HOUR, DAY = 3600, 86400
HOSTILE_NAME = "O'Brien [bold]q[/] 🚀"
SECRETS = (PG_PASSWORD, "hunter2-secret", "topsecret")


@dataclass(frozen=True)
class Case:
    args: tuple
    code: int
    err: str | None = None  # the exact stderr (None: one `Error:` line, or nothing for code 0)
    out: str | None = None  # the exact stdout, when it matters
    input: str | bytes | None = None

    def __str__(self) -> str:
        shown = " ".join(a if len(a) < 40 else a[:20] + f"…({len(a)} chars)" for a in self.args)
        return f"nitejarctl {shown}"


def problems_of(case: Case, result, before, after) -> list[str]:
    """Everything wrong with one command's result (empty when it behaved)."""
    found = []
    err, out = result.stderr, result.stdout
    if result.exit_code != case.code:
        found.append(f"exit {result.exit_code}, expected {case.code}: {err.strip()[:300]!r}")
    if "Traceback" in err + out:
        found.append("a traceback")
    for secret in SECRETS:
        if secret in err + out:
            found.append(f"the password {secret!r} is shown")
    lines = err.splitlines()
    if len(lines) > 3:
        found.append(f"{len(lines)} lines on stderr")
    if case.err is not None:
        if err != case.err:
            found.append(f"stderr {err!r}, expected {case.err!r}")
    elif case.code != 0 and not (len(lines) == 1 and lines[0].startswith("Error: ")):
        found.append(f"stderr is not one `Error:` line: {err!r}")
    if case.code != 0 and lines and not lines[-1].startswith("Error: "):
        found.append("the last line of stderr is not the error")
    if case.out is not None and out != case.out:
        found.append(f"stdout {out!r}, expected {case.out!r}")
    if after != before:
        changed = [x for x in after if x not in before][:3] + [x for x in before if x not in after][:3]
        found.append(f"the database changed: {changed!r}"[:500])
    return found


def run_cases(run: Run, url: str, cases) -> int:
    """Run every case against `url`; fail with all the problems at once."""
    failures = []
    with Dumper(url) as dumper:
        before = dumper.dump()
        for case in cases:
            with freeze_time(FROZEN):
                result = run(*case.args, input=case.input)
            after = dumper.dump()
            for problem in problems_of(case, result, before, after):
                failures.append(f"{case}: {problem}")
            before = after  # report each change once
    assert not failures, f"{len(failures)} problem(s):\n" + "\n".join(failures)
    return len(cases)


# --------------------------------------------------------------- the world


def seed():
    """Work for every maintenance command, and names that look like SQL/LIKE patterns."""
    ops = f.agent("ops", id="agent-ops", config={"memorySettings": {"decayRate": 0.2}})
    q = f.agent(HOSTILE_NAME, id="agent-q")
    f.integration("telegram", "tg", id="int-tg")
    turns = [("user", "[bold]hi[/] 🚀"), ("assistant", "'; DROP TABLE agents; --"),
             ("user", "100%"), ("assistant", "ok")]
    for key, agent in (("tg:100", ops), ("tg:50%", ops), ("tg:a_b", q)):
        f.conversation(key, agent["id"], turns, start=NOW - 3 * DAY)
        f.sprite_session(agent["id"], key, id=f"sess-{key}", last_active_at=NOW - 2 * HOUR,
                         created_at=NOW - 3 * DAY)
    f.sprite_session(ops["id"], "tg:1x0", id="sess-fresh", last_active_at=NOW - 60, created_at=NOW - DAY)
    f.sprite_session(ops["id"], "tg:1x0", id="sess-closed", status="closed", last_active_at=NOW - 3 * DAY,
                     created_at=NOW - 4 * DAY)
    f.sprite_session(q["id"], "tg:50%", id="sess-error", status="error", last_active_at=NOW - 3 * DAY,
                     created_at=NOW - 4 * DAY)
    f.memory(ops["id"], "100% sure", id="mem-weak", strength=0.05, created_at=NOW - 30 * DAY)
    f.memory(ops["id"], "[bold]x[/] :smile: '; DROP TABLE agents; --", id="mem-old", strength=0.9,
             created_at=NOW - 30 * DAY, last_accessed_at=NOW - 30 * DAY)
    f.memory(q["id"], "pinned_fact", id="mem-pinned", permanent=1, created_at=NOW - 30 * DAY)
    f.summary("tg:100", ops["id"], id="sum-1", start_time=NOW - 5 * DAY, end_time=NOW - 4 * DAY,
              compacted_at=NOW - 4 * DAY)
    f.idempotency_key("telegram:update:1", created_at=NOW - 90 * DAY)
    f.idempotency_key("github:delivery:%", created_at=NOW - DAY)


@pytest.fixture
def world(db, db_url, backend, request):
    """(run, url): the seeded database, reached with a password on PostgreSQL."""
    with freeze_time(FROZEN):
        seed()
    db.close()
    if backend == "sqlite":
        return Run(db_url), db_url
    import psycopg2

    server = request.getfixturevalue("pg_server")
    name = db_url.rsplit("/", 1)[1]
    owner = psycopg2.connect(server.url(name))
    owner.autocommit = True
    try:
        with owner.cursor() as cur:
            cur.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {PG_PASSWORD_USER}")
    finally:
        owner.close()
    url = server.url(name, PG_PASSWORD_USER, PG_PASSWORD)
    return Run(url, in_environment=True), url


# ------------------------------------------------------------------ the corpus

IDS = ["nope", "' OR 1=1 --", "'; DROP TABLE agents; --", "%", "_", "[bold]x[/]", "🚀", 'a"b\\c',
       "x" * 3000]

# command -> (what its "not found" error names, what it prints on stderr before the error)
BY_ID = {
    ("sessions", "show"): ("no sprite session with id {!r}", ""),
    ("sessions", "close"): ("no sprite session with id {!r}", "closed 0 sessions\n"),
    ("sessions", "error"): ("no sprite session with id {!r}", "marked 0 sessions as error\n"),
    ("sessions", "touch"): ("no sprite session with id {!r}", "touched 0 sessions\n"),
    ("memories", "show"): ("no memory with id {!r}", ""),
    ("memories", "pin"): ("no memory with id {!r}", ""),
    ("memories", "unpin"): ("no memory with id {!r}", ""),
    ("memories", "edit", "{}", "new text"): ("no memory with id {!r}", ""),
    ("memories", "delete", "{}", "--yes"): ("no memory with id {!r}", ""),
    ("compaction", "show"): ("no session summary with id {!r}", ""),
    ("compaction", "delete", "{}", "--yes"): ("no session summary with id {!r}", ""),
    ("agents", "show"): ("no agent with id or name {!r}", ""),
    ("agents", "update", "{}", "--status", "busy"): ("no agent with id or name {!r}", ""),
    ("agents", "delete", "{}", "--yes"): ("no agent with id or name {!r}", ""),
    ("agents", "link", "{}", "tg"): ("no agent with id or name {!r}", ""),
    ("agents", "link", "ops", "{}"): ("no integration with id or name {!r}", ""),
    ("agents", "unlink", "{}", "tg"): ("no agent with id or name {!r}", ""),
    ("integrations", "show"): ("no integration with id or name {!r}", ""),
    ("integrations", "enable"): ("no integration with id or name {!r}", ""),
    ("integrations", "disable"): ("no integration with id or name {!r}", ""),
    ("integrations", "update", "{}", "--scope", "team"): ("no integration with id or name {!r}", ""),
    ("integrations", "delete", "{}", "--yes"): ("no integration with id or name {!r}", ""),
    ("work-items", "show"): ("no work item with id {!r}", ""),
    ("jobs", "show"): ("no job with id {!r}", ""),
    ("memories", "add", "{}", "content"): ("no agent with id or name {!r}", ""),
    ("memories", "list", "--agent"): ("no agent with id or name {!r}", ""),
    ("memories", "decay", "--agent"): ("no agent with id or name {!r}", ""),
    ("memories", "prune", "--yes", "--agent"): ("no agent with id or name {!r}", ""),
    ("compaction", "run", "--agent"): ("no agent with id or name {!r}", ""),
    ("compaction", "idle", "--agent"): ("no agent with id or name {!r}", ""),
    ("sessions", "history", "tg:100", "--agent"): ("no agent with id or name {!r}", ""),
}


def unknown_id_cases():
    for pattern, (message, prelude) in BY_ID.items():
        for ref in IDS:
            args = tuple(ref if a == "{}" else a for a in pattern) if "{}" in pattern else (*pattern, ref)
            yield Case(args, 3, prelude + "Error: " + message.format(ref) + "\n")


def ignore_missing_cases():
    for args, prelude in ((("sessions", "close"), "closed 0 sessions\n"),
                          (("sessions", "touch"), "touched 0 sessions\n"),
                          (("sessions", "error"), "marked 0 sessions as error\n")):
        for ref in ("nope", "' OR 1=1 --", "%"):
            yield Case((*args, ref, "--ignore-missing"), 0,
                       prelude + f"Warning: no sprite session with id {ref!r}\n")


def _usage(cmd: str, message: str) -> str:
    return f"Error: {message} (see 'nitejarctl {cmd} --help')\n"


NOT_A_DURATION = "is not a duration (use seconds or units s, m, h, d, w, e.g. 90s, 1h30m, 7d)"
DURATION_OPTIONS = [
    ("sessions list", "--stale", ()),
    ("sessions close", "--stale", ()),
    ("sessions purge", "--older-than", ("--yes",)),
    ("compaction run", "--idle", ()),
    ("compaction idle", "--idle", ()),
    ("idempotency list", "--older-than", ()),
    ("idempotency prune", "--older-than", ("--yes",)),
    ("cleanup", "--idle", ()),
    ("cleanup", "--stale", ()),
    ("cleanup", "--purge-older-than", ()),
    ("doctor", "--stale", ()),
]
BAD_DURATIONS = {
    "soon": NOT_A_DURATION, "-5m": NOT_A_DURATION, "1h30": NOT_A_DURATION, "": NOT_A_DURATION,
    " ": NOT_A_DURATION, "1.5h": NOT_A_DURATION, "1x": NOT_A_DURATION, "1e3": NOT_A_DURATION,
    "0": "is not a positive duration", "0s": "is not a positive duration",
    "99999999999999999999": "is too long (at most 1000 years)",
    "99999999999999999999s": "is too long (at most 1000 years)",
    "100000w": "is too long (at most 1000 years)",
    "9" * 5000: "is too long (at most 1000 years)",
    "²": NOT_A_DURATION, "１h": NOT_A_DURATION, "1h\x00": NOT_A_DURATION,
}


def duration_cases():
    for cmd, option, extra in DURATION_OPTIONS:
        for value, message in BAD_DURATIONS.items():
            yield Case((*cmd.split(), option, value, *extra), 2,
                       _usage(cmd, f"Invalid value for '{option}': {value!r} {message}"))


def _range(cmd, option, value, shown, rng):
    return Case((*cmd.split(), option, value), 2,
                _usage(cmd, f"Invalid value for '{option}': {shown} is not in the range {rng}."))


def _finite(cmd, option, value, extra=()):
    return Case((*cmd.split(), option, value, *extra), 2,
                _usage(cmd, f"Invalid value for '{option}': {value!r} is not a finite number."))


def number_cases():
    yield _range("memories decay", "--rate", "-0.1", "-0.1", "x>=0.0")
    yield _range("memories decay", "--rate", "-1e-9", "-1e-09", "x>=0.0")
    yield _range("memories prune", "--below", "-1", "-1.0", "0.0<=x<=1.0")
    yield _range("memories prune", "--below", "1.5", "1.5", "0.0<=x<=1.0")
    yield _range("memories prune", "--keep", "-1", "-1", "x>=0")
    yield _range("memories list", "--min-strength", "-0.5", "-0.5", "0.0<=x<=1.0")
    yield _range("sessions list", "--limit", "0", "0", "x>=1")
    yield _range("sessions list", "--limit", "-3", "-3", "x>=1")
    yield _range("compaction run", "--limit", "0", "0", "x>=1")
    yield _range("compaction run", "--batch-size", "0", "0", "1<=x<=10000")
    yield _range("compaction run", "--batch-size", "10001", "10001", "1<=x<=10000")
    yield _range("compaction run", "--summarizer-timeout", "0", "0.0", "x>0")
    yield Case(("memories", "add", "ops", "x", "--strength", "2"), 2, _usage(
        "memories add", "Invalid value for '--strength': 2.0 is not in the range 0.0<=x<=1.0."))
    yield Case(("memories", "add", "ops", "x", "--strength", "-0.1"), 2, _usage(
        "memories add", "Invalid value for '--strength': -0.1 is not in the range 0.0<=x<=1.0."))
    yield Case(("memories", "decay", "--rate", "fast"), 2, _usage(
        "memories decay", "Invalid value for '--rate': 'fast' is not a valid float range."))
    yield Case(("sessions", "list", "--limit", "many"), 2, _usage(
        "sessions list", "Invalid value for '--limit': 'many' is not a valid integer range."))
    yield Case(("sessions", "list", "--busy-timeout", "-1"), 2, _usage(
        "sessions list", "Invalid value for '--busy-timeout': -1.0 is not in the range x>=0."))
    # Not numbers at all, though Python's float() takes them.
    for value in ("nan", "inf", "-inf", "NaN", "1e400"):
        yield _finite("memories decay", "--rate", value)
        yield _finite("memories prune", "--below", value, ("--yes",))
        yield _finite("memories list", "--min-strength", value)
        yield Case(("memories", "add", "ops", "x", "--strength", value), 2, _usage(
            "memories add", f"Invalid value for '--strength': {value!r} is not a finite number."))
        yield _finite("compaction run", "--summarizer-timeout", value)
        yield _finite("sessions list", "--busy-timeout", value)
    # Integers past what a database column holds.
    for huge in ("99999999999999999999", str(2**63), "-" + str(2**63 + 1)):
        for cmd, option, extra in (("sessions list", "--limit", ()), ("memories list", "--limit", ()),
                                   ("compaction run", "--limit", ()), ("compaction idle", "--limit", ()),
                                   ("memories prune", "--keep", ("--yes",))):
            if huge.startswith("-"):
                low = "1" if option == "--limit" else "0"
                yield Case((*cmd.split(), option, huge, *extra), 2, _usage(
                    cmd, f"Invalid value for '{option}': {huge} is not in the range x>={low}."))
            else:
                yield Case((*cmd.split(), option, huge, *extra), 2, _usage(
                    cmd, f"Invalid value for '{option}': {huge} is too large."))


def json_cases():
    bad = [
        ("{bad", "invalid JSON in --config: Expecting property name enclosed in double quotes (line 1, column 2)"),
        ("{\"a\": 1,\n \"b\": }", "invalid JSON in --config: Expecting value (line 2, column 7)"),
        ("", "invalid JSON in --config: Expecting value (line 1, column 1)"),
        ("'single'", "invalid JSON in --config: Expecting value (line 1, column 1)"),
        ('{"a": NaN}', "invalid JSON in --config: NaN is not valid JSON"),
        ('{"a": Infinity}', "invalid JSON in --config: Infinity is not valid JSON"),
        ("[1, 2]", "--config must be a JSON object ({…}), not an array"),
        ('"text"', "--config must be a JSON object ({…}), not a string"),
        ("null", "--config must be a JSON object ({…}), not null"),
        ("42", "--config must be a JSON object ({…}), not a number"),
        ("true", "--config must be a JSON object ({…}), not a boolean"),
    ]
    for text, message in bad:
        yield Case(("agents", "create", "new-agent", "--config", text), 2, f"Error: {message}\n")
        yield Case(("agents", "update", "ops", "--config", text), 2, f"Error: {message}\n")
        yield Case(("integrations", "create", "github", "gh", "--config", text), 2, f"Error: {message}\n")
        yield Case(("integrations", "update", "tg", "--config", text), 2, f"Error: {message}\n")
    yield Case(("agents", "create", "new-agent", "--config", "@-"), 2,
               "Error: invalid JSON in --config (stdin): Expecting value (line 1, column 1)\n", input="")
    yield Case(("agents", "create", "new-agent", "--config", "@-"), 2,
               "Error: --config (stdin) must be a JSON object ({…}), not an array\n", input="[]")
    yield Case(("agents", "create", "new-agent", "--config", "@-"), 2,
               "Error: cannot read --config (stdin): not UTF-8 (invalid start byte)\n", input=b"\xff\xfe{}")
    yield Case(("agents", "create", "new-agent", "--config", "@/nonexistent/agent.json"), 2,
               "Error: cannot read --config file /nonexistent/agent.json: No such file or directory\n")
    yield Case(("agents", "create", "new-agent", "--config", "@/"), 2,
               "Error: cannot read --config file /: Is a directory\n")
    yield Case(("agents", "create", "new-agent", "--config", "@"), 2,
               "Error: --config @: a file name is missing after '@'\n")
    for value, message in (
        ("=1", "--set expects dotted.key=value, got '=1' (the key is empty)"),
        ("a", "--set expects dotted.key=value, got 'a'"),
        (".a=1", "--set needs a dotted key such as memorySettings.decayRate, got '.a'"),
        ("a.=1", "--set needs a dotted key such as memorySettings.decayRate, got 'a.'"),
        ("a..b=1", "--set needs a dotted key such as memorySettings.decayRate, got 'a..b'"),
    ):
        yield Case(("agents", "update", "ops", "--set", value), 2, f"Error: {message}\n")
        yield Case(("integrations", "update", "tg", "--set", value), 2, f"Error: {message}\n")
    yield Case(("agents", "update", "ops", "--unset", ""), 2,
               "Error: --unset needs a dotted key such as memorySettings.decayRate, got ''\n")


def name_cases():
    yield Case(("agents", "create", ""), 2, "Error: the agent name must not be empty\n")
    yield Case(("agents", "create", "  \t "), 2, "Error: the agent name must not be empty\n")
    yield Case(("agents", "update", "ops", "--name", ""), 2, "Error: the agent name must not be empty\n")
    yield Case(("agents", "create", "ops"), 1, "Error: an agent named 'ops' already exists\n")
    yield Case(("agents", "update", "agent-q", "--name", "ops"), 1,
               "Error: an agent named 'ops' already exists\n")
    yield Case(("integrations", "create", "telegram", ""), 2,
               "Error: the integration name must not be empty\n")
    yield Case(("integrations", "create", "", "tg2"), 2, "Error: the integration type must not be empty\n")
    yield Case(("memories", "add", "ops", ""), 2, "Error: memory content must not be empty\n")
    yield Case(("memories", "add", "ops", "-"), 2, "Error: memory content must not be empty\n", input="")
    yield Case(("memories", "edit", "mem-old", ""), 2, "Error: memory content must not be empty\n")
    yield Case(("memories", "edit", "mem-old", " \n "), 2, "Error: memory content must not be empty\n")
    nul = "Error: memory content must not contain NUL characters\n"
    yield Case(("memories", "add", "ops", "a\x00b"), 2, nul)
    yield Case(("memories", "add", "ops", "-"), 2, nul, input="line\n\x00\n")
    yield Case(("memories", "edit", "mem-old", "-"), 2, nul, input="\x00")
    yield Case(("memories", "add", "ops", "-"), 2, "Error: cannot read the memory content from stdin: "
                                                  "not UTF-8 (invalid start byte)\n", input=b"\xff\xfe")
    yield Case(("memories", "edit", "mem-old", "-"), 2, "Error: cannot read the memory content from stdin: "
                                                       "not UTF-8 (invalid continuation byte)\n", input=b"\xc3(")


def summarizer_cases():
    message = ("Invalid value for '--summarizer': the command is empty "
               "(leave the option out for nitejar's default summary).")
    for value in ("", "   ", "\t\n"):
        yield Case(("compaction", "run", "--summarizer", value), 2, _usage("compaction run", message))


def pattern_cases():
    """`%` and `_` are literal characters in keys and searches, and case matters."""
    header = "id\tsprite_name\tsession_id\tsession_key\tagent_id\tstatus\tcreated_at\tlast_active_at\n"
    for key in ("%", "_", "tg:%", "tg:1_0", "tg:a%b", "TG:100", "tg:5_%"):
        yield Case(("sessions", "list", "--status", "all", "--session-key", key, "-o", "ids"), 0, "", "")
        yield Case(("sessions", "close", "--conversation", key, "--agent", "ops"), 0,
                   "closed 0 sessions\n", header)
        yield Case(("sessions", "close", "--conversation", key, "--agent", "ops", "--dry-run"), 0,
                   "would close 0 sessions (dry run)\n", header)
        yield Case(("compaction", "run", "--session-key", key, "-o", "ids", "-q"), 0, "", "")
        yield Case(("compaction", "run", "--session-key", key, "--agent", "ops"), 0,
                   "no idle conversations to compact\n",
                   "id\tsession_key\tagent_id\tturn_count\tstart_time\tend_time\tcompacted_at\tsummary\n")
        yield Case(("compaction", "idle", "--session-key", key, "-o", "ids"), 0, "", "")
        yield Case(("compaction", "summaries", "--session-key", key, "-o", "ids"), 0, "", "")
        yield Case(("work-items", "list", "--session-key", key, "-o", "ids"), 0, "", "")
        yield Case(("sessions", "history", key, "-o", "ids"), 0, "", "")
        yield Case(("sessions", "list", "--status", "all", "--sprite", key, "-o", "ids"), 0, "", "")
    # The literal keys do match.
    yield Case(("sessions", "list", "--status", "all", "--session-key", "tg:50%", "-o", "ids"), 0, "",
               "sess-error\nsess-tg:50%\n")
    yield Case(("sessions", "list", "--session-key", "tg:a_b", "-o", "ids"), 0, "", "sess-tg:a_b\n")
    yield Case(("compaction", "idle", "--session-key", "tg:50%", "-o", "ids"), 0, "", "tg:50%\n")
    for text, ids in (("%", "mem-weak\n"), ("_", "mem-pinned\n"), ("'", "mem-old\n"),
                      ("[bold]", "mem-old\n"), ("PINNED_", "mem-pinned\n"), ("%%", ""), ("\\", "")):
        yield Case(("memories", "list", "--search", text, "-o", "ids"), 0, "", ids)


def refusal_cases():
    refuse = "Error: refusing to delete without --yes when not on a terminal\n"
    yield Case(("sessions", "purge", "--older-than", "1d"), 2, refuse)
    yield Case(("memories", "prune"), 2, refuse)
    yield Case(("memories", "delete", "mem-old"), 2, refuse)
    yield Case(("idempotency", "prune", "--older-than", "30d"), 2, refuse)
    yield Case(("compaction", "delete", "sum-1"), 2, refuse)
    yield Case(("agents", "delete", "ops"), 2, refuse)
    yield Case(("integrations", "delete", "tg"), 2, refuse)


def encoding_cases():
    """Bytes that are not UTF-8 reach Python as surrogates ('\\udcff')."""
    bad = "bad\udcff"
    for args in (("agents", "create", bad), ("memories", "add", "ops", bad), ("sessions", "show", bad),
                 ("sessions", "close", bad), ("sessions", "list", "--session-key", bad),
                 ("memories", "list", "--search", bad), ("agents", "update", "ops", "--set", f"a={bad}"),
                 ("compaction", "run", "--summarizer", bad), ("memories", "edit", "mem-old", bad)):
        yield Case(args, 2, f"Error: an argument is not valid UTF-8: {args[-1]!r}\n")


def usage_cases():
    yield Case(("sessions", "list", "-o", "yaml"), 2, _usage(
        "sessions list", "Invalid value for '-o' / '--output': 'yaml' is not one of 'table', 'wide', "
                         "'json', 'jsonl', 'csv', 'tsv', 'ids', 'count', 'prometheus'."))
    yield Case(("sessions", "list", "-o", "prometheus"), 2, "Error: -o prometheus is only for doctor\n")
    yield Case(("sessions", "list", "--status", "' OR 1=1 --"), 2, _usage(
        "sessions list", "Invalid value for '--status': \"' OR 1=1 --\" is not one of 'active', 'closed', "
                         "'error', 'all'."))
    yield Case(("jobs", "list", "--status", "COMPLETED' --"), 2, _usage(
        "jobs list", "Invalid value for '--status': \"COMPLETED' --\" is not one of PENDING, RUNNING, "
                     "COMPLETED, FAILED, CANCELLED."))
    yield Case(("sessions", "close"), 2,
               "Error: give session ids, --stale DURATION, or --conversation SESSION_KEY --agent AGENT\n")
    yield Case(("sessions", "close", "--conversation", "tg:100"), 2,
               "Error: --conversation and --agent go together\n")
    yield Case(("sessions", "frobnicate"), 2, "Error: No such command 'frobnicate'. "
                                              "(see 'nitejarctl sessions --help')\n")


CORPUS = {
    "unknown-ids": unknown_id_cases,
    "ignore-missing": ignore_missing_cases,
    "durations": duration_cases,
    "numbers": number_cases,
    "json": json_cases,
    "names": name_cases,
    "summarizer": summarizer_cases,
    "patterns": pattern_cases,
    "refusals": refusal_cases,
    "usage": usage_cases,
    "encoding": encoding_cases,
}


@pytest.mark.parametrize("group", sorted(CORPUS))
def test_hostile_input_changes_nothing(world, group):
    run, url = world
    assert run_cases(run, url, list(CORPUS[group]())) > 0


def test_the_corpus_would_notice_a_change(world):
    """The check itself: a command that does change the database is caught."""
    run, url = world
    with pytest.raises(AssertionError, match="the database changed"):
        run_cases(run, url, [Case(("sessions", "close", "--stale", "1h"), 0)])


def test_the_corpus_size():
    counts = {name: len(list(cases())) for name, cases in CORPUS.items()}
    assert sum(counts.values()) >= 500, counts


# ------------------------------------------------------- databases that are not


DB_COMMANDS = [
    ("doctor",), ("migrate", "status"), ("sessions", "list"), ("sessions", "close", "--stale", "1h"),
    ("sessions", "close", "x"), ("sessions", "purge", "--older-than", "1d", "--yes"), ("memories", "list"),
    ("memories", "decay"), ("memories", "prune", "--yes"), ("memories", "add", "ops", "x"),
    ("compaction", "run"), ("compaction", "idle"), ("idempotency", "prune", "--older-than", "30d", "--yes"),
    ("agents", "create", "x"), ("agents", "list"), ("integrations", "list"), ("cleanup",), ("jobs", "list"),
    ("work-items", "list"), ("sessions", "history", "k"),
]


def _all_commands(url: str, code: int, error: str, *, with_migrate: bool = True,
                  in_environment: bool = False):
    run = Run(url, in_environment=in_environment)
    commands = DB_COMMANDS + ([("migrate",)] if with_migrate else [])
    return run, [Case(args, code, error) for args in commands]


def _files(path) -> dict:
    return {p.name: p.read_bytes() if p.is_file() else None for p in sorted(path.iterdir())}


def test_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am a text file\n" * 200)
    before = _files(tmp_path)
    run, cases = _all_commands(str(path), 1, f"Error: {path} is not a SQLite database (file is not a database)\n")
    failures = [f"{c}: {p}" for c in cases for p in problems_of(c, run(*c.args), [], [])]
    assert not failures, "\n".join(failures)
    assert _files(tmp_path) == before  # not a byte changed, no -wal/-journal left beside it


def test_a_directory_as_the_database(tmp_path):
    (tmp_path / "inside").write_text("x")
    before = _files(tmp_path)
    run, cases = _all_commands(str(tmp_path), 1, f"Error: {tmp_path} is a directory, not a SQLite database file\n")
    failures = [f"{c}: {p}" for c in cases for p in problems_of(c, run(*c.args), [], [])]
    assert not failures, "\n".join(failures)
    assert _files(tmp_path) == before


def test_a_missing_database_file_is_not_created(tmp_path):
    path = tmp_path / "missing.db"
    run, cases = _all_commands(str(path), 1, (
        f"Error: database file {path} does not exist (run 'nitejarctl migrate' to create it, "
        "or pass -d/--database-url)\n"), with_migrate=False)
    failures = [f"{c}: {p}" for c in cases for p in problems_of(c, run(*c.args), [], [])]
    assert not failures, "\n".join(failures)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_database_argument_is_a_usage_error(tmp_path, monkeypatch):
    # `-d "$UNSET_VARIABLE"` must not fall back to ./data/nitejar.db or DATABASE_URL.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "other.db"))
    run, cases = _all_commands("", 2, "Error: the database URL is empty\n")
    failures = [f"{c}: {p}" for c in cases for p in problems_of(c, run(*c.args), [], [])]
    assert not failures, "\n".join(failures)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url, code, error", [
    ("postgresql://ops:hunter2-secret@127.0.0.1:1/nitejar", 1,
     "Error: cannot connect to postgresql://ops:***@127.0.0.1:1/nitejar: Is the server running on that "
     "host and accepting TCP/IP connections?\n"),
    ("postgres://ops:hunter2-secret@127.0.0.1:1/nitejar?sslmode=disable", 1,
     "Error: cannot connect to postgres://ops:***@127.0.0.1:1/nitejar?sslmode=disable: Is the server "
     "running on that host and accepting TCP/IP connections?\n"),
    ("postgresql://127.0.0.1:1/nitejar?password=hunter2-secret", 1,
     "Error: cannot connect to postgresql://127.0.0.1:1/nitejar?password=***: Is the server running on "
     "that host and accepting TCP/IP connections?\n"),
    ("postgresql://ops:hunter2-secret@127.0.0.1:port/nitejar", 2,
     "Error: invalid port in database URL 'postgresql://ops:***@127.0.0.1:port/nitejar'\n"),
    ("mysql://root:topsecret@localhost/db", 2,
     "Error: unsupported database URL scheme 'mysql' in 'mysql://root:***@localhost/db' (use a file path, "
     "sqlite:///…, postgres:// or postgresql://)\n"),
    ("http://root:topsecret@localhost/db", 2,
     "Error: unsupported database URL scheme 'http' in 'http://root:***@localhost/db' (use a file path, "
     "sqlite:///…, postgres:// or postgresql://)\n"),
    ("sqlite:/relative.db", 2,
     "Error: malformed database URL: it starts with 'sqlite:' but not 'sqlite://' (use "
     "sqlite:///path/to/file.db or postgresql://user@host/db)\n"),
    ("postgres:ops:hunter2-secret@localhost/db", 2,
     "Error: malformed database URL: it starts with 'postgres:' but not 'postgres://' (use "
     "sqlite:///path/to/file.db or postgresql://user@host/db)\n"),
])
def test_unreachable_or_unsupported_urls(url, code, error, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # (in the environment: a password given with -d adds a warning, see TestLibpqConventions)
    run, cases = _all_commands(url, code, error, in_environment=True)
    failures = [f"{c}: {p}" for c in cases for p in problems_of(c, run(*c.args), [], [])]
    assert not failures, "\n".join(failures)
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_password_is_not_shown(pg_server):
    url = pg_server.url("postgres", PG_PASSWORD_USER, "hunter2-secret")
    # (the user name may come out masked too when an earlier test in this process used a
    # password that occurs in it: every password a process saw is masked everywhere)
    start = "Error: cannot connect to postgresql://"
    run, cases = _all_commands(url, 1, None, in_environment=True)
    failures = []
    for case in cases:
        result = run(*case.args)
        failures += [f"{case}: {p}" for p in problems_of(case, result, [], [])]
        if not (result.stderr.startswith(start) and "password authentication failed" in result.stderr):
            failures.append(f"{case}: {result.stderr!r}")
    assert not failures, "\n".join(failures)


EMPTY = "(the database is empty: run 'nitejarctl migrate')"
NO_AGENTS = "no such table: agents (is this a nitejar database? run 'nitejarctl migrate' or 'nitejarctl doctor')"
EMPTY_DB_ERRORS = {
    ("sessions", "list"): f"this database has no 'sprite_sessions' table {EMPTY}",
    ("sessions", "close", "--stale", "1h"): f"this database has no 'sprite_sessions' table {EMPTY}",
    ("sessions", "close", "x"): f"this database has no 'sprite_sessions' table {EMPTY}",
    ("sessions", "purge", "--older-than", "1d", "--yes"): f"this database has no 'sprite_sessions' table {EMPTY}",
    ("memories", "list"): f"this database has no 'agent_memories' table {EMPTY}",
    ("memories", "decay"): NO_AGENTS,
    ("memories", "prune", "--yes"): NO_AGENTS,
    ("memories", "add", "ops", "x"): NO_AGENTS,
    ("compaction", "run"): f"this database has no 'agents' table {EMPTY}",
    ("compaction", "idle"): f"this database has no 'agents' table {EMPTY}",
    ("idempotency", "prune", "--older-than", "30d", "--yes"): f"this database has no 'idempotency_keys' table {EMPTY}",
    ("agents", "create", "x"): NO_AGENTS,
    ("agents", "list"): f"this database has no 'agents' table {EMPTY}",
    ("integrations", "list"): f"this database has no 'integrations' table {EMPTY}",
    ("cleanup",): f"this database has no 'sprite_sessions' table {EMPTY}",
    ("jobs", "list"): f"this database has no 'jobs' table {EMPTY}",
    ("work-items", "list"): f"this database has no 'work_items' table {EMPTY}",
    ("sessions", "history", "k"): f"this database has no 'work_items' table {EMPTY}",
}


def test_a_database_without_the_tables(backend, empty_url):
    if backend == "sqlite":
        sqlite3.connect(empty_url).close()
    before = dump(empty_url)
    run = Run(empty_url)
    failures = []
    for args, message in EMPTY_DB_ERRORS.items():
        result = run(*args)
        failures += [f"{' '.join(args)}: {p}" for p in problems_of(Case(args, 1, f"Error: {message}\n"),
                                                                      result, before, dump(empty_url))]
    # doctor and migrate status report the empty database (doctor fails), and create nothing.
    doctor = run("doctor", "-o", "json")
    assert doctor.exit_code == 1 and doctor.stderr == ""
    assert run("migrate", "status", "-o", "ids").exit_code == 0
    assert dump(empty_url) == before
    assert not failures, "\n".join(failures)
    if backend == "sqlite":
        assert sorted(os.listdir(os.path.dirname(empty_url))) == ["nitejar.db"]


# ------------------------------------------------- hostile values that are valid

HOSTILE_VALUES = ["O'Brien \"q\"", "[bold]x[/] [/] [red]", ":smile: 🚀 emoji", "50% _off_ \\ back",
                  "'; DROP TABLE agents; --", "tab\tnew\nline", "${HOME} $(whoami) `id`", "x" * 100_000]


def test_hostile_values_are_stored_and_shown_exactly(run, db):
    import json

    for value in HOSTILE_VALUES:
        created = run("agents", "create", value, "-o", "json", "-q")
        assert created.exit_code == 0, created.stderr
        shown = run("agents", "show", value, "-o", "json")
        assert shown.exit_code == 0 and json.loads(shown.stdout)["name"] == value
        added = run("memories", "add", value, value, "-o", "ids", "-q")
        assert added.exit_code == 0, added.stderr
        memory = run("memories", "show", added.stdout.strip(), "-o", "json")
        assert json.loads(memory.stdout)["content"] == value
        table = run("memories", "show", added.stdout.strip(), "-o", "table")
        assert table.exit_code == 0 and "Traceback" not in table.stderr
    listed = run("agents", "list", "-o", "jsonl")
    assert sorted(json.loads(line)["name"] for line in listed.stdout.splitlines()) == sorted(HOSTILE_VALUES)


@freeze_time(FROZEN)
def test_summarizer_output_with_nul_characters(run, db):
    a = f.agent("ops")
    f.conversation("k", a["id"], [("user", "q"), ("assistant", "a")], start=NOW - DAY)
    result = run("compaction", "run", "--summarizer", "cat >/dev/null; printf 'a\\000b\\377'", "-o", "ids", "-q")
    assert result.exit_code == 0, result.stderr
    shown = run("compaction", "summaries", "-o", "jsonl")
    assert shown.stdout.splitlines()[0].count('"summary":"ab\ufffd"') == 1


def test_stdin_that_is_not_utf8_in_a_c_locale(db, db_url):
    # Python reads such stdin with surrogateescape in a C locale, unlike Click's test runner.
    import subprocess
    import sys

    f.agent("ops")
    db.close()
    before = dump(db_url)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    for args, error in (
        (["memories", "add", "ops", "-"], "Error: cannot read the memory content from stdin: not UTF-8\n"),
        (["agents", "create", "x", "--config", "@-"], "Error: cannot read --config (stdin): not UTF-8\n"),
    ):
        done = subprocess.run([sys.executable, "-m", "nitejarctl", *args, "-d", db_url], input=b'{"a": "\xff"}',
                              capture_output=True, env=env, timeout=60)
        assert (done.returncode, done.stderr.decode()) == (2, error)
    done = subprocess.run([sys.executable, "-m", "nitejarctl", "agents", "create", b"bad\xff", "-d", db_url],
                          capture_output=True, env=env, timeout=60)
    assert (done.returncode, done.stderr) == (2, b"Error: an argument is not valid UTF-8: 'bad\\udcff'\n")
    assert dump(db_url) == before


# ------------------------------------------------ secrets and the shell
#
# What an admin tool run as root on a production database must never do, one
# class each: run database text as shell code, print secrets, leak a
# password from a URL, override libpq's own conventions, write backups others
# can read or a symbolic link leads, let control characters act on the
# terminal, split an id for xargs, or hand the database's credentials to a
# summarizer.



class TestCompletionIsData:
    """Tab in a real interactive shell (tmux) over names planted in the
    database: the command line gets them quoted, Enter runs nitejarctl with
    the literal text, and nothing planted runs."""

    CASES = [  # (typed before Tab, the word the command receives)
        ("nitejarctl agents show sup", "AGENT"),
        ("nitejarctl agents show 'sup", "AGENT"),
        ('nitejarctl agents show "sup', "AGENT"),
        ("nitejarctl sessions list --session-key tg:", "KEY"),
        ("nitejarctl sessions list --session-key 'tg:c", "KEY"),
        ("nitejarctl memories list --agent=sup", "--agent=AGENT"),
        ("nitejarctl agents show evil", "CONTROLS"),
        ('nitejarctl agents show "evil', "CONTROLS"),
    ]
    SHELLS = {"bash": CASES, "zsh": CASES[:2] + CASES[3:5] + CASES[6:7], "fish": CASES[:1] + CASES[3:4]}

    @staticmethod
    def _plant(tmp_path):
        values = {"AGENT": f"support-bot$(touch {tmp_path}/owned)",
                  "KEY": f"tg:chat$(touch {tmp_path}/owned-too)`touch {tmp_path}/owned-three`",
                  "CONTROLS": "evil\x1b]0;pwned\x07 !x \u202eok *"}
        f.agent(values["AGENT"], id="agent-planted")
        f.agent(values["CONTROLS"], id="agent-controls")
        f.sprite_session("agent-planted", values["KEY"], id="sess-planted")
        return values

    @staticmethod
    def _shell(shell: str, tmp_path, url: str) -> tmux.Shell:
        return tmux.completion_shell(shell, tmp_path, url)

    @staticmethod
    def _received(sh: tmux.Shell, typed: str, argv_file) -> list[str]:
        """Type `typed`, Tab, then run the completed line under `argv` (which
        writes the words it gets): what the command would receive."""
        sh.type(typed)
        before = sh.screen()
        sh.press("Tab")
        sh.wait_for(lambda: sh.screen() != before, f"the completion of {typed!r}")
        sh.type(" end")
        sh.press("C-a")
        sh.type("argv ")
        sh.press("Enter")
        # The shell creates the file before printf writes to it: wait for the last word.
        sh.wait_for(lambda: argv_file.exists() and argv_file.read_bytes().endswith(b"\0end\0"),
                    f"the command line completed from {typed!r} to run")
        words = argv_file.read_bytes().decode().split("\0")[:-1]
        argv_file.unlink()
        return words

    @pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
    def test_tab_then_enter_runs_nothing_planted(self, shell, db, db_url, tmp_path):
        if not tmux.available(shell):
            pytest.skip(f"tmux or {shell} is not installed")
        values = self._plant(tmp_path)
        db.close()
        argv_file = tmp_path / "argv"
        with self._shell(shell, tmp_path, db_url) as sh:
            sh.wait_for(lambda: "$" in sh.screen(), "the prompt")
            for typed, expected in self.SHELLS[shell]:
                word = expected.replace("--agent=AGENT", "--agent=" + values["AGENT"])
                word = values.get(word, word)
                received = self._received(sh, typed, argv_file)
                assert received[-2:] == [word, "end"], (typed, received)
                assert received[:-2] == typed.split()[:len(received) - 2]
            # The real command: Tab, then Enter.
            sh.type("nitejarctl agents show sup")
            sh.press("Tab")
            sh.wait_for(lambda: "support-bot" in sh.screen(), "the agent's name to be completed")
            sh.type(f" -o json > {tmp_path}/shown.json; touch {tmp_path}/done")
            sh.press("Enter")
            sh.wait_for((tmp_path / "done").exists, "the command to run")
            screen = sh.screen()
        import json

        assert json.loads((tmp_path / "shown.json").read_text())["name"] == values["AGENT"]
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("owned")]
        if shell == "bash":  # what the line showed: escapes, not the characters themselves
            assert "$'\\x1b'" in screen and "\x1b" not in screen


class TestShellQuoting:
    """Every candidate, quoted for each context bash completes in, reads back
    as itself (bash itself evaluates it)."""

    TEXTS = ["support-bot$(touch /x/owned)", "a b\tc\nd", "it's \"q\" \\ `id` ${HOME} !x *?[a]{b,c} ~ #",
             "evil\x1b]52;c;Zm9v\x07\x9b2J\u202eok", "é 🚀 tg:chat-9 a=b", ""]

    @pytest.mark.parametrize("inside, before, after", [
        (None, "", ""), ("'", "'", "'"), ('"', '"', '"'), ("$'", "$'", "'")])
    def test_quoted_text_reads_back_exactly(self, inside, before, after):
        import subprocess

        from nitejarctl.cli.shell_words import quote, split_line

        for text in self.TEXTS:
            word = before + quote(text, inside) + after
            assert "\x1b" not in word and "\u202e" not in word and "\n" not in word
            done = subprocess.run(["bash", "-c", f"printf '%s\\0' {word}"], capture_output=True, timeout=30)
            assert done.stdout.decode() == text + "\0", (inside, text, word)
            assert split_line("cmd " + word)[-1].value == text


SECRET_CONFIG = {
    "botToken": "tok-SECRET-1",
    "webhook": {"url": "https://example.org/hook", "webhookSecret": "whs-SECRET-2"},
    "app": {"privateKey": "-----BEGIN SECRET-3", "client_secret": "cs-SECRET-4", "appId": 42,
            "credentials": {"user": "bot", "pass": "SECRET-5"}},
    "API_KEY": "enc:v1:SECRET-6",
    "note": "enc:v1:SECRET-7",
    "accounts": [{"name": "a", "password": "pw-SECRET-8"}, {"name": "b", "passphrase": ""}],
    "token_ttl": None,
}
MASKED_CONFIG = {
    "botToken": "***",
    "webhook": {"url": "https://example.org/hook", "webhookSecret": "***"},
    "app": {"privateKey": "***", "client_secret": "***", "appId": 42,
            "credentials": {"user": "***", "pass": "***"}},
    "API_KEY": "enc:***",
    "note": "enc:***",
    "accounts": [{"name": "a", "password": "***"}, {"name": "b", "passphrase": ""}],
    "token_ttl": None,
}


class TestSecretsAreMasked:
    """Integration secrets are never printed unless asked for, and a config
    written back with the placeholders keeps them."""

    @staticmethod
    def _stored(db_url) -> dict:
        import json

        database = open_database(parse_url(db_url))
        try:
            text = database.execute_sql("SELECT config FROM integrations WHERE name = 'tg'").fetchone()[0]
        finally:
            database.close()
        return json.loads(text)

    @staticmethod
    def _secretless(result) -> None:
        shown = result.stdout + result.stderr
        assert "SECRET" not in shown, shown

    def test_every_format_masks(self, run, db):
        import json

        f.integration("telegram", "tg", id="int-tg", config=SECRET_CONFIG)
        for fmt in ("json", "jsonl", "csv", "tsv", "table", "ids"):
            result = run("integrations", "show", "tg", "-o", fmt, env={"COLUMNS": "300"})
            assert result.exit_code == 0, result.stderr
            self._secretless(result)
        assert json.loads(run("integrations", "show", "tg", "-o", "json").stdout)["config"] == MASKED_CONFIG
        assert "***" in run("integrations", "show", "tg", "-o", "table").stdout
        revealed = run("integrations", "show", "tg", "-o", "json", "--show-secrets")
        assert json.loads(revealed.stdout)["config"] == SECRET_CONFIG
        assert revealed.stderr == ""  # the warning is for a terminal

    def test_show_secrets_warns_on_a_terminal(self, db, db_url):
        import pty
        import subprocess

        f.integration("telegram", "tg", config=SECRET_CONFIG)
        db.close()
        leader, follower = pty.openpty()
        try:
            done = subprocess.run(["nitejarctl", "-d", db_url, "integrations", "show", "tg", "--show-secrets"],
                                  stdout=follower, stderr=subprocess.PIPE, text=True, timeout=60,
                                  env={**os.environ, "COLUMNS": "200"})
        finally:
            os.close(follower)
            os.close(leader)
        assert done.returncode == 0
        assert done.stderr == "Warning: secrets are shown as stored: mind who can see this terminal\n"

    def test_a_config_written_back_keeps_the_stored_secrets(self, run, db, db_url):
        import json

        f.integration("telegram", "tg", config=SECRET_CONFIG)
        shown = json.loads(run("integrations", "show", "tg", "-o", "json").stdout)["config"]
        shown["webhook"]["url"] = "https://example.org/new"
        shown["accounts"].append({"name": "c", "password": "pw-SECRET-9"})
        updated = run("integrations", "update", "tg", "--config", "@-", "-v", input=json.dumps(shown))
        assert updated.exit_code == 0, updated.stderr
        self._secretless(updated)
        expected = json.loads(json.dumps(SECRET_CONFIG))
        expected["webhook"]["url"] = "https://example.org/new"
        expected["accounts"].append({"name": "c", "password": "pw-SECRET-9"})
        assert self._stored(db_url) == expected
        # --set with a secret value, echoed and traced with -v: never shown.
        edited = run("integrations", "update", "tg", "--set", "webhook.webhookSecret=whs-SECRET-10", "-v")
        assert edited.exit_code == 0, edited.stderr
        self._secretless(edited)
        assert self._stored(db_url)["webhook"]["webhookSecret"] == "whs-SECRET-10"

    def test_a_placeholder_where_nothing_is_stored_is_refused(self, run, db, db_url):
        f.integration("telegram", "tg", config={"botToken": "tok-SECRET-1"})
        before = dump(db_url)
        result = run("integrations", "update", "tg", "--config", '{"botToken": "***", "apiKey": "***"}')
        assert (result.exit_code, result.stderr) == (2, (
            "Error: apiKey in the config of integration 'tg' is the placeholder '***' but nothing is "
            "stored there: give the real value\n"))
        created = run("integrations", "create", "telegram", "tg2", "--config", '{"botToken": "enc:***"}')
        assert created.exit_code == 2 and "placeholder 'enc:***'" in created.stderr
        assert dump(db_url) == before

    def test_a_failing_row_is_not_echoed(self, run, db, db_url):
        # PostgreSQL quotes the whole row that breaks a constraint (DETAIL:
        # Failing row contains …): the config with its secrets.
        db.execute_sql("ALTER TABLE integrations ADD CONSTRAINT no_forbidden CHECK (scope <> 'forbidden')"
                       if db.backend == "postgresql" else
                       "CREATE TRIGGER no_forbidden BEFORE INSERT ON integrations WHEN NEW.scope = 'forbidden' "
                       "BEGIN SELECT RAISE(ABORT, 'scope forbidden'); END")
        db.close()
        before = dump(db_url)
        config = '{"botToken": "tok-SECRET-1"}'
        for extra in ((), ("-v",)):
            result = run("integrations", "create", "telegram", "x", "--config", config, "--scope", "forbidden",
                         *extra)
            assert result.exit_code == 1
            self._secretless(result)
            assert result.stderr.splitlines()[-1].startswith("Error: database error: ")
        if db.backend == "postgresql":
            assert "Failing row not shown" in result.stderr
        assert dump(db_url) == before


class TestUrlMasking:
    """The whole password of a URL, an unencoded `@` in it included, and every
    query parameter naming a password are masked in every message."""

    @pytest.mark.parametrize("url, shown", [
        ("postgresql://ops:p@ss@w0rd@db.example:5432/nitejar", "postgresql://ops:***@db.example:5432/nitejar"),
        ("postgresql://ops:pw@db/n?sslmode=require&sslpassword=key-pass&x=1",
         "postgresql://ops:***@db/n?sslmode=require&sslpassword=***&x=1"),
        ("postgres://db/n?PASSWORD=abc", "postgres://db/n?PASSWORD=***"),
        ("postgresql://ops:@db/n", "postgresql://ops:***@db/n"),
        ("postgresql://ops@db/n?application_name=a@b", "postgresql://ops@db/n?application_name=a@b"),
    ])
    def test_mask_url(self, url, shown):
        from nitejarctl.db import mask_url

        assert mask_url(url) == shown

    def test_every_message_masks(self, backend, db_url, tmp_path):
        import json

        if backend == "sqlite":
            url = f"sqlite:///{db_url}?password=p@ss@w0rd&sslpassword=key-pass"
        else:
            # Trust authentication: the password is sent for nothing, and must show nowhere.
            url = db_url.replace("postgres@", "postgres:p@ss@w0rd@") + "?sslpassword=key-pass"
        run = Run(url, in_environment=True)
        for args in (("doctor", "-o", "json"), ("migrate", "status", "-o", "json"), ("migrate",),
                     ("doctor", "-v"), ("sessions", "show", "nope")):
            result = run(*args)
            for secret in ("p@ss", "w0rd", "key-pass"):
                assert secret not in result.stdout + result.stderr, (args, result.stderr)
        report = json.loads(run("doctor", "-o", "json").stdout)
        assert "password=***" in report["database"] or "sslpassword=***" in report["database"]
        unreachable = Run("postgresql://ops:p@ss@w0rd@127.0.0.1:1/n?sslpassword=key-pass", in_environment=True)
        result = unreachable("doctor")
        assert result.stderr.startswith(
            "Error: cannot connect to postgresql://ops:***@127.0.0.1:1/n?sslpassword=***: ")


class TestLibpqConventions:
    """Only what the URL names reaches libpq: its environment, service file
    and password file apply as with psql; a password on the command line
    warns once."""

    @pytest.fixture
    def pg(self, pg_server, pg_url):
        import psycopg2

        name = pg_url.rsplit("/", 1)[1]
        conn = psycopg2.connect(pg_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("INSERT INTO agents (id, name) VALUES ('agent-here', 'here')")
            cur.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {PG_PASSWORD_USER}")
        conn.close()
        return pg_server, name

    def _agents(self, url: str, env: dict) -> str:
        result = Run(url, in_environment=True)("agents", "list", "-o", "ids", env=env)
        assert result.exit_code == 0, result.stderr
        return result.stdout

    def test_pgdatabase_and_the_service_file(self, pg, tmp_path):
        server, name = pg
        host = f"postgresql://postgres@{server.host}:{server.port}"
        assert self._agents(host, {"PGDATABASE": name}) == "agent-here\n"
        services = tmp_path / "pg_service.conf"
        services.write_text(f"[prod]\nhost={server.host}\nport={server.port}\ndbname={name}\nuser=postgres\n")
        env = {"PGSERVICEFILE": str(services)}
        assert self._agents("postgresql:///?service=prod", env) == "agent-here\n"
        migrated = Run("postgresql:///?service=prod", in_environment=True)("migrate", "-o", "json", env=env)
        assert migrated.exit_code == 0, migrated.stderr  # the named database, up to date: nothing to do
        assert '"changed": false' in migrated.stdout

    def test_pgpassword_and_the_password_file(self, pg, tmp_path):
        server, name = pg
        url = f"postgresql://{PG_PASSWORD_USER}@{server.host}:{server.port}/{name}"
        assert self._agents(url, {"PGPASSWORD": PG_PASSWORD}) == "agent-here\n"
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"{server.host}:{server.port}:*:{PG_PASSWORD_USER}:{PG_PASSWORD}\n")
        passfile.chmod(0o600)
        assert self._agents(url, {"PGPASSFILE": str(passfile)}) == "agent-here\n"
        wrong = Run(url, in_environment=True)("agents", "list", env={"PGPASSWORD": "wrong"})
        assert wrong.exit_code == 1 and "password authentication failed" in wrong.stderr

    WARNING = ("Warning: a password given with -d/--database-url is visible to every local user in the "
               "process list; use PGPASSWORD, ~/.pgpass or a service file (postgresql:///?service=NAME) "
               "instead\n")

    def test_a_password_on_the_command_line_warns_once(self, backend, db_url, request):
        if backend == "postgresql":
            server = request.getfixturevalue("pg_server")
            url = server.url(db_url.rsplit("/", 1)[1], "postgres", "unused-pw")  # trust: accepted
        else:
            url = db_url
        on_line = Run(url)("migrate", "status", "-o", "json")
        assert on_line.exit_code == 0
        assert on_line.stderr == (self.WARNING if backend == "postgresql" else "")
        in_env = Run(url, in_environment=True)("migrate", "status", "-o", "json")
        assert (in_env.exit_code, in_env.stderr) == (0, "")


class TestBackupsArePrivate:
    """migrate --backup: a new file only, never through a symbolic link, as
    private as the database, and before any change migrate makes."""

    @staticmethod
    def _backups(directory):
        return sorted(p for p in directory.iterdir() if p.name.endswith(".bak"))

    @pytest.mark.parametrize("mode, expected", [(0o600, 0o600), (0o640, 0o640), (0o755, 0o644)])
    def test_the_mode_of_the_database(self, mode, expected, tmp_path):
        path = tmp_path / "old.db"
        sqlite3.connect(path).execute("CREATE TABLE keepme (x)").connection.commit()
        path.chmod(mode)
        result = Run(str(path))("migrate", "--backup")
        assert result.exit_code == 0, result.stderr
        (backup,) = self._backups(tmp_path)
        assert oct(backup.stat().st_mode & 0o777) == oct(expected)
        assert {r[0] for r in sqlite3.connect(backup).execute("SELECT name FROM sqlite_master")} == {"keepme"}

    def test_a_planted_symbolic_link_is_not_followed(self, tmp_path):
        import time

        path = tmp_path / "old.db"
        sqlite3.connect(path).execute("CREATE TABLE keepme (x)").connection.commit()
        path.chmod(0o600)
        target = tmp_path / "elsewhere"
        before = path.read_bytes()
        with freeze_time(FROZEN):
            link = tmp_path / f"old.db.{time.strftime('%Y%m%d-%H%M%S')}.bak"
            link.symlink_to(target)  # dangling, at the predictable name
            result = Run(str(path))("migrate", "--backup")
        assert (result.exit_code, result.stderr) == (
            1, f"Error: backup file {link} is a symbolic link: refusing to overwrite it or follow it\n")
        assert not target.exists() and link.is_symlink()
        assert path.read_bytes() == before  # nothing migrated without its backup

    def test_a_drifted_schema_is_backed_up_first(self, backend, db_url, tmp_path):
        database = open_database(parse_url(db_url))
        database.execute_sql("DROP INDEX idx_sprite_sessions_status")
        database.close()
        result = Run(db_url)("migrate", "--backup")
        if backend == "postgresql":
            assert result.exit_code == 2 and "use pg_dump" in result.stderr
            return
        assert result.exit_code == 0, result.stderr
        (backup,) = self._backups(tmp_path)
        assert f"backup written to {backup}\nadded index idx_sprite_sessions_status on sprite_sessions\n" \
            in result.stderr
        indexes = {r[0] for r in sqlite3.connect(backup).execute("SELECT name FROM sqlite_master")}
        assert "idx_sprite_sessions_status" not in indexes and "idx_sprite_sessions_sprite_name" in indexes
        again = Run(db_url)("migrate", "--backup")  # nothing to change: no backup
        assert again.exit_code == 0 and len(self._backups(tmp_path)) == 1


ESC_NAME = "bot\x1b]52;c;Zm9v\x07\x1b[2J\x1b]0;title\x07\u202eevil"
ESC_SHOWN = "bot\\x1b]52;c;Zm9v\\x07\\x1b[2J\\x1b]0;title\\x07\\u202eevil"


class TestControlCharacters:
    """Escape sequences and bidi overrides from the database are shown
    escaped in tables and terminal messages; machine formats keep them."""

    @staticmethod
    def _seed():
        a = f.agent(ESC_NAME, id="agent-esc")
        f.sprite_session(a["id"], "tg:\x1b[2J", id="sess-esc", sprite_name="sprite\u202eA\x9b")
        f.conversation("tg:k", a["id"], [("user", "hi \x1b]0;owned\x07 there"), ("assistant", "ok\u202e")],
                       start=NOW - DAY)
        f.memory(a["id"], "x", id="mem\x1b[31m")

    @staticmethod
    def _raw(text: str) -> bool:
        return any(c in text for c in ("\x1b", "\x07", "\u202e", "\x9b"))

    def test_tables_and_messages(self, run, db):
        import json

        self._seed()
        wide = {"COLUMNS": "400"}
        for args in (("agents", "list"), ("sessions", "list"), ("sessions", "history", "tg:k"),
                     ("agents", "show", "agent-esc"), ("sessions", "show", "sess-esc")):
            table = run(*args, "-o", "table", env=wide)
            assert table.exit_code == 0, table.stderr
            assert not self._raw(table.stdout + table.stderr), (args, table.stdout)
        assert ESC_SHOWN in run("agents", "list", "-o", "table", env=wide).stdout
        assert "\\x1b]0;owned\\x07" in run("sessions", "history", "tg:k", "-o", "table", env=wide).stdout
        # A message on stderr that names a value as it is.
        edited = run("memories", "edit", "mem\x1b[31m", "new text")
        assert edited.exit_code == 0 and edited.stderr == "edited memory mem\\x1b[31m\n"
        missing = run("agents", "show", ESC_NAME + "x")
        assert missing.exit_code == 3 and not self._raw(missing.stderr)
        # Machine formats keep the data exact.
        listed = [json.loads(line) for line in run("agents", "list", "-o", "jsonl").stdout.splitlines()]
        assert ESC_NAME in [row["name"] for row in listed]
        assert ESC_NAME in run("agents", "list", "-o", "tsv").stdout


class TestIdsAreOneLineEach:
    """-o ids escapes as TSV does: an id holding a tab or a newline is still
    one line, one xargs argument."""

    def test_ids_with_tabs_and_newlines(self, run, db, tmp_path):
        import subprocess

        for sid in ("plain", "tab\there", "new\nline", "back\\slash", "cr\rx"):
            f.sprite_session("agent-1", id=sid)
        result = run("sessions", "list", "-o", "ids")
        assert sorted(result.stdout.splitlines()) == sorted(
            ["plain", "tab\\there", "new\\nline", "back\\\\slash", "cr\\rx"])
        args = subprocess.run(["xargs", "-n1", "printf", "%s\\0"], input=result.stdout, capture_output=True,
                              text=True, timeout=30).stdout.split("\0")[:-1]
        assert len(args) == 5
        shown = run("sessions", "show", "tab\there", "-o", "ids")
        assert shown.stdout == "tab\\there\n"


class TestSummarizerEnvironment:
    """The summarizer gets the transcript, not the database's credentials."""

    def test_withheld_variables(self, run, db, tmp_path):
        a = f.agent("ops")
        f.conversation("tg:k", a["id"], [("user", "q"), ("assistant", "a")], start=NOW - DAY)
        seen = tmp_path / "env"
        env = {"NITEJAR_DATABASE_URL": "postgresql://u:pw-1@h/db", "DATABASE_URL": "postgresql://u:pw-2@h/db",
               "PGPASSWORD": "pw-3", "PGPASSFILE": "/root/.pgpass", "PGSERVICEFILE": "/etc/pg_service.conf",
               "NITEJAR_HARMLESS": "kept"}
        with freeze_time(FROZEN):
            result = run("compaction", "run", "--summarizer", f"env > {seen}; echo a summary", "-q", env=env)
        assert result.exit_code == 0, result.stderr
        names = {line.split("=", 1)[0] for line in seen.read_text().splitlines() if "=" in line}
        assert not names & {"NITEJAR_DATABASE_URL", "DATABASE_URL", "PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE"}
        assert {"NITEJAR_HARMLESS", "NITEJAR_SESSION_KEY", "NITEJAR_AGENT_ID", "PATH"} <= names
        assert "pw-" not in seen.read_text()
