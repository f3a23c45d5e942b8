"""Global options, error translation and exit codes of the root command."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import PG_PASSWORD, PG_PASSWORD_USER, Run


def test_version_and_help():
    run = Run(None)
    from nitejarctl import __version__

    assert run("--version").stdout.splitlines()[0].split() == ["nitejarctl", __version__]
    short = run("-h")
    assert short.exit_code == 0 and "Exit codes:" in short.stdout
    assert "130  interrupted" in short.stdout


@pytest.mark.parametrize("args", [
    ["-o", "json", "doctor"],
    ["doctor", "-o", "json"],
    ["-q", "doctor", "-o", "json"],
    ["doctor", "-o", "json", "-q"],
])
def test_global_options_before_or_after(run, db, args):
    result = run(*args)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["ok"] is True


def test_database_url_before_group_and_after_command(db_url):
    run = Run(None)
    assert run("-d", db_url, "migrate", "status", "-o", "json").exit_code == 0
    assert run("migrate", "status", "-o", "json", "-d", db_url).exit_code == 0
    # the last one given wins
    assert run("-d", "/nonexistent/x.db", "migrate", "status", "-d", db_url).exit_code == 0


def test_usage_error_is_one_line():
    result = Run(None)("doctor", "--stale", "soon")
    assert result.exit_code == 2
    assert result.stderr == ("Error: Invalid value for '--stale': 'soon' is not a duration (use "
                             "seconds or units s, m, h, d, w, e.g. 90s, 1h30m, 7d) "
                             "(see 'nitejarctl doctor --help')\n")
    assert Run(None)("doctor", "--idle", "0").exit_code == 2
    assert Run(None)("doctor", "--idle", "-5m").exit_code == 2


def test_unknown_command_and_option():
    assert Run(None)("frobnicate").exit_code == 2
    result = Run(None)("doctor", "--bogus")
    assert result.exit_code == 2
    assert result.stderr == ("Error: No such option '--bogus'. Did you mean '--verbose'? "
                             "(see 'nitejarctl doctor --help')\n")


def test_unsupported_scheme_is_usage_error():
    result = Run("mysql://root:topsecret@localhost/db")("doctor")
    assert result.exit_code == 2
    assert "topsecret" not in result.stderr
    assert result.stderr == ("Error: unsupported database URL scheme 'mysql' in "
                             "'mysql://root:***@localhost/db' (use a file path, sqlite:///…, "
                             "postgres:// or postgresql://)\n")


def test_unreachable_postgres_hides_password():
    result = Run("postgresql://ops:hunter2-secret@127.0.0.1:1/nitejar", in_environment=True)("doctor")
    assert result.exit_code == 1
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert result.stderr.startswith("Error: cannot connect to postgresql://ops:***@127.0.0.1:1/nitejar: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_unreachable_postgres_verbose_traceback_is_masked():
    result = Run("postgresql://ops:hunter2-secret@127.0.0.1:1/nitejar", in_environment=True)("doctor", "-v")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "hunter2-secret" not in result.stderr


def test_wrong_postgres_password(pg_server):
    if pg_server is None:
        pytest.skip("PostgreSQL server binaries (initdb) not found on this machine")
    url = pg_server.url("postgres", PG_PASSWORD_USER, "wrong-" + PG_PASSWORD)
    result = Run(url, in_environment=True)("doctor")
    assert result.exit_code == 1
    assert PG_PASSWORD not in result.stderr
    assert "password authentication failed" in result.stderr
    assert result.stderr.count("\n") == 1
    ok = Run(pg_server.url("postgres", PG_PASSWORD_USER, PG_PASSWORD), in_environment=True)(
        "migrate", "status", "-o", "json")
    assert ok.exit_code == 0 and PG_PASSWORD not in ok.stdout


def test_missing_file_is_not_created(tmp_path):
    path = tmp_path / "missing.db"
    result = Run(str(path))("migrate", "status")
    assert result.exit_code == 1
    assert "does not exist (run 'nitejarctl migrate'" in result.stderr
    assert not path.exists()


def test_not_a_database(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am a text file\n" * 200)
    before = path.read_bytes()
    result = Run(str(path))("doctor")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path} is not a SQLite database (file is not a database)\n"
    assert path.read_bytes() == before


def test_directory_as_database(tmp_path):
    result = Run(str(tmp_path))("doctor")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path} is a directory, not a SQLite database file\n"


def test_read_only_database_message(tmp_path):
    # Root ignores file modes, so the read-only case is made with SQLite's own
    # read-only open; the message is the one the root command shows.
    import peewee

    from nitejarctl.cli import _database_message
    from nitejarctl.db import open_database, parse_url

    path = tmp_path / "ro.db"
    assert Run(str(path))("migrate").exit_code == 0
    db = open_database(parse_url(str(path)), readonly=True)
    with pytest.raises(peewee.OperationalError) as info:
        db.execute_sql("INSERT INTO agents (id, name) VALUES ('a', 'b')")
    db.close()
    assert _database_message(info.value) == (
        "the database is read-only (check the file's and its directory's permissions)")


def test_empty_sqlite_without_tables(tmp_path):
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    result = Run(str(path))("doctor", "-o", "json")
    assert result.exit_code == 1
    assert len(json.loads(result.stdout)["drift"]["missing_tables"]) == 10


def test_pipe_default_is_tsv(run, db):
    result = run("migrate", "status")
    assert result.stdout.splitlines()[0] == "name\tstate\tapplied_at"


def test_subprocess_no_traceback_and_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nitejarctl", "-d", str(tmp_path / "x.db"), "doctor"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: database file ")
    assert "Traceback" not in proc.stderr
    debug = subprocess.run([sys.executable, "-m", "nitejarctl", "-d", str(tmp_path / "x.db"), "doctor"],
                           capture_output=True, text=True, env={**os.environ, "NITEJARCTL_DEBUG": "1"})
    assert "Traceback" in debug.stderr


def test_exit_raised_inside_a_command_keeps_its_code():
    import click

    from nitejarctl.cli import cli

    @cli.command(name="exit-probe")
    def probe():
        raise click.exceptions.Exit(4)

    try:
        assert Run(None)("exit-probe").exit_code == 4
    finally:
        cli.commands.pop("exit-probe")
