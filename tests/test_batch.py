"""Batched bulk writes: key-range batches, their size, progress, the rows they
return in key order, and the SQLite connection settings kept only meanwhile."""

import os

import pytest

from nitejarctl.db import open_database, parse_url
from nitejarctl.models import IdempotencyKey as K
from nitejarctl.repositories import _batch


@pytest.fixture
def wal_db(sqlite_url):
    """A connection of nitejarctl's own to the migrated SQLite test database (WAL)."""
    db = open_database(parse_url(sqlite_url))
    yield db
    db.close()


def keys(n, start=0):
    K.insert_many([{"key": f"k{i:05}", "created_at": i} for i in range(start, start + n)]).execute()


def test_batches_cover_every_row_once_and_report_progress(db):
    keys(25)
    done, conditions = [], []

    def apply(condition):
        conditions.append(condition)
        return K.update(created_at=K.created_at + 1000).where(condition).execute()

    assert _batch.in_batches(db, K, K.created_at < 20, apply, batch_size=6, progress=done.append) == 20
    assert sorted(k.created_at for k in K.select()) == [*range(20, 25), *range(1000, 1020)]
    assert done[-1] == 20 and done == sorted(done) and len(done) == len(conditions) >= 2


def test_next_size_aims_at_the_target_within_half_and_double(monkeypatch):
    monkeypatch.setattr(_batch, "TARGET_SECONDS", 0.3)
    assert _batch._next_size(10_000, 0.3) == 10_000
    assert _batch._next_size(10_000, 0.6) == 5_000
    assert _batch._next_size(10_000, 6.0) == 5_000  # at most half at once
    assert _batch._next_size(10_000, 0.001) == 20_000  # at most double
    assert _batch._next_size(600, 10.0) == _batch.MIN_BATCH
    assert _batch._next_size(_batch.MAX_BATCH, 0.0) == _batch.MAX_BATCH


def test_returning_hands_over_rows_in_key_order(db):
    keys(12)
    batches = []
    query = K.delete().where(K.created_at.in_([11, 3, 7, 0, 5]))
    assert _batch.returning(db, query, K, [K.key, K.created_at], batches.append) == 5
    rows = [row for batch in batches for row in batch]
    assert rows == sorted(rows) == [("k00000", 0), ("k00003", 3), ("k00005", 5), ("k00007", 7),
                                    ("k00011", 11)]
    assert K.select().count() == 7


def _pragmas(db):
    return tuple(db.execute_sql(f"PRAGMA {p}").fetchone()[0] for p in ("wal_autocheckpoint", "cache_size"))


def test_sqlite_connection_checkpoints_in_the_background_and_restores_its_settings(wal_db, sqlite_url, monkeypatch):
    db = wal_db
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    before = _pragmas(db)
    keys(3000)
    events = []
    checkpointer = _batch.Checkpointer
    monkeypatch.setattr(checkpointer, "request",
                        lambda self, request=checkpointer.request: events.append("request") or request(self))
    monkeypatch.setattr(checkpointer, "finish",
                        lambda self, finish=checkpointer.finish: events.append("finish") or finish(self))

    def apply(condition):
        events.append(_pragmas(db))
        return K.delete().where(condition).execute()

    assert _batch.in_batches(db, K, K.created_at >= 0, apply, batch_size=500) == 3000
    assert events[0] == (0, -_batch.BULK_CACHE_KIB)  # no autocheckpoint meanwhile, a larger cache
    assert events[1] == "request"  # a checkpoint as soon as the first batch committed
    assert events.count("request") >= 2 and events[-1] == "finish"  # and one at the end
    assert _pragmas(db) == before
    assert os.path.getsize(sqlite_url + "-wal") == 0  # everything copied, the WAL file given back
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert db.execute_sql("PRAGMA integrity_check").fetchone() == ("ok",)


def test_checkpoints_space_out_once_the_change_is_no_longer_young(wal_db, sqlite_url, monkeypatch):
    db = wal_db
    keys(3000)
    requests = []
    request = _batch.Checkpointer.request
    monkeypatch.setattr(_batch.Checkpointer, "request", lambda self: requests.append(1) or request(self))
    monkeypatch.setattr(_batch, "EAGER_SECONDS", 0.0)
    assert _batch.in_batches(db, K, K.created_at >= 0, lambda c: K.delete().where(c).execute(),
                             batch_size=500) == 3000
    assert requests == []  # far from FIRST_CHECKPOINT_SECONDS and WAL_TARGET_BYTES: none meanwhile
    assert os.path.getsize(sqlite_url + "-wal") == 0  # the last checkpoint took it all


