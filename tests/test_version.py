"""`nitejarctl version` and -V/--version: with and without a database."""

from __future__ import annotations

import json
import platform
import sqlite3
import subprocess
import sys

from nitejarctl import __version__
from tests.conftest import PG_PASSWORD, PG_PASSWORD_USER, Run
from tests.helpers.terminal import on_terminal

HEAD = [f"nitejarctl      {__version__}", f"Python          {platform.python_version()}",
        f"SQLite library  {sqlite3.sqlite_version}"]


def test_version_of_a_migrated_database(run, db, db_url, backend):
    server = db.version_text()
    db.close()
    result = run("version")
    assert (result.exit_code, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[:3] == HEAD
    assert lines[3].startswith("database        ") and lines[3].endswith("(from --database-url)")
    assert lines[4:] == [f"server          {backend} {server}", "schema          up to date"]
    report = json.loads(run("version", "-o", "json").stdout)
    assert report["nitejarctl"] == __version__ and report["sqlite_library"] == sqlite3.sqlite_version
    assert report["database"] | {"url": None} == {
        "url": None, "source": "--database-url", "reachable": True, "backend": backend,
        "server_version": server, "schema": "up to date", "schema_up_to_date": True,
        "nitejar_managed": False, "applied_migrations": report["database"]["applied_migrations"],
        "pending_migrations": []}
    assert report["database"]["applied_migrations"] >= 1


def test_dash_v_is_version_wherever_the_options_stand(run, db, db_url):
    db.close()
    assert Run(None)("-V", "-d", db_url).stdout == run("version").stdout
    assert Run(None)("-o", "json", "--version", "-d", db_url).stdout == run("version", "-o", "json").stdout


def test_an_empty_database_has_no_schema(empty_url):
    result = Run(empty_url)("version", "-o", "json")
    assert result.exit_code == 0
    database = json.loads(result.stdout)["database"]
    if database["reachable"]:  # PostgreSQL: an empty database
        assert database["schema"] == "no nitejarctl schema (run 'nitejarctl migrate')"
        assert database["schema_up_to_date"] is False
    else:  # SQLite: the file does not exist and is not created
        assert database["error"].startswith("database file ")
    import os

    assert not empty_url.endswith(".db") or not os.path.exists(empty_url)


def test_a_nitejar_managed_database(upstream_url):
    result = Run(upstream_url)("version")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1].startswith("schema          managed by nitejar's migrator (")


def test_without_a_database_it_still_answers(tmp_path):
    missing = tmp_path / "none.db"
    result = Run(str(missing))("version")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == HEAD + [
        f"database        {missing}  (from --database-url)",
        f"                not reachable: database file {missing} does not exist (run 'nitejarctl "
        "migrate' to create it, or pass -d/--database-url)"]
    assert not missing.exists()
    bad = Run("mysql://root:topsecret@localhost/db")("-V", "-o", "json")
    assert bad.exit_code == 0 and "topsecret" not in bad.stdout + bad.stderr
    assert json.loads(bad.stdout)["database"]["reachable"] is False


def test_an_unreachable_server_is_said_and_its_password_hidden():
    result = Run("postgresql://ops:hunter2-secret@127.0.0.1:1/nitejar", in_environment=True)("version")
    assert result.exit_code == 0
    assert "hunter2" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith(
        "                not reachable: cannot connect to postgresql://ops:***@127.0.0.1:1/nitejar: ")


def test_a_wrong_password_is_not_shown(pg_server):
    url = pg_server.url("postgres", PG_PASSWORD_USER, PG_PASSWORD + "-wrong")
    result = Run(url, in_environment=True)("version", "-o", "json")
    assert result.exit_code == 0
    assert PG_PASSWORD not in result.stdout + result.stderr
    assert json.loads(result.stdout)["database"]["reachable"] is False


def test_version_on_a_terminal_without_a_database(tmp_path):
    screen = on_terminal("-V", env={"NITEJAR_DATABASE_URL": str(tmp_path / "none.db")})
    assert screen.code == 0
    assert screen.text.splitlines()[:3] == HEAD
    assert "Error" not in screen.text


def test_version_stays_off_the_help_path():
    """-V is an option of the root: loading it loads nothing --help must not."""
    code = ("import sys; from nitejarctl.cli import cli; "
            "print(','.join(m for m in ('sqlite3', 'peewee', 'rich', 'psycopg2') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "\n"
