"""Named databases: config.toml, -d @NAME, NITEJARCTL_CONTEXT, config list."""

import json

import pytest

from tests import factories as f
from tests.conftest import Run


@pytest.fixture
def config_home(tmp_path):
    home = tmp_path / "config"
    (home / "nitejarctl").mkdir(parents=True)
    return home


def _write(home, text: str) -> None:
    (home / "nitejarctl" / "config.toml").write_text(text)


def _run(home, *args, env=None):
    return Run(None)(*args, env={"XDG_CONFIG_HOME": str(home), "NITEJAR_DATABASE_URL": "",
                                 "DATABASE_URL": "", "NITEJARCTL_CONTEXT": "", **(env or {})})


@pytest.fixture
def named(db, db_url, config_home, tmp_path):
    f.agent("ops", id="agent-ops")
    db.close()
    _write(config_home, f'[databases.prod]\nurl = "{db_url}"\ndescription = "production"\n\n'
                        f'[databases.other]\nurl = "{tmp_path / "other.db"}"\n')
    return config_home


def test_at_name_picks_a_named_database(named):
    result = _run(named, "-d", "@prod", "agents", "list", "-o", "ids")
    assert (result.exit_code, result.stdout) == (0, "agent-ops\n"), result.stderr
    after = _run(named, "agents", "list", "-o", "ids", "-d", "@prod")  # after the command too
    assert after.stdout == "agent-ops\n"


def test_the_context_names_the_default_and_an_option_still_wins(named, tmp_path):
    result = _run(named, "agents", "list", "-o", "ids", env={"NITEJARCTL_CONTEXT": "prod"})
    assert (result.exit_code, result.stdout) == (0, "agent-ops\n"), result.stderr
    # The context is nitejarctl's own: it wins over the URLs nitejar's environment sets.
    also = _run(named, "agents", "list", "-o", "ids",
                env={"NITEJARCTL_CONTEXT": "@prod", "NITEJAR_DATABASE_URL": str(tmp_path / "no.db")})
    assert also.stdout == "agent-ops\n"
    explicit = _run(named, "-d", "@other", "agents", "list", env={"NITEJARCTL_CONTEXT": "prod"})
    assert explicit.exit_code == 1 and "agent-ops" not in explicit.stdout  # other.db does not exist
    doctor = _run(named, "doctor", "-o", "json", env={"NITEJARCTL_CONTEXT": "prod"})
    assert json.loads(doctor.stdout)["source"] == "NITEJARCTL_CONTEXT=prod"


def test_config_list_shows_them_masked(named, config_home, db_url):
    listed = _run(named, "config", "list", "-o", "json", env={"NITEJARCTL_CONTEXT": "prod"})
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["current"], r["description"]) for r in rows] == [
        ("prod", True, "production"), ("other", False, "")]
    assert rows[0]["url"] == db_url  # holds no password
    _write(config_home, '[databases.leaky]\nurl = "postgresql://u:hunter2@db/x?sslpassword=pw2"\n')
    leaky = _run(config_home, "config", "list", "-o", "tsv")
    assert leaky.exit_code == 0
    assert leaky.stdout == "name\turl\tdescription\tcurrent\nleaky\tpostgresql://u:***@db/x?sslpassword=***\t\t0\n"
    assert "hunter2" not in leaky.stderr and "pw2" not in leaky.stderr
    assert leaky.stderr.startswith("Warning: the URL of 'leaky' holds a password")


def test_a_password_in_the_file_is_refused(config_home):
    _write(config_home, '[databases.leaky]\nurl = "postgresql://u:hunter2@127.0.0.1:1/x"\n')
    result = _run(config_home, "-d", "@leaky", "agents", "list")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: ") and "holds a password" in result.stderr
    assert "hunter2" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_libpq_keyword_password_is_masked_and_refused(config_home):
    # Not a URL nitejarctl reads, but its password must neither be used nor shown.
    _write(config_home, '[databases.kw]\nurl = "host=db password=hunter2 dbname=x"\n'
                        '[databases.quoted]\nurl = "host=db PassWord = \'a b\\\\\'hunter3\' dbname=x"\n')
    listed = _run(config_home, "config", "list", "-o", "tsv")
    assert listed.exit_code == 0
    assert listed.stdout == ("name\turl\tdescription\tcurrent\nkw\thost=db password=*** dbname=x\t\t0\n"
                             "quoted\thost=db PassWord = *** dbname=x\t\t0\n")
    assert "hunter" not in listed.stderr and listed.stderr.count("holds a password") == 2
    used = _run(config_home, "-d", "@kw", "agents", "list")
    assert (used.exit_code, used.stdout) == (2, "")
    assert "holds a password" in used.stderr and "hunter2" not in used.stderr


def test_query_and_version_use_the_named_database(named, backend):
    query = _run(named, "-d", "@prod", "query", "SELECT name FROM agents", "-o", "tsv")
    assert (query.exit_code, query.stdout) == (0, "name\nops\n"), query.stderr
    version = _run(named, "version", "-o", "json", env={"NITEJARCTL_CONTEXT": "prod"})
    database = json.loads(version.stdout)["database"]
    assert version.exit_code == 0
    assert (database["source"], database["reachable"], database["backend"]) == \
        ("NITEJARCTL_CONTEXT=prod", True, "sqlite" if backend == "sqlite" else "postgresql")
    helped = _run(named, "-d", "@prod", "help", "config", "list")
    assert helped.exit_code == 0 and "List the named databases" in helped.stdout
    aliased = _run(named, "-d", "@prod", "agent", "list", "-o", "ids")
    assert (aliased.exit_code, aliased.stdout) == (0, "agent-ops\n")


@pytest.mark.parametrize("text, message", [
    (None, "no database named 'prod' in {path}, which does not exist"),
    ('[databases.a]\nurl = "x.db"\n', "no database named 'prod' in {path} (named there: a)"),
    ("[databases\n", "{path} is not valid TOML: "),
    ("databases = 3\n", "{path}: 'databases' must be a table"),
    ("[databases.prod]\ndescription = 'no url'\n", "{path}: [databases.prod] needs url = "),
    ('[databases.prod]\nurl = "   "\n', "{path}: [databases.prod] needs url = "),
])
def test_an_unknown_name_or_a_bad_file_is_one_clear_error(config_home, text, message):
    path = config_home / "nitejarctl" / "config.toml"
    if text is not None:
        path.write_text(text)
    result = _run(config_home, "-d", "@prod", "agents", "list")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: " + message.format(path=path)), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_file_that_is_not_utf8_or_unreadable(config_home):
    (config_home / "nitejarctl" / "config.toml").write_bytes(b"\xff\xfe[databases]")
    result = _run(config_home, "config", "list")
    assert result.exit_code == 2 and result.stderr.startswith("Error: ")


def test_completion_uses_the_named_database(named):
    import os

    from tests.test_completion import _probe

    env = {**os.environ, "XDG_CONFIG_HOME": str(named), "_NITEJARCTL_COMPLETE": "bash_complete",
           "COMP_LINE": "nitejarctl -d @prod agents show o", "COMP_WORD": "o"}
    env.pop("NITEJAR_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    proc, loaded = _probe([], env)
    assert proc.stdout.splitlines() == ["plain,ops"]