def test_a_failed_checkpoint_is_an_operational_error(wal_db, sqlite_url, monkeypatch):
    from nitejarctl.errors import OperationalProblem

    db = wal_db
    keys(10)
    checkpointer = _batch.Checkpointer(sqlite_url)
    checkpointer._conn.close()  # every checkpoint now fails
    with pytest.raises(OperationalProblem, match="^checkpoint failed: Cannot operate on a closed database"):
        checkpointer.finish()
    monkeypatch.setattr(_batch, "Checkpointer", lambda path: checkpointer)
    checkpointer._error = None
    with pytest.raises(RuntimeError, match="batch failed"):  # the change's own error wins
        _batch.in_batches(db, K, K.created_at >= 0, lambda c: (_ for _ in ()).throw(RuntimeError("batch failed")))
    assert K.select().count() == 10


def test_settings_are_restored_after_a_failing_batch(wal_db):
    db = wal_db
    before = _pragmas(db)
    keys(10)

    def apply(condition):
        raise RuntimeError("batch failed")

    with pytest.raises(RuntimeError):
        _batch.in_batches(db, K, K.created_at >= 0, apply)
    assert _pragmas(db) == before and K.select().count() == 10


@pytest.fixture
def rollback_journal(tmp_path):
    """A migrated SQLite database in rollback-journal mode (not WAL): (db, path)."""
    from nitejarctl import migrations

    path = str(tmp_path / "plain.db")
    db = open_database(parse_url(path), create=True)
    try:
        migrations.migrate(db)
        db.execute_sql("PRAGMA journal_mode = DELETE")
        yield db, path
    finally:
        db.close()


def test_no_wal_no_changed_settings(rollback_journal):
    """A database not in WAL mode (here rollback journal) is left as it is."""
    db, path = rollback_journal
    before = _pragmas(db)
    keys(5)
    seen = []
    _batch.in_batches(db, K, K.created_at >= 0,
                      lambda c: seen.append(_pragmas(db)) or K.delete().where(c).execute())
    assert seen == [before] and _pragmas(db) == before
    assert not os.path.exists(path + "-wal") or os.path.getsize(path + "-wal") == 0


def test_a_reader_keeps_the_wal_and_nobody_waits(sqlite_url):
    import sqlite3
    import time

    db = open_database(parse_url(sqlite_url))
    reader = sqlite3.connect(sqlite_url, isolation_level=None)
    try:
        keys(2000)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM idempotency_keys").fetchone() == (2000,)
        started = time.monotonic()
        assert _batch.in_batches(db, K, K.created_at >= 0, lambda c: K.delete().where(c).execute()) == 2000
        assert time.monotonic() - started < 2  # the busy timeout is 5 s: no wait for the reader
        assert os.path.getsize(sqlite_url + "-wal") > 0  # still in use by the reader's snapshot
        assert reader.execute("SELECT count(*) FROM idempotency_keys").fetchone() == (2000,)
        reader.execute("COMMIT")
    finally:
        reader.close()
        db.close()


def test_changed_rows_are_handed_over_in_key_order_with_their_new_values(db):
    keys(30)
    handed = []
    changed = _batch.change_in_batches(db, K, K.created_at < 25, {K.created_at: 1000},
                                       columns=[K.key, K.created_at], sink=handed.append, batch_size=10)
    assert changed == 25
    rows = [row for chunk in handed for row in chunk]
    assert rows == [(f"k{i:05}", 1000) for i in range(25)]  # the new values, in key order
    assert sorted(k.created_at for k in K.select()) == [*range(25, 30), *[1000] * 25]
    handed.clear()
    assert _batch.change_in_batches(db, K, K.created_at == 1000, None, columns=[K.key],
                                    sink=handed.append, batch_size=10) == 25
    assert sorted(row for chunk in handed for row in chunk) == [(f"k{i:05}",) for i in range(25)]
    assert K.select().count() == 5


def test_a_batch_that_changes_other_rows_than_it_read_is_rolled_back(wal_db, monkeypatch):
    from peewee import fn

    from nitejarctl.errors import OperationalProblem

    db = wal_db
    keys(10)
    # A condition that holds for every row on the reading connection, and on the writing
    # one only while the batch's key scan looks (ten rows), not when the DELETE looks again.
    calls = []
    db.connection().create_function("visible", 1, lambda key: calls.append(key) or len(calls) <= 10)
    connect = _batch._connect

    def reader(path, mode, **kwargs):
        conn = connect(path, mode, **kwargs)
        conn.create_function("visible", 1, lambda key: 1)
        return conn

    monkeypatch.setattr(_batch, "_connect", reader)
    with pytest.raises(OperationalProblem, match="^idempotency_keys: a batch changed 0 rows where 10 were "
                                                 "read; it was rolled back$"):
        _batch.change_in_batches(db, K, fn.visible(K.key) == 1, None, columns=[K.key],
                                 sink=lambda rows: None)
    assert K.select().count() == 10


