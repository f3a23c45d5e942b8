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
    SCHEMA_SQL = ("SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
                  "WHERE m.type = 'table' ORDER BY m.name, p.cid")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tolerant = False
        self._text_noted = False
        self.read_only_reason: str | None = None  # why it was opened read-only, when it was
        self.read_only_note: str | None = None  # the line saying so

    # ----------------------------------------------------------- reading

    def execute_sql(self, sql, params=None):
        """A SELECT's rows as SQLite holds them: text that is not valid UTF-8
        (nitejar stores what it is given) would end the whole statement in
        Python's strict decoding; the statement is read again from the start
        with every such value decoded with backslash escapes (`\\xff`), the
        rows already read skipped, and so is every later one (db.text)."""
        from nitejarctl.db import text

        if self._tolerant or not text.is_select(sql):
            return super().execute_sql(sql, params)
        try:
            cursor = super().execute_sql(sql, params)
        except Exception as exc:
            if not text.undecodable(exc):
                raise
            self.tolerate_text()
            return super().execute_sql(sql, params)
        return text.Rereading(self, cursor, sql, params)

    def read_only_rows(self, pieces, params, *, declare: bool = True):
        """`nitejarctl query` (db.read_only): the column names, then the rows
        of `pieces` joined by placeholders, on a connection that refuses every
        write (`query_only`, on a file opened mode=ro). A value that is a plain
        number is bound as one: SQLite compares a text value with a number as
        text, where PostgreSQL infers the parameter's type."""
        self.execute_sql("PRAGMA query_only = ON")
        return self.stream_tuples(("?".join(pieces), [_number(v) for v in params]))

    def tolerate_text(self) -> None:
        from nitejarctl.db import text

        if not self._tolerant:
            self._tolerant = True
            self.connection().text_factory = text.decoded
            self.note_text()

    def note_text(self) -> None:
        """Say once that some text is not valid UTF-8 (and is shown with escapes)."""
        from nitejarctl.db import text

        if not self._text_noted:
            self._text_noted = True
            if self.notify is not None:
                self.notify(text.NOTE)

    def file_path(self) -> str | None:
        """The main database's file (None for an in-memory one)."""
        rows = self.execute_sql("PRAGMA database_list").fetchall()
        return next((row[2] for row in rows if row[1] == "main"), "") or None

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

    def code_point_order(self, column):
        """`column` compared code point by code point (SQLite's BINARY: as its index is)."""
        return column

    def byte_length(self, column):
        return fn.LENGTH(column)

    def numeric(self, column):
        """SQLite keeps what it is given: nitejar's databases may hold text in
        an integer column."""
        return fn.typeof(column).in_(("integer", "real"))

    def unindexed(self, column):
        """`column` as the planner may not use an index for (unary +):
        without statistics SQLite may pick a far wider index than the one
        the query means."""
        return pw.NodeList((SQL("+"), column), glue="")

    # ------------------------------------------------------------- writes

    def begin(self, lock_type=None):
        self.refuse_writes()
        return super().begin(lock_type)

    def refuse_writes(self) -> None:
        """One clear line instead of SQLite's, on a database opened read-only
        because this user could not open it otherwise (db.connect)."""
        if self.read_only_reason is not None:
            from nitejarctl.errors import OperationalProblem

            raise OperationalProblem(f"cannot change the database: it could only be opened read-only "
                                     f"({self.read_only_reason})")

    @contextlib.contextmanager
    def turn(self, *, wait: float, on_wait=None):
        from nitejarctl.db.turns import TurnLock

        self.refuse_writes()
        path = self.file_path() if self.transaction_depth() == 0 else None
        if path is None:
            yield
            return
        with TurnLock(path, wait=wait, on_wait=on_wait):
            yield

    def bulk_session(self, *, cache: bool = True):
        from nitejarctl.db.checkpoints import bulk_session

        path = self.wal_file()
        if path is None:
            return Database.bulk_session(self, cache=cache)
        return bulk_session(self, path, larger_cache=cache)

    def side_reader(self):
        """A reader beside this connection (db.side_reader), in WAL mode only."""
        import sqlite3

        from nitejarctl.db.side_reader import SideReader

        path = self.wal_file()
        if path is None:
            return None
        try:
            return SideReader(path, trace=self.trace, on_tolerant=self.note_text)
        except sqlite3.Error:  # say, a read-only place: the change's own connection reads
            return None

    def changed_rows(self, change, text_columns=None):
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

    def storage(self) -> dict:
        """The file's bytes, its WAL's, and the free pages' (what VACUUM reclaims)."""
        page_size, pages, free = (self.pragma(p) for p in ("page_size", "page_count", "freelist_count"))
        path = self.file_path()
        size = os.path.getsize(path) if path and os.path.exists(path) else page_size * pages
        wal = f"{path}-wal" if path else None
        return {"bytes": size, "wal_bytes": os.path.getsize(wal) if wal and os.path.exists(wal) else 0,
                "reclaimable_bytes": free * page_size, "page_size": page_size, "pages": pages,
                "free_pages": free}

    def table_bytes(self) -> dict[str, int] | None:
        """Bytes of each table with its indexes, largest first (SQLite's dbstat
        table; None when this SQLite was built without it)."""
        try:
            rows = self.execute_sql(
                "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat AS d "
                "LEFT JOIN sqlite_master AS m ON m.name = d.name GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
        except pw.OperationalError:  # no such table: dbstat
            return None
        return {name: size for name, size in rows if not name.startswith("sqlite_")}

    # ------------------------------------------------------------ lifecycle

    vacuum_locks_writers = True  # VACUUM holds the write lock for its whole run

    def backups(self):
        """Backups of this file: written, checked and restored (db.sqlite_copy)."""
        from nitejarctl.db.sqlite_copy import SqliteBackups

        return SqliteBackups(self)

    def vacuum_steps(self) -> list[tuple[str, str]]:
        return [("database", "VACUUM")]

    def after_vacuum(self) -> bool:
        """Fold the WAL that VACUUM filled into the file, which then shrinks;
        False when a reader kept part of it for now."""
        if str(self.pragma("journal_mode")).lower() != "wal":
            return True
        busy, _, _ = self.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

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

    # -------------------------------------------------------- foreign keys

    def read_foreign_keys(self) -> list:
        from nitejarctl.db.foreign_keys import ForeignKey

        rows = self.execute_sql(
            "SELECT m.name, p.id, p.\"from\", p.\"table\", p.\"to\", p.on_delete "
            "FROM sqlite_master AS m JOIN pragma_foreign_key_list(m.name) AS p "
            "WHERE m.type = 'table' ORDER BY m.name, p.id, p.seq").fetchall()
        keys: dict = {}
        for child, ident, column, parent, to, on_delete in rows:
            entry = keys.setdefault((child, ident), [child, [], parent, [], on_delete.upper()])
            entry[1].append(column)
            entry[3].append(to)
        result = []
        for (child, ident), (_, columns, parent, parents, on_delete) in keys.items():
            parent = self._table_named(parent)
            if any(p is None for p in parents):  # REFERENCES parent: its primary key
                parents = self.get_primary_keys(parent) or ["rowid"]
            result.append(ForeignKey(child, tuple(columns), parent, tuple(parents), on_delete, ident))
        return result

    def _table_named(self, name: str) -> str:
        """The table's name as the schema spells it (SQLite's names ignore case)."""
        if name in self.tables():
            return name
        return next((t for t in self.tables() if t.lower() == name.lower()), name)

    def dangling_references(self) -> dict:
        """SQLite's own `pragma foreign_key_check`, table by table (an anti-join
        where SQLite cannot check a key: a parent key that is not unique)."""
        from collections import Counter

        import peewee as pw

        keys = {(fk.child, fk.ident): fk for fk in self.foreign_keys()}
        found: Counter = Counter()
        for child in sorted({fk.child for fk in keys.values()}):
            quoted = child.replace('"', '""')
            cursor = self.execute_sql(f'PRAGMA foreign_key_check("{quoted}")')
            try:
                while rows := cursor.fetchmany(5000):
                    found.update(keys[(child, ident)] for _, _, _, ident in rows if (child, ident) in keys)
            except pw.OperationalError:
                for fk in keys.values():
                    if fk.child == child:
                        found[fk] = self.count_dangling(fk)
            finally:
                cursor.close()
        return {fk: n for fk, n in found.items() if n}

    @contextlib.contextmanager
    def cascades_by_hand(self):
        """Foreign keys off on this connection: the change deletes and sets NULL
        every row the keys say itself, children first; SQLite would otherwise
        look, for every row deleted, for its children in each child table —
        a scan of the table where its key column has no index."""
        if self.transaction_depth() > 0:  # the pragma does nothing inside a transaction
            yield
            return
        enforced = self.pragma("foreign_keys")
        self.execute_sql("PRAGMA foreign_keys = OFF")
        try:
            yield
        finally:
            if enforced:
                self.execute_sql("PRAGMA foreign_keys = ON")

    def listed_rows(self, name: str, source, condition):
        """The rowids of the rows of `source` (a table, db.foreign_keys.table)
        in `condition`, listed in temporary table `name` (db.foreign_keys.Listed):
        its INTEGER PRIMARY KEY is the rowid, so that a batch of the list is a
        rowid range of the table."""
        import peewee as pw

        from nitejarctl.db import foreign_keys as fks

        drop = fks.drop_temporary(self, name)
        drop()
        self.execute_sql(f'CREATE TEMPORARY TABLE "{name}" (k INTEGER PRIMARY KEY)')
        rowid = pw.Column(source, "rowid")
        select = source.select(rowid).where(condition).order_by(rowid)
        sql, params = select.sql()
        count = self.execute_sql(f'INSERT INTO temp."{name}" (k) {sql}', params).rowcount
        model = fks.temporary_model(self, name, pw.IntegerField(primary_key=True))

        def within(target, batch):
            listed = model.select(model.k)
            return pw.Column(target, "rowid").in_(listed if batch is None else listed.where(batch))

        return fks.Listed(model, count, within, drop)


def _number(text: str):
    """`text` as an int or float when it is one written plainly ("12", "-3",
    "0.5"; not "007" or "1e3"), else as it is."""
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if str(value) == text else text
    return text
