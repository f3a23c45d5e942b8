"""Test fixtures: every database test runs on SQLite and on a real PostgreSQL.

One PostgreSQL server per test session (the one .ci/run started, named by
NITEJARCTL_TEST_PG_URL, or one started here as the `postgres` user on a temp
directory and a loopback port). Each test gets a fresh database copied from a
migrated template.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nitejarctl import migrations
from nitejarctl.cli import cli
from nitejarctl.db import open_database, parse_url

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
UPSTREAM_SQL = Path(__file__).resolve().parent / "data" / "nitejar-upstream.sql"
PG_PASSWORD_USER = "nitejar_pw"
PG_PASSWORD = "s3cret-Pa55word"
# One template per test session: several sessions may share one server.
TEMPLATE = f"nitejarctl_template_{os.getpid()}"

_counter = itertools.count()


# ------------------------------------------------------------------ PostgreSQL


def _pg_bindir() -> str | None:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(candidates[-1]) if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: str) -> list[str]:
    if os.geteuid() == 0:
        return ["su", "postgres", "-s", "/bin/sh", "-c", cmd]
    return ["/bin/sh", "-c", cmd]


class PgServer:
    def __init__(self, admin_url: str, proc_dir: str | None = None, bindir: str | None = None):
        self.admin_url = admin_url.rstrip("/")
        self.proc_dir = proc_dir
        self.bindir = bindir
        base = urlparse_base(self.admin_url)
        self.host, self.port = base

    def url(self, dbname: str, user: str = "postgres", password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    def admin(self):
        import psycopg2

        conn = psycopg2.connect(self.url("postgres"))
        conn.autocommit = True
        return conn

    def create_database(self, name: str, template: str = "template0") -> str:
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            conn.close()
        return self.url(name)

    def stop(self):
        if self.proc_dir:
            subprocess.run(_as_postgres(f"{self.bindir}/pg_ctl -D {self.proc_dir}/data -m immediate stop"),
                           capture_output=True)
            shutil.rmtree(self.proc_dir, ignore_errors=True)


def urlparse_base(url: str):
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def start_pg_server() -> PgServer:
    bindir = _pg_bindir()
    if bindir is None:
        return None
    base = tempfile.mkdtemp(prefix="nitejarctl-pg-")
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = _free_port()
    data = f"{base}/data"
    subprocess.run(_as_postgres(f"{bindir}/initdb -D {data} -A trust -U postgres --no-sync -E UTF8"),
                   check=True, capture_output=True)
    hba = Path(data, "pg_hba.conf")
    hba_text = hba.read_text()
    hba.write_text(f"host all {PG_PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n" + hba_text)
    opts = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    subprocess.run(_as_postgres(f"{bindir}/pg_ctl -D {data} -l {base}/log -w -t 60 -o '{opts}' start"),
                   check=True, capture_output=True)
    return PgServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", proc_dir=base, bindir=bindir)


@pytest.fixture(scope="session")
def pg_server():
    url = os.environ.get("NITEJARCTL_TEST_PG_URL")
    server = PgServer(url) if url else start_pg_server()
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing in CI")
        yield None
        return
    for _ in range(100):
        try:
            server.admin().close()
            break
        except Exception:
            time.sleep(0.1)
    conn = server.admin()
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PG_PASSWORD_USER,))
        if not cur.fetchone():
            cur.execute(f"CREATE ROLE {PG_PASSWORD_USER} LOGIN PASSWORD '{PG_PASSWORD}'")
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE,))
        if cur.fetchone():
            cur.execute(f'DROP DATABASE "{TEMPLATE}"')
    conn.close()
    template_url = server.create_database(TEMPLATE)
    db = open_database(parse_url(template_url))
    migrations.migrate(db)
    db.close()
    yield server
    if not server.proc_dir:  # a server of its own goes with its files
        conn = server.admin()
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        conn.close()
    server.stop()


# ------------------------------------------------------------------- databases


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    if request.param == "postgresql" and request.getfixturevalue("pg_server") is None:
        pytest.skip("PostgreSQL server binaries (initdb) not found on this machine")
    return request.param


def _fresh_pg(server: PgServer, template: str) -> str:
    name = f"t_{os.getpid()}_{next(_counter)}"
    return server.create_database(name, template)


@pytest.fixture
def empty_url(backend, tmp_path, request):
    """A database with no tables at all (SQLite: the file does not exist yet)."""
    if backend == "sqlite":
        return str(tmp_path / "nitejar.db")
    return _fresh_pg(request.getfixturevalue("pg_server"), "template0")


def _migrated_sqlite(path) -> str:
    db = open_database(parse_url(str(path)), create=True)
    migrations.migrate(db, fresh_file=True)
    db.close()
    return str(path)


@pytest.fixture
def db_url(backend, tmp_path, request):
    """A freshly migrated database."""
    if backend == "sqlite":
        return _migrated_sqlite(tmp_path / "nitejar.db")
    return _fresh_pg(request.getfixturevalue("pg_server"), TEMPLATE)


@pytest.fixture
def sqlite_url(tmp_path):
    """A freshly migrated SQLite database, for tests about SQLite alone."""
    return _migrated_sqlite(tmp_path / "nitejar.db")


@pytest.fixture
def pg_url(pg_server):
    """A freshly migrated PostgreSQL database, for tests about PostgreSQL alone."""
    if pg_server is None:
        pytest.skip("PostgreSQL server binaries (initdb) not found on this machine")
    return _fresh_pg(pg_server, TEMPLATE)


@pytest.fixture
def db(db_url):
    """An open connection to `db_url`, with the models bound to it."""
    database = open_database(parse_url(db_url))
    yield database
    database.close()


@pytest.fixture
def upstream_url(tmp_path):
    """A SQLite database created by nitejar's own migrator (the shared fixture's
    dump, which is SQLite's own: this fixture is not parametrised by backend)."""
    import sqlite3

    path = tmp_path / "upstream.db"
    conn = sqlite3.connect(path)
    conn.executescript(upstream_sql())
    conn.close()
    return str(path)


