"""URL resolution and parsing, password masking, opening rules."""

import sqlite3

import pytest

from nitejarctl.db import mask_secrets, mask_url, parse_url, resolve_url
from nitejarctl.errors import DatabaseMissing, OperationalProblem, UsageProblem


def test_resolution_order():
    env = {"NITEJAR_DATABASE_URL": "a.db", "DATABASE_URL": "b.db"}
    assert resolve_url("x.db", env) == ("x.db", "--database-url")
    assert resolve_url(None, env) == ("a.db", "NITEJAR_DATABASE_URL")
    assert resolve_url(None, {"DATABASE_URL": "b.db"}) == ("b.db", "DATABASE_URL")
    assert resolve_url(None, {}) == ("./data/nitejar.db", "default")


@pytest.mark.parametrize("url,path", [
    ("data/n.db", "data/n.db"), ("/abs/n.db", "/abs/n.db"), ("sqlite:///rel/n.db", "rel/n.db"),
    ("sqlite:////abs/n.db", "/abs/n.db"), ("sqlite:///:memory:", ":memory:"), (":memory:", ":memory:"),
])
def test_sqlite_forms(url, path):
    target = parse_url(url)
    assert target.backend == "sqlite" and target.path == path


def test_postgres_forms_and_masking():
    t = parse_url("postgres://ops:p%40ss@db.example:6543/nitejar?sslmode=require&application_name=x")
    assert t.backend == "postgresql"
    assert t.params == {"user": "ops", "password": "p@ss", "host": "db.example", "port": 6543,
                        "dbname": "nitejar", "sslmode": "require", "application_name": "x",
                        "connect_timeout": 10}
    assert t.display == "postgres://ops:***@db.example:6543/nitejar?sslmode=require&application_name=x"
    assert mask_secrets("failed for p@ss and p%40ss") == "failed for *** and ***"
    assert parse_url("postgresql://db/nitejar").params == {"host": "db", "dbname": "nitejar",
                                                            "connect_timeout": 10}


def test_mask_url():
    assert mask_url("postgresql://user:secret@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert mask_url("postgresql://host/db?password=secret&x=1") == "postgresql://host/db?password=***&x=1"
    assert mask_url("postgresql://user@host/db") == "postgresql://user@host/db"


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "http://x", "redis://h"])
def test_unsupported_scheme(url):
    with pytest.raises(UsageProblem, match="unsupported database URL scheme"):
        parse_url(url)


def test_bad_port():
    with pytest.raises(UsageProblem, match="invalid port"):
        parse_url("postgresql://u:pw@h:notaport/db")


def test_open_rules(tmp_path):
    from nitejarctl.db import open_database

    missing = tmp_path / "missing.db"
    with pytest.raises(DatabaseMissing, match=f"database file {missing} does not exist"):
        open_database(parse_url(str(missing)))
    assert not missing.exists()
    with pytest.raises(OperationalProblem, match="is a directory"):
        open_database(parse_url(str(tmp_path)))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(OperationalProblem, match="is not a SQLite database"):
        open_database(parse_url(str(junk)))
    created = tmp_path / "new.db"
    db = open_database(parse_url(str(created)), create=True)
    db.close()
    assert created.exists()


def test_sqlite_pragmas(tmp_path):
    from nitejarctl.db import open_database

    path = tmp_path / "p.db"
    sqlite3.connect(path).close()
    db = open_database(parse_url(str(path)), busy_timeout=2.5)
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 2500
    # Opening never changes the journal mode of an existing database.
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()
