"""Completion offers what the command can act on, most relevant first, with
descriptions (status, age, agent) for zsh and fish: in-process answers on
both backends, and real shells under tmux."""

import os
import time

import pytest

from tests import factories as f
from tests.helpers import tmux
from tests.test_completion import _complete, _probe

NOW = int(time.time())
HOUR = 3600


@pytest.fixture
def fleet(db):
    now = int(time.time())  # ages are read minutes after import on a busy machine
    f.agent("ops", id="agent-ops")
    for sid, status, idle in (("s-new", "active", 1), ("s-old", "active", 5), ("s-mid", "active", 3),
                              ("s-shut", "closed", 9)):
        f.sprite_session("agent-ops", "tg:1", id=sid, status=status, last_active_at=now - idle * HOUR)
    f.sprite_session("agent-gone", "tg:2", id="s-orphan", last_active_at=now - 2 * HOUR)
    f.summary("tg:1", "agent-ops", id="sum-old", compacted_at=now - 2 * HOUR)
    f.summary("tg:2", "agent-ops", id="sum-new", compacted_at=now - 60)
    db.close()


def _zsh(words: str, url: str) -> list[tuple[str, str]]:
    """(value, description) as the zsh script reads them."""
    env = {**os.environ, "_NITEJARCTL_COMPLETE": "zsh_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
           "NITEJAR_DATABASE_URL": url}
    proc, loaded = _probe([], env)
    assert proc.returncode == 0 and set(loaded) <= {"psycopg2"}  # psycopg2 itself, for PostgreSQL
    fields = proc.stdout.split("\0")[:-1]
    return [(fields[i + 1], fields[i + 2]) for i in range(0, len(fields), 3)]


def _fish(words: str, url: str) -> list[str]:
    env = {**os.environ, "_NITEJARCTL_COMPLETE": "fish_complete", "COMP_WORDS": words,
           "COMP_CWORD": "" if words.endswith(" ") else words.split()[-1], "NITEJAR_DATABASE_URL": url}
    proc, loaded = _probe([], env)
    assert proc.returncode == 0 and set(loaded) <= {"psycopg2"}
    return [line for line in proc.stdout.splitlines() if line]


def test_close_and_touch_offer_active_sessions_longest_idle_first(fleet, db_url):
    for command in ("close", "touch", "error"):
        proc, values, loaded = _complete(f"nitejarctl sessions {command} ", 3, db_url)
        assert (values, set(loaded) <= {"psycopg2"}) == (["s-old", "s-mid", "s-orphan", "s-new"], True), command
    _, values, _ = _complete("nitejarctl sessions close s-o", 3, db_url)
    assert values == ["s-old", "s-orphan"]
    # show acts on any session: in id order (an index range, fast at any size).
    _, values, _ = _complete("nitejarctl sessions show ", 3, db_url)
    assert values == ["s-mid", "s-new", "s-old", "s-orphan", "s-shut"]


def test_zsh_and_fish_describe_each_candidate(fleet, db_url):
    assert _zsh("nitejarctl sessions close ", db_url) == [
        ("s-old", "active, 5h ago, ops"), ("s-mid", "active, 3h ago, ops"),
        ("s-orphan", "active, 2h ago"), ("s-new", "active, 1h ago, ops")]
    assert _fish("nitejarctl sessions touch s-o", db_url) == [
        "plain,s-old\tactive, 5h ago, ops", "plain,s-orphan\tactive, 2h ago"]
    assert _fish("nitejarctl compaction show ", db_url) == [
        "plain,sum-new\ttg:2, 1m ago, ops", "plain,sum-old\ttg:1, 2h ago, ops"]


def test_descriptions_are_plain_short_text(db, db_url):
    f.agent("evil\x1b]0;pwned\x07\tname\n" + "x" * 100, id="agent-evil")
    f.sprite_session("agent-evil", "k", id="s-evil", last_active_at=NOW)
    db.close()
    ((value, description),) = _zsh("nitejarctl sessions close ", db_url)
    assert value == "s-evil"
    assert description.isprintable() and len(description) <= 61 and description.endswith("…")
    assert description.startswith("active, ") and " ago, evil ]0;pwned name xxx" in description


def test_still_silent_without_a_database(tmp_path):
    assert _zsh("nitejarctl sessions close ", str(tmp_path / "none.db")) == []
    assert _fish("nitejarctl compaction show ", str(tmp_path / "none.db")) == []


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_a_real_shell_lists_them_in_order_with_descriptions(shell, fleet, db_url, tmp_path):
    if not tmux.available(shell):
        pytest.skip(f"tmux or {shell} is not installed")
    with tmux.completion_shell(shell, tmp_path, db_url) as sh:
        sh.wait_for(lambda: "$" in sh.screen(), "the prompt")
        sh.type("nitejarctl sessions close ")
        sh.press("Tab")  # the common start, s-, then the list
        sh.wait_for(lambda: "close s-" in sh.screen(), "the common start of the candidates")
        sh.press("Tab")
        screen = sh.wait_for(lambda: "s-orphan" in sh.screen() and sh.screen(), "the candidates")
        listed = "\n".join(screen.splitlines()[1:])  # below the command line
        for sid, description in (("s-old", "active, 5h ago, ops"), ("s-new", "active, 1h ago, ops")):
            line = next(line for line in listed.splitlines() if sid in line)
            assert description in line.partition(sid)[2], screen
        assert "s-shut" not in screen
        assert listed.index("s-old") < listed.index("s-mid") < listed.index("s-new"), screen


def test_lookups_are_read_only(fleet, db_url):
    from nitejarctl.db import parse_url
    from nitejarctl.db.quick import _run

    target = parse_url(db_url)
    with pytest.raises(Exception, match="(?i)read.?only"):
        _run(target, 'DELETE FROM "sprite_sessions" WHERE {match}', '"id"', "s-")
    assert [v for v, *_ in _zsh("nitejarctl sessions show s-", db_url)] == [
        "s-mid", "s-new", "s-old", "s-orphan", "s-shut"]  # nothing was deleted


def test_a_locked_database_answers_at_once_and_silently(fleet, db_url, backend):
    """A writer holding its lock does not hold up a Tab: SQLite reads beside it
    (WAL); a PostgreSQL table locked outright gives no candidates within about
    a second, and no message."""
    from tests.test_completion import _bind

    db = _bind(db_url)
    db.begin()
    if backend == "sqlite":
        db.execute_sql("UPDATE sprite_sessions SET status = 'closed' WHERE id = 's-old'")
    else:
        db.execute_sql("LOCK TABLE sprite_sessions IN ACCESS EXCLUSIVE MODE")
    try:
        env = {**os.environ, "_NITEJARCTL_COMPLETE": "zsh_complete", "COMP_WORDS": "nitejarctl sessions close ",
               "COMP_CWORD": "3", "NITEJAR_DATABASE_URL": db_url}
        started = time.monotonic()
        proc, _ = _probe([], env)
        elapsed = time.monotonic() - started
    finally:
        db.rollback()
        db.close()
    assert proc.returncode == 0
    assert [line for line in proc.stderr.splitlines() if not line.startswith("LOADED:")] == []  # silent
    values = proc.stdout.split("\0")[:-1][1::3]
    # SQLite: the committed rows, s-old still active (the writer has not committed).
    assert values == (["s-old", "s-mid", "s-orphan", "s-new"] if backend == "sqlite" else [])
    assert elapsed < 5, elapsed
