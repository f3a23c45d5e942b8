"""backup DEST and restore SRC on both backends (PostgreSQL: with pg_dump and
pg_restore, which CI installs), and what they refuse."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat

import pytest

from nitejarctl.cli.context import Settings
from tests import factories as f
from tests.conftest import PG_PASSWORD, PG_PASSWORD_USER, Run


@pytest.fixture
def pg_tools(backend):
    """pg_dump and pg_restore for the PostgreSQL case (CI must have them)."""
    if backend == "postgresql" and not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        if os.environ.get("CI"):
            pytest.fail("pg_dump and pg_restore are missing in CI")
        pytest.skip("pg_dump or pg_restore is not on PATH")


@pytest.fixture
def sqlite_db(sqlite_url):
    """(run, db) on a migrated SQLite file, for what only SQLite has."""
    from nitejarctl.db import open_database, parse_url

    database = open_database(parse_url(sqlite_url))
    yield Run(sqlite_url), database
    database.close()


def backup_name(backend, tmp_path, name="backup"):
    return str(tmp_path / (f"{name}.db" if backend == "sqlite" else f"{name}.dump"))


def rows_of(db) -> dict:
    db.forget_schema()
    return {t: db.execute_sql(f'SELECT count(*) FROM "{t}"').fetchone()[0]
            for t in ("agents", "work_items", "jobs", "messages", "sprite_sessions", "nitejarctl_migrations")}


def some_rows():
    a = f.agent("ops", id="ag-1")
    f.conversation("tg:1", a["id"], [("user", "hi [bold]"), ("assistant", "yo 🚀")], start=1_700_000_000)
    f.sprite_session(a["id"], "tg:1", id="ss-1")
    return a


def test_backup_and_restore_round_trip(run, db, backend, tmp_path, pg_tools):
    some_rows()
    dest = backup_name(backend, tmp_path)
    result = run("backup", dest, "-o", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["path"] == dest and report["bytes"] == os.path.getsize(dest) > 0
    assert report["integrity"] == "ok" and report["seconds"] >= 0
    assert {t: report["rows"][t] for t in ("agents", "jobs", "messages", "sprite_sessions")} == {
        "agents": 1, "jobs": 1, "messages": 2, "sprite_sessions": 1}
    assert "Error" not in result.stderr and f"to {dest}:" in result.stderr
    if backend == "postgresql":  # no file to take the mode of: private
        assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if "nitejarctl-tmp" in p.name] == []
    at_backup = rows_of(db)

    f.agent("second")
    db.execute_sql("DELETE FROM messages")
    changed = rows_of(db)
    safety = str(tmp_path / ("before.db" if backend == "sqlite" else "before.dump"))
    restored = run("restore", dest, "--yes", "--safety-backup", safety, "-o", "json")
    assert restored.exit_code == 0, restored.stderr
    out = json.loads(restored.stdout)
    assert out["restored"] is True and out["safety_backup"] == safety
    assert {t: out["rows"][t] for t in at_backup} == at_backup
    assert rows_of(db) == at_backup
    assert f"backed up the current database to {safety}\n" in restored.stderr
    # the safety backup holds the database as it was just before
    back = run("restore", safety, "--yes", "--safety-backup", str(tmp_path / f"again-{os.path.basename(safety)}"))
    assert back.exit_code == 0, back.stderr
    assert rows_of(db) == changed


def test_restore_asks_refuses_and_previews(run, db, backend, tmp_path, pg_tools, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a PostgreSQL safety backup goes by default
    some_rows()
    dest = backup_name(backend, tmp_path)
    assert run("backup", dest).exit_code == 0
    f.agent("later")
    before = rows_of(db)
    refused = run("restore", dest)
    assert (refused.exit_code, refused.stderr) == (2, "Error: refusing to restore without --yes when not on a "
                                                      "terminal\n")
    declined = run("restore", dest, input="n\n", settings=Settings(interactive=True))
    assert declined.exit_code == 1 and declined.stderr.endswith("nothing restored\n")
    assert "Stop nitejar first." in declined.stderr and "Replace the whole database" in declined.stderr
    preview = run("restore", dest, "--dry-run", "-o", "json")
    assert preview.exit_code == 0, preview.stderr
    assert json.loads(preview.stdout)["restored"] is False
    assert "(dry run)" in preview.stderr
    assert rows_of(db) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith((".bak", ".dump")) and
                  not p.name.startswith("backup")) == []  # no safety backup was taken
    accepted = run("restore", dest, input="y\n", settings=Settings(interactive=True))
    assert accepted.exit_code == 0, accepted.stderr
    assert rows_of(db)["agents"] == before["agents"] - 1
    (safety,) = [p for p in tmp_path.iterdir() if p.name.endswith((".bak", ".dump")) and
                 not p.name.startswith("backup")]  # the default: beside the file, or here
    assert f"the previous database is in {safety if backend == 'sqlite' else safety.name}\n" in accepted.stderr


def test_backup_refuses_an_existing_destination_without_force(run, db, backend, tmp_path, pg_tools):
    dest = backup_name(backend, tmp_path)
    open(dest, "w").write("precious")
    result = run("backup", dest)
    assert (result.exit_code, result.stderr) == (
        2, f"Error: backup file {dest} already exists: refusing to overwrite it (use --force to replace it)\n")
    assert open(dest).read() == "precious"
    forced = run("backup", dest, "--force", "-o", "json")
    assert forced.exit_code == 0, forced.stderr
    assert os.path.getsize(dest) == json.loads(forced.stdout)["bytes"] and open(dest, "rb").read(5) != b"preci"


@pytest.mark.parametrize("force", [False, True])
def test_backup_never_follows_a_symbolic_link(sqlite_url, tmp_path, force):
    target = tmp_path / "elsewhere"
    link = tmp_path / "backup.db"
    link.symlink_to(target)
    result = Run(sqlite_url)("backup", str(link), *(["--force"] if force else []))
    assert (result.exit_code, result.stderr) == (
        1, f"Error: backup file {link} is a symbolic link: refusing to overwrite it or follow it\n")
    assert not target.exists() and link.is_symlink()


@pytest.mark.parametrize("mode, expected", [(0o600, 0o600), (0o640, 0o640), (0o755, 0o644)])
def test_backup_is_as_private_as_the_database(sqlite_url, tmp_path, mode, expected):
    os.chmod(sqlite_url, mode)
    dest = tmp_path / "copy.db"
    assert Run(sqlite_url)("backup", str(dest)).exit_code == 0
    assert stat.S_IMODE(dest.stat().st_mode) == expected


def test_sqlite_backup_is_one_self_contained_file(sqlite_db, tmp_path):
    run, db = sqlite_db
    some_rows()
    dest = tmp_path / "b.db"
    assert run("backup", str(dest)).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b.db")) == ["b.db"]
    conn = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT content FROM messages ORDER BY created_at").fetchall() == [
            ('{"text": "hi [bold]"}',), ('{"text": "yo \\ud83d\\ude80"}',)]
    finally:
        conn.close()


def test_backup_progress_bar_on_a_terminal(run, db, tmp_path):
    some_rows()
    result = run("backup", str(tmp_path / "b.db"), settings=Settings(stderr_terminal=True, progress_delay=0))
    assert result.exit_code == 0, result.stderr
    assert "backing up" in result.stderr


def _corrupt_an_index(path: str) -> None:
    conn = sqlite3.connect(path)
    f_agent = "INSERT INTO agents (id, name, created_at, updated_at) VALUES (?, ?, 0, 0)"
    conn.executemany(f_agent, [(f"a-{i}", f"agent {i:05}") for i in range(2000)])
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'agents' "
                           "AND sql IS NULL").fetchone()
    conn.close()
    with open(path, "r+b") as fh:  # scramble the unique index's root page
        fh.seek((root - 1) * page_size)
        fh.write(os.urandom(page_size))


def test_a_backup_that_fails_its_check_leaves_nothing(sqlite_url, tmp_path):
    _corrupt_an_index(sqlite_url)
    dest = tmp_path / "b.db"
    result = Run(sqlite_url)("backup", str(dest))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the copy failed its integrity check (")
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if "nitejarctl-tmp" in p.name] == []


def test_restore_checks_the_source(run, db, backend, tmp_path, pg_tools):
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a database at all" * 100)
    result = run("restore", str(garbage), "--yes")
    assert result.exit_code == 1
    kind = "a SQLite database" if backend == "sqlite" else "a pg_dump archive (nitejarctl backup writes"
    assert result.stderr.startswith(f"Error: {garbage} is not {kind}")
    missing = run("restore", str(tmp_path / "nope"), "--yes")
    assert (missing.exit_code, missing.stderr) == (1, f"Error: cannot read {tmp_path / 'nope'}: No such file "
                                                      "or directory\n")
    stranger = tmp_path / "stranger.db"
    sqlite3.connect(stranger).execute("CREATE TABLE t (x)").connection.commit()
    if backend == "sqlite":
        other = run("restore", str(stranger), "--yes")
        assert (other.exit_code, other.stderr) == (
            1, f"Error: {stranger} is not a nitejar database: it has neither nitejar's migration table "
               "(kysely_migration) nor nitejarctl's (nitejarctl_migrations)\n")
        itself = run("restore", run.url, "--yes")
        assert (itself.exit_code, itself.stderr) == (2, f"Error: {run.url} is the database itself\n")
    else:
        other = run("restore", str(stranger), "--yes")
        assert (other.exit_code, other.stderr) == (
            1, f"Error: {stranger} is a SQLite database, not a PostgreSQL backup (to move a SQLite database "
               "into PostgreSQL use 'nitejarctl transfer')\n")
    assert [p for p in tmp_path.iterdir() if p.name.endswith((".bak", ".dump"))] == []


def test_a_pg_dump_archive_is_no_sqlite_backup(sqlite_url, pg_url, tmp_path):
    if not shutil.which("pg_dump"):
        pytest.skip("pg_dump is not on PATH")
    dump = tmp_path / "pg.dump"
    assert Run(pg_url)("backup", str(dump)).exit_code == 0
    result = Run(sqlite_url)("restore", str(dump), "--yes")
    assert (result.exit_code, result.stderr) == (
        1, f"Error: {dump} is a pg_dump archive (PostgreSQL), not a SQLite database\n")


def test_restore_of_a_missing_sqlite_database(tmp_path, sqlite_url):
    dest = tmp_path / "b.db"
    assert Run(sqlite_url)("backup", str(dest)).exit_code == 0
    missing = tmp_path / "gone.db"
    result = Run(str(missing))("restore", str(dest), "--yes")
    assert (result.exit_code, result.stderr) == (
        1, f"Error: database file {missing} does not exist: nothing to replace (a SQLite backup is a whole "
           "database file: copy it there)\n")
    assert not missing.exists()


def test_restore_into_a_live_wal_database(sqlite_db, tmp_path):
    """Another connection (nitejar's) stays open across the restore and sees the
    restored rows; the -wal and -shm files are SQLite's, the page size the database's."""
    run, db = sqlite_db
    some_rows()
    small = tmp_path / "small-pages.db"
    source = sqlite3.connect(run.url)
    source.execute("PRAGMA page_size = 1024")
    source.execute("VACUUM INTO ?", (str(small),))
    source.close()
    nitejar = sqlite3.connect(run.url, isolation_level=None)
    f.agent("only before the restore")
    assert nitejar.execute("SELECT count(*) FROM agents").fetchone() == (2,)
    result = run("restore", str(small), "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert nitejar.execute("SELECT id FROM agents").fetchall() == [("ag-1",)]
    assert nitejar.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert nitejar.execute("PRAGMA page_size").fetchone() == (4096,)
    assert nitejar.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    nitejar.execute("INSERT INTO agents (id, name) VALUES ('ag-2', 'after')")  # nitejar writes on
    nitejar.close()
    assert [p.name for p in tmp_path.iterdir() if ".nitejarctl-restore." in p.name] == []


def test_restore_waits_for_the_lock_at_most_the_busy_timeout(sqlite_db, tmp_path):
    run, db = sqlite_db
    some_rows()
    dest = tmp_path / "b.db"
    assert run("backup", str(dest)).exit_code == 0
    f.agent("kept")
    holder = sqlite3.connect(run.url, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # nitejar holds the write lock
    try:
        result = run("restore", str(dest), "--yes", "--busy-timeout", "0.3")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1
    assert result.stderr.endswith("Error: database is locked: another process held its lock past the busy "
                                  "timeout (retry, or raise --busy-timeout)\n")
    assert rows_of(db)["agents"] == 2  # unchanged


def test_restore_of_nitejars_own_database(upstream_url, tmp_path):
    """A database nitejar's migrator made (kysely_migration) is a nitejar database."""
    run = Run(upstream_url)
    dest = tmp_path / "nitejar-backup.db"
    result = run("backup", str(dest), "-o", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert rows["kysely_migration"] == 74 and len(rows) >= 90
    conn = sqlite3.connect(upstream_url)
    conn.execute("DELETE FROM kysely_migration WHERE name = (SELECT max(name) FROM kysely_migration)")
    conn.commit()
    conn.close()
    restored = run("restore", str(dest), "--yes", "-o", "json")
    assert restored.exit_code == 0, restored.stderr
    assert json.loads(restored.stdout)["rows"] == rows


def test_postgresql_password_goes_through_the_environment(pg_url, pg_server, tmp_path):
    """pg_dump and pg_restore get the password in PGPASSWORD, never in their arguments."""
    if not shutil.which("pg_dump"):
        pytest.skip("pg_dump is not on PATH")
    import psycopg2

    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {PG_PASSWORD_USER}")
        cur.execute(f"GRANT ALL ON SCHEMA public TO {PG_PASSWORD_USER}")
    conn.close()
    spy = tmp_path / "bin"
    spy.mkdir()
    for program in ("pg_dump", "pg_restore"):
        script = spy / program
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {tmp_path}/argv\n'
                          f'echo "PGPASSWORD=$PGPASSWORD" >> {tmp_path}/env\nexec {shutil.which(program)} "$@"\n')
        script.chmod(0o755)
    dbname = pg_url.rsplit("/", 1)[1]
    url = pg_server.url(dbname, user=PG_PASSWORD_USER, password=PG_PASSWORD)
    run = Run(url, in_environment=True)
    env = {"PATH": f"{spy}:{os.environ['PATH']}"}
    dest = tmp_path / "b.dump"
    result = run("backup", str(dest), env=env)
    assert result.exit_code == 0, result.stderr
    assert PG_PASSWORD not in result.stderr
    argv = (tmp_path / "argv").read_text()
    assert PG_PASSWORD not in argv and f"user={PG_PASSWORD_USER}" in argv and "--format=custom" in argv
    assert (tmp_path / "env").read_text().splitlines()[0] == f"PGPASSWORD={PG_PASSWORD}"


def test_missing_pg_dump_is_one_clear_line(pg_url, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = Run(pg_url)("backup", str(tmp_path / "b.dump"), env={"PATH": str(empty)})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: pg_dump is not on PATH: install PostgreSQL's client programs, "
                                    "version ")
    assert "apt-get install postgresql-client-" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "b.dump").exists()


def test_backup_of_an_in_memory_database_is_refused():
    result = Run("sqlite:///:memory:")("backup", "x.db")
    assert (result.exit_code, result.stderr) == (2, "Error: an in-memory database has no file to back up "
                                                    "or restore\n")