def upstream_sql() -> str:
    for candidate in (FIXTURES / "nitejar-upstream.sql", UPSTREAM_SQL):
        if candidate.exists():
            return candidate.read_text()
    pytest.skip("nitejar-upstream.sql fixture not found")


# ------------------------------------------------------------------------ CLI


class Run:
    """Invoke the CLI in-process against one database."""

    def __init__(self, url: str | None, *, in_environment: bool = False):
        """`in_environment`: name the database in NITEJAR_DATABASE_URL rather
        than with -d (as a URL holding a password should be)."""
        self.url = url
        self.in_environment = in_environment
        self.runner = CliRunner()

    def __call__(self, *args, input=None, env=None, url=True, settings=None):
        """`settings` (a cli.context.Settings) steers what no option sets:
        batching, whether stderr is a terminal, whether a person can answer."""
        argv = [str(a) for a in args]
        if url and self.url is not None:
            if self.in_environment:
                env = {"NITEJAR_DATABASE_URL": self.url, **(env or {})}
            else:
                argv += ["-d", self.url]
        extra = {} if settings is None else {"obj": settings}
        return self.runner.invoke(cli, argv, input=input, env=env, catch_exceptions=False, **extra)


@pytest.fixture
def run(db_url):
    """run(*args) -> click Result, with `-d <this test's database>` appended."""
    return Run(db_url)


@pytest.fixture(autouse=True)
def _no_remembered_secrets():
    """Each command runs in a process of its own, knowing no password but its
    URL's; in-process tests start likewise (a password an earlier test's URL
    held, say `pw`, would be masked in this test's paths)."""
    from nitejarctl.db import urls

    urls._SECRETS.clear()
    yield
