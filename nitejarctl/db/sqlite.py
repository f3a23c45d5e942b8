"""SQLite as a Peewee database: what differs from PostgreSQL (db.dialects)."""

from __future__ import annotations

import contextlib
import os

import peewee as pw
from peewee import SQL, fn

from nitejarctl.db.base import Database, like


class Sqlite(Database, pw.SqliteDatabase):
    backend = "sqlite"
    temp_schema = "temp"
    pauses_for_writers = True
    key_scans_walk_an_index = True
    column_types = {"text": "text", "integer": "integer", "real": "real", "blob": "blob"}
    now_sql = "(unixepoch())"

    def file_path(self) -> str | None:
        """The main database's file (None for an in-memory one)."""
        rows = self.execute_sql("PRAGMA database_list").fetchall()
        return next((row[2] for row in rows if row[1] == "main"), "") or None

    def live_schema(self) -> dict[str, list[str]]:
        rows = self.execute_sql(
            "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
            "WHERE m.type = 'table' ORDER BY m.name, p.cid").fetchall()
        schema: dict[str, list[str]] = {}
        for table, column in rows:
            schema.setdefault(table, []).append(column)
        return schema

    def pragma(self, name: str):
        return self.execute_sql(f"PRAGMA {name}").fetchone()[0]

    def wal_file(self) -> str | None:
        """The database file when it is in WAL mode and used outside any
        transaction (where bulk changes checkpoint and read beside the change)."""
        if self.transaction_depth() > 0:
            return None
        path = self.file_path()
        if path is None or str(self.pragma("journal_mode")).lower() != "wal":
            return None
        return path

    # ------------------------------------------------------------- queries

    def batch_key(self, model):
        """The key bulk changes are batched by: the rowid (every index ends
        with it, so the scan for the next range seeks instead of rescanning)."""
        return pw.Column(model, "rowid")

    def batch_key_field(self, model, **kwargs):
        """A field for a column holding `model`'s batch keys."""
        return pw.IntegerField(**kwargs)

    def insertion_order(self, model):
        return pw.Column(model, "rowid")

    def greatest(self, *args):
        return fn.MAX(*args)

    def contains(self, column, text: str):
        """Case-insensitive literal substring match (% and _ match themselves)."""
        return like(column, "LIKE", text)

    def byte_length(self, column):
        return fn.LENGTH(column)

    def unindexed(self, column):
        """`column` as the planner may not use an index for (unary +):
        without statistics SQLite may pick a far wider index than the one
        the query means."""
        return pw.NodeList((SQL("+"), column), glue="")

    # ------------------------------------------------------------- writes

    @contextlib.contextmanager
    def turn(self, *, wait: float, on_wait=None):
        from nitejarctl.db.turns import TurnLock

        path = self.file_path() if self.transaction_depth() == 0 else None
        if path is None:
            yield
            return
        with TurnLock(path, wait=wait, on_wait=on_wait):
            yield

    def bulk_session(self):
        from nitejarctl.db.checkpoints import bulk_session

        path = self.wal_file()
        return bulk_session(self, path) if path is not None else Database.bulk_session(self)

    def changed_rows(self, change):
        from nitejarctl.db import changed_rows

        path = self.wal_file()
        if path is not None and not change.temporary:
            return changed_rows.ReadAfter(self, change, path)
        return changed_rows.ReadFirst(self, change)

    # ----------------------------------------------------------- the server

    def version_text(self) -> str:
        return self.execute_sql("SELECT sqlite_version()").fetchone()[0]

    def file_info(self) -> dict | None:
        check = [r[0] for r in self.execute_sql("PRAGMA quick_check").fetchall()]
        info = {"journal_mode": self.pragma("journal_mode"),
                "integrity": "ok" if check == ["ok"] else "; ".join(check[:5])}
        path = self.file_path()
        if path and os.path.exists(path):
            info["file_size"] = os.path.getsize(path)
        return info

    def index_names(self) -> dict[str, str]:
        rows = self.execute_sql("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'").fetchall()
        return dict(rows)

    # -------------------------------------------------------------- schema

    @staticmethod
    def add_column_default(default):
        # SQLite cannot add a column whose default is not a constant.
        from nitejarctl.models import NOW

        return 0 if default == NOW else default

    def prepare_new(self) -> None:
        # Several processes may create the same file at once; the switch needs
        # the write lock, which busy_timeout waits for.
        self.execute_sql("PRAGMA journal_mode = WAL").fetchone()

    @contextlib.contextmanager
    def migration_lock(self, wait: float):
        yield  # BEGIN IMMEDIATE serialises the migrations themselves
