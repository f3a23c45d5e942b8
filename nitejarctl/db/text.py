"""Text that is not valid UTF-8 in a SQLite database.

SQLite stores whatever bytes a writer hands it as TEXT; Python's sqlite3
decodes each value strictly and fails the whole fetch on the first one that
is not UTF-8. Decoding every value tolerantly costs a Python call per value
(a listing of a million rows pays for it), so the strict decoding stays until
a value needs more: then the statement is read again from its start with
such bytes shown as backslash escapes (`\\xff`), skipping the rows already
handed out, and the connection keeps decoding that way for the rest of the
command. Values are shown as they are, never changed: nitejarctl writes none
of them back unless a command edits that very value.
"""

from __future__ import annotations

import sqlite3

NOTE = ("note: some text in this database is not valid UTF-8; its bytes are shown as "
        "\\x escapes")


def decoded(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def skip_rows(cursor, count: int, chunk: int) -> None:
    """Read past the first `count` rows of `cursor` (those already handed
    over, when a query is run again tolerantly), `chunk` at a time."""
    while count > 0 and (skipped := len(cursor.fetchmany(min(count, chunk)))):
        count -= skipped


def is_select(sql: str) -> bool:
    return sql[:6].upper() == "SELECT"


def undecodable(exc: BaseException) -> bool:
    return "Could not decode to UTF-8" in str(exc)


class Rereading:
    """A SELECT's cursor that, when a row cannot be decoded, reads the
    statement again (tolerantly) and carries on after the rows it gave."""

    def __init__(self, db, cursor, sql: str, params):
        self._db, self._cursor, self._sql, self._params = db, cursor, sql, params
        self._read = 0

    def __getattr__(self, name):
        return getattr(self._cursor, name)

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row

    def _again(self) -> None:
        self._cursor.close()
        self._db.tolerate_text()
        cursor = self._db.execute_sql(self._sql, self._params)
        skip = self._read
        while skip > 0:
            skipped = len(cursor.fetchmany(min(skip, 5000)))
            if not skipped:
                break
            skip -= skipped
        self._cursor = cursor

    def fetchone(self):
        try:
            row = self._cursor.fetchone()
        except sqlite3.OperationalError as exc:
            if not undecodable(exc):
                raise
            self._again()
            row = self._cursor.fetchone()
        if row is not None:
            self._read += 1
        return row

    def fetchmany(self, size=None):
        size = self._cursor.arraysize if size is None else size
        try:
            rows = self._cursor.fetchmany(size)
        except sqlite3.OperationalError as exc:
            if not undecodable(exc):
                raise
            self._again()
            rows = self._cursor.fetchmany(size)
        self._read += len(rows)
        return rows

    def fetchall(self):
        rows = []
        while chunk := self.fetchmany(5000):
            rows += chunk
        return rows
