"""PostgreSQL backups with PostgreSQL's own client programs: `pg_dump -Fc`
to write one, `pg_restore` to check and restore one.

They connect with what the URL names, as nitejarctl does, libpq filling in
the rest (PGHOST, ~/.pgpass, a service file, …). A password goes to them
through their environment (PGPASSWORD), never on their command line, where
every local user could read it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from nitejarctl.db.urls import is_password_parameter, mask_secrets
from nitejarctl.errors import OperationalProblem, UsageProblem

MAGIC = b"PGDMP"
POLL = 0.2  # seconds between two looks at a dump's size (its progress)
# A table's line in `pg_restore --list`: "215; 1259 16386 TABLE public agents owner"
TOC_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (\S+) (\S+) ")


class PgBackups:
    """Backups of a PostgreSQL database (db.postgres.Postgres.backups())."""

    can_compact = False  # pg_dump's archive holds no free space to leave out
    suffix = "dump"

    def __init__(self, db):
        self.db = db

    # --------------------------------------------------------------- writing

    def write(self, path: str, *, progress=None, compact: bool = False, batching=None):
        """pg_dump -Fc into `path` (an empty file of ours), from a snapshot
        the rows are counted in too; then the whole archive is read back.
        Returns a sqlite_copy.FileCheck: integrity, tables, rows."""
        from nitejarctl.db.sqlite_copy import FileCheck

        pg_dump = self._program("pg_dump")
        conn = self.db.connection()
        cursor = conn.cursor()
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
            args, env = self._connection()
            proc = _start([pg_dump, "--format=custom", f"--file={path}", f"--snapshot={snapshot}",
                           "--no-password", *args], env)
            try:
                rows = self._rows(cursor)  # meanwhile, in the same snapshot as the dump
                _wait(proc, "pg_dump", progress=progress, path=path)
            except BaseException:
                _stop(proc)
                raise
        finally:
            cursor.execute("ROLLBACK")
            cursor.close()
        listed = self._tables(path)
        return FileCheck(integrity="ok", rows=rows, tables=listed)

    def safety_path(self, stamp: str) -> str:
        name = self.db.execute_sql("SELECT current_database()").fetchone()[0]
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        return f"{safe}.{stamp}.{self.suffix}"

    # ------------------------------------------------------------ restoring

    def check(self, path: str):
        """Is `path` a readable pg_dump archive? Its TOC, then every byte of
        it read through (a damaged data block fails here, not half-way
        through a restore). Returns a FileCheck (rows unknown)."""
        from nitejarctl.db.sqlite_copy import MAGIC as SQLITE_MAGIC
        from nitejarctl.db.sqlite_copy import FileCheck

        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
        if head.startswith(SQLITE_MAGIC):
            raise OperationalProblem(f"{path} is a SQLite database, not a PostgreSQL backup (to move a "
                                     "SQLite database into PostgreSQL use 'nitejarctl transfer')")
        if not head.startswith(MAGIC):
            raise OperationalProblem(f"{path} is not a pg_dump archive (nitejarctl backup writes pg_dump's "
                                     "custom format, -Fc)")
        tables = self._tables(path)
        pg_restore = self._program("pg_restore")
        _wait(_start([pg_restore, "--file=/dev/null", path], dict(os.environ)), "pg_restore")
        return FileCheck(integrity="ok", rows=dict.fromkeys(sorted(tables)), tables=tables)

    def restore(self, path: str, *, progress=None) -> dict:
        """pg_restore --clean into this database, in one transaction: an error
        leaves it as it was. Returns the rows per table after."""
        pg_restore = self._program("pg_restore")
        args, env = self._connection()
        _wait(_start([pg_restore, "--clean", "--if-exists", "--single-transaction", "--no-password",
                      *args, path], env), "pg_restore", progress=None)
        self.db.forget_schema()
        cursor = self.db.connection().cursor()
        try:
            return self._rows(cursor)
        finally:
            cursor.close()

    # --------------------------------------------------------------- helpers

    def _program(self, name: str) -> str:
        found = shutil.which(name)
        if found is None:
            major = self.db.version_text().split(".")[0].split()[0]
            raise OperationalProblem(
                f"{name} is not on PATH: install PostgreSQL's client programs, version {major} or later "
                f"(Debian, Ubuntu: apt-get install postgresql-client-{major}; RHEL: dnf install "
                f"postgresql{major}; macOS: brew install libpq)")
        return found

    def _connection(self) -> tuple[list[str], dict]:
        """(--dbname conninfo without the password, the environment with it)."""
        from psycopg2.extensions import make_dsn

        params = dict(self.db.connect_params)
        env = dict(os.environ)
        password = params.pop("password", None)
        if password is not None:
            env["PGPASSWORD"] = str(password)
        hidden = sorted(k for k in params if is_password_parameter(k))
        if hidden:
            raise UsageProblem(f"the URL's {', '.join(hidden)} cannot be passed to pg_dump or pg_restore "
                               "without showing it on their command line: put it in a service file "
                               "(postgresql:///?service=NAME)")
        return ([f"--dbname={make_dsn(**params)}"] if params else []), env

    def _tables(self, path: str) -> set[str]:
        pg_restore = self._program("pg_restore")
        listing = _wait(_start([pg_restore, "--list", path], dict(os.environ)), "pg_restore")
        tables = set()
        for line in listing.splitlines():
            found = TOC_TABLE.match(line)
            if found:
                tables.add(found.group(2))
        return tables

    @staticmethod
    def _rows(cursor) -> dict[str, int]:
        cursor.execute("SELECT schemaname, tablename, schemaname = current_schema() FROM pg_tables "
                       "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
                       "ORDER BY 3 DESC, 1, 2")
        rows = {}
        for schema, table, current in cursor.fetchall():
            quoted = '"' + table.replace('"', '""') + '"'
            if not current:
                quoted = '"' + schema.replace('"', '""') + '".' + quoted
            cursor.execute(f"SELECT count(*) FROM {quoted}")
            rows[table if current else f"{schema}.{table}"] = cursor.fetchone()[0]
        return rows


def _start(argv: list[str], env: dict) -> subprocess.Popen:
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    except OSError as exc:
        raise OperationalProblem(f"cannot run {os.path.basename(argv[0])}: {exc.strerror or exc}") from None


def _wait(proc: subprocess.Popen, name: str, *, progress=None, path: str | None = None) -> str:
    """Wait for `proc`, reporting the size of `path` as it grows; its
    stdout, or OperationalProblem with the last line it printed on stderr."""
    import threading

    output: dict = {}

    def read(stream, key):
        output[key] = stream.read()

    readers = [threading.Thread(target=read, args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=read, args=(proc.stderr, "err"), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        while proc.poll() is None:
            if progress is not None and path is not None:
                try:
                    progress(os.path.getsize(path), None)
                except OSError:
                    pass
            time.sleep(POLL)
    except BaseException:
        _stop(proc)
        raise
    for reader in readers:
        reader.join()
    err = output.get("err", b"").decode("utf-8", "replace")
    if proc.returncode != 0:
        lines = [line.strip() for line in err.splitlines() if line.strip()]
        detail = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        detail = re.sub(r"^(pg_dump|pg_restore): (error: )?", "", detail)
        raise OperationalProblem(f"{name} failed (exit {proc.returncode})" + (f": {mask_secrets(detail)}"
                                                                              if detail else ""))
    return output.get("out", b"").decode("utf-8", "replace")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