def test_the_change_runs_in_its_own_thread_beside_the_reading_of_its_rows(wal_db, monkeypatch):
    import threading

    db = wal_db
    keys(50)
    elsewhere = []
    background = _batch._Background

    def spied(call):
        return background(lambda: elsewhere.append(threading.current_thread() is not threading.main_thread())
                          or call())

    monkeypatch.setattr(_batch, "_Background", spied)
    handed = []
    assert _batch.change_in_batches(db, K, K.created_at < 40, {K.created_at: -1}, columns=[K.key, K.created_at],
                                    sink=handed.append, batch_size=15) == 40
    assert len(elsewhere) >= 2 and all(elsewhere)
    assert [row for chunk in handed for row in chunk] == [(f"k{i:05}", -1) for i in range(40)]
    assert K.select().where(K.created_at == -1).count() == 40
    assert db.execute_sql("PRAGMA integrity_check").fetchone() == ("ok",)


def test_changed_rows_without_wal_come_from_returning(rollback_journal):
    db, _ = rollback_journal  # readers would block the writer: no reading beside it
    keys(30)
    handed = []
    assert _batch.change_in_batches(db, K, K.created_at >= 5, None, columns=[K.key], sink=handed.append,
                                    batch_size=10) == 25
    assert [row for chunk in handed for row in chunk] == [(f"k{i:05}",) for i in range(5, 30)]
    assert K.select().count() == 5


def test_pauses_for_waiting_writers_every_so_often_on_sqlite(db, backend, monkeypatch):
    keys(39)
    slept = []
    monkeypatch.setattr(_batch.time, "sleep", slept.append)
    monkeypatch.setattr(_batch, "YIELD_AFTER_SECONDS", 0.0)  # after every batch
    monkeypatch.setattr(_batch, "MIN_BATCH", 10)
    monkeypatch.setattr(_batch, "MAX_BATCH", 10)
    assert _batch.in_batches(db, K, K.created_at >= 0, lambda c: K.delete().where(c).execute(),
                             batch_size=10) == 39
    # between batches, not after the last one; PostgreSQL locks rows, not the database
    assert slept == ([_batch.YIELD_SECONDS] * 3 if backend == "sqlite" else [])


def test_a_writer_gets_the_lock_during_the_pause(sqlite_url, monkeypatch):
    import sqlite3
    import threading
    import time

    db = open_database(parse_url(sqlite_url))
    writer = sqlite3.connect(sqlite_url, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        keys(40)
        monkeypatch.setattr(_batch, "YIELD_AFTER_SECONDS", 0.0)
        monkeypatch.setattr(_batch, "YIELD_SECONDS", 0.3)  # wide, for a loaded machine
        monkeypatch.setattr(_batch, "MAX_BATCH", 10)
        waits = []

        def apply(condition):
            changed = K.delete().where(condition).execute()
            if not waits:  # a writer starts waiting while the first batch holds the lock
                thread = threading.Thread(target=write)
                thread.start()
                waits.append(thread)
            time.sleep(0.25)  # every batch holds the lock a while
            return changed

        def write():
            started = time.monotonic()
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("INSERT INTO idempotency_keys (key, created_at) VALUES ('nitejar', -1)")
            writer.execute("COMMIT")
            waits.append(time.monotonic() - started)

        assert _batch.in_batches(db, K, K.created_at >= 0, apply, batch_size=10) == 40
        waits[0].join()
        assert waits[1] < 0.8  # it did not wait for the whole change (four batches, 1 s, and pauses)
        assert [k.key for k in K.select()] == ["nitejar"]
    finally:
        writer.close()
        db.close()


SECOND_CHANGE = """
import sys, time
from nitejarctl.db import open_database, parse_url
from nitejarctl.models import IdempotencyKey as K
from nitejarctl.repositories import _batch

db = open_database(parse_url(sys.argv[1]))
print("ready", flush=True)
def apply(condition):
    print("batch", time.time(), flush=True)
    return K.delete().where(condition).execute()
_batch.in_batches(db, K, K.created_at >= 20, apply, batch_size=10)
"""


def test_bulk_changes_on_one_file_take_turns(sqlite_url, monkeypatch):
    import subprocess
    import sys
    import time

    db = open_database(parse_url(sqlite_url))
    monkeypatch.setattr(_batch, "YIELD_AFTER_SECONDS", 0.0)  # pauses in which the second could get the lock
    monkeypatch.setattr(_batch, "YIELD_SECONDS", 0.3)
    try:
        keys(40)
        started = []

        def apply(condition):
            if not started:  # the second change starts while this one is under way, and waits for its turn
                started.append(subprocess.Popen([sys.executable, "-c", SECOND_CHANGE, sqlite_url],
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                assert started[0].stdout.readline() == "ready\n"
            time.sleep(0.3)
            return K.delete().where(condition).execute()

        _batch.in_batches(db, K, K.created_at < 20, apply, batch_size=10)
        done = time.time()
        second = started[0]
        out, err = second.communicate(timeout=60)
        assert (second.returncode, err) == (0, "")
        batches = [float(line.split()[1]) for line in out.splitlines()]
        assert len(batches) == 2 and min(batches) >= done  # not one of its batches before the first change ended
        assert os.path.exists(sqlite_url + _batch.LOCK_SUFFIX)
        assert K.select().count() == 0
    finally:
        db.close()
