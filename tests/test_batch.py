"""Batched bulk changes (db.batches, db.changed_rows, db.checkpoints): key-range
batches and their size, the rows they report in key order, the SQLite
connection settings kept only meanwhile, the pauses for nitejar's writers and
the turns bulk changes take. Behaviour is steered through parameters
(Batching, sleep, clock), never by patching the modules."""

import os
import subprocess
import sys
import threading
import time

import pytest
from peewee import fn

from nitejarctl.db import open_database, parse_url
from nitejarctl.db.batches import Batching, Bulk, run
from nitejarctl.db.changed_rows import Before, Change
from nitejarctl.db.checkpoints import BULK_CACHE_KIB, Schedule
from nitejarctl.db.turns import TurnLock
from nitejarctl.errors import OperationalProblem
from nitejarctl.models import IdempotencyKey as K

BY = {n: Batching(first=n, smallest=n, largest=n) for n in (1, 2, 6, 10, 500)}


@pytest.fixture
def wal_db(sqlite_url):
    """A connection of nitejarctl's own to the migrated SQLite test database (WAL)."""
    db = open_database(parse_url(sqlite_url))
    yield db
    db.close()


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


def keys(n, start=0):
    K.insert_many([{"key": f"k{i:05}", "created_at": i} for i in range(start, start + n)]).execute()


def changed(rows):
    return [row for batch in rows for row in batch]


def test_batches_cover_every_row_once_and_report_progress(db):
    keys(25)
    done = []
    change = Change(K, K.created_at < 20, {K.created_at: K.created_at + 1000})
    assert run(db, change, progress=done.append, batching=BY[6]) == 20
    assert sorted(k.created_at for k in K.select()) == [*range(20, 25), *range(1000, 1020)]
    assert done == [6, 6, 6, 2]  # each batch's own count, after its commit


def test_a_change_over_most_of_a_table_covers_it_once_in_batches_of_about_their_size(db, backend):
    """Nine rows in ten in scope: every row changed once, in batches of about
    the batch's size (on PostgreSQL each a range of the pages holding that many
    rows, read once, with no scan first for where its rows end)."""
    K.insert_many([{"key": f"k{i:05}", "created_at": i} for i in range(3000)]).execute()
    if backend == "postgresql":
        db.execute_sql("ANALYZE idempotency_keys")
    statements = []
    db.trace = lambda sql, params, seconds: statements.append(sql)
    done = []
    try:
        change = Change(K, K.created_at < 2700, {K.created_at: K.created_at + 100_000})
        assert run(db, change, progress=done.append, batching=BY[500]) == 2700
    finally:
        db.trace = None
    assert sorted(k.created_at for k in K.select()) == [*range(2700, 3000), *range(100_000, 102_700)]
    assert sum(done) == 2700 and len(done) >= 5
    assert max(done) <= 600, done  # about the size: the pages that hold 500 rows of the table
    assert len([s for s in statements if s.lstrip().startswith("UPDATE")]) == len(done)
    if backend == "postgresql":
        assert not [s for s in statements if s.lstrip().startswith("SELECT") and "OFFSET" in s], statements


def test_next_size_aims_at_the_target_within_half_and_double():
    batching = Batching(seconds=0.3, smallest=500, largest=100_000)
    assert batching.next_size(10_000, 0.3) == 10_000
    assert batching.next_size(10_000, 0.6) == 5_000
    assert batching.next_size(10_000, 6.0) == 5_000  # at most half at once
    assert batching.next_size(10_000, 0.001) == 20_000  # at most double
    assert batching.next_size(600, 10.0) == 500
    assert batching.next_size(100_000, 0.0) == 100_000


def test_changed_rows_come_in_key_order_with_their_new_values(db):
    keys(30)
    handed = []
    change = Change(K, K.created_at < 25, {K.created_at: 1000}, columns=[K.key, K.created_at])
    assert run(db, change, sink=handed.append, batching=BY[10]) == 25
    assert changed(handed) == [(f"k{i:05}", 1000) for i in range(25)]  # the new values, in key order
    assert sorted(k.created_at for k in K.select()) == [*range(25, 30), *[1000] * 25]
    handed.clear()
    assert run(db, Change(K, K.created_at == 1000, columns=[K.key]), sink=handed.append, batching=BY[10]) == 25
    assert changed(handed) == [(f"k{i:05}",) for i in range(25)]
    assert K.select().count() == 5


def test_values_from_before_the_change_and_expressions(db):
    keys(4)
    handed = []
    change = Change(K, K.created_at >= 2, {K.created_at: K.created_at * 10},
                    columns=[K.key, Before(K.created_at, "was"), K.created_at, fn.LENGTH(K.key).alias("n")])
    assert run(db, change, sink=handed.append) == 2
    assert change.names == ("key", "was", "created_at", "n")
    assert changed(handed) == [("k00002", 2, 20, 6), ("k00003", 3, 30, 6)]


def test_a_dry_run_hands_over_exactly_what_the_change_would(db):
    keys(12)
    change = Change(K, K.created_at.in_([11, 3, 7, 0, 5]), {K.created_at: -1}, columns=[K.key, K.created_at])
    preview = []
    assert Bulk(sink=preview.append, dry_run=True).apply(db, change) == 5
    assert Bulk(dry_run=True).apply(db, change) == 5  # a count, without the rows
    assert K.select().where(K.created_at == -1).count() == 0
    real = []
    assert Bulk(sink=real.append, batching=BY[2]).apply(db, change) == 5
    assert changed(real) == changed(preview) == [(f"k{i:05}", -1) for i in (0, 3, 5, 7, 11)]


def test_changed_rows_without_wal_are_read_before_the_change(rollback_journal):
    db, _ = rollback_journal  # readers would block the writer: no reading beside it
    keys(30)
    handed = []
    assert run(db, Change(K, K.created_at >= 5, columns=[K.key]), sink=handed.append, batching=BY[10]) == 25
    assert changed(handed) == [(f"k{i:05}",) for i in range(5, 30)]
    assert K.select().count() == 5


def test_a_batch_that_changes_other_rows_than_it_read_is_rolled_back(wal_db):
    db = wal_db
    keys(10)  # on this connection: its total_changes() is no longer 0, the reader's is
    change = Change(K, (K.created_at >= 0) & (fn.total_changes() == 0), columns=[K.key],
                    scope=K.created_at >= 0)
    with pytest.raises(OperationalProblem, match="^idempotency_keys: a batch changed 0 rows where 10 were "
                                                 "read; it was rolled back$"):
        run(db, change, sink=lambda rows: None)
    assert K.select().count() == 10


# ------------------------------------------------------------ SQLite (WAL)


def _pragmas(db):
    return tuple(db.execute_sql(f"PRAGMA {p}").fetchone()[0] for p in ("wal_autocheckpoint", "cache_size"))


def test_sqlite_connection_checkpoints_and_restores_its_settings(wal_db, sqlite_url):
    db = wal_db
    before = _pragmas(db)
    keys(3000)
    seen = []
    change = Change(K, K.created_at >= 0, columns=[K.key])
    assert run(db, change, sink=lambda rows: None, progress=lambda n: seen.append(_pragmas(db)),
               batching=BY[500]) == 3000
    assert seen[0] == (0, -BULK_CACHE_KIB)  # no autocheckpoint meanwhile, a larger cache
    assert _pragmas(db) == before
    assert os.path.getsize(sqlite_url + "-wal") == 0  # everything copied, the WAL file given back
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert db.execute_sql("PRAGMA integrity_check").fetchone() == ("ok",)


def test_checkpoint_schedule_eager_at_first_then_by_size_or_time():
    schedule = Schedule(eager=1.0, first_every=4.0, wal_bytes=1000, shortest=0.4, longest=10.0, frame_bytes=10)
    schedule.start(0)
    assert [schedule.committed(0.4, 100, 0) for _ in range(3)] == [True, True, True]  # 1.2 s: young
    assert schedule.committed(0.4, 200, 50) is False  # then not before 4 s of transactions …
    assert schedule.committed(0.4, 1300, 50) is True  # … unless the WAL grew by wal_bytes
    # 0.8 s of transactions wrote 50 frames of 10 bytes: wal_bytes takes 1.6 s at that pace
    assert [schedule.committed(0.4, 1300, 0) for _ in range(4)] == [False, False, False, True]


def test_settings_are_restored_after_a_failing_batch(wal_db):
    db = wal_db
    before = _pragmas(db)
    keys(10)
    db.execute_sql("CREATE TRIGGER fail BEFORE DELETE ON idempotency_keys BEGIN SELECT RAISE(ABORT, 'no'); END")
    with pytest.raises(Exception, match="no"):
        run(db, Change(K, K.created_at >= 0), sink=lambda rows: None)
    assert _pragmas(db) == before and K.select().count() == 10


def test_no_wal_no_changed_settings(rollback_journal):
    """A database not in WAL mode (here rollback journal) is left as it is."""
    db, path = rollback_journal
    before = _pragmas(db)
    keys(5)
    seen = []
    run(db, Change(K, K.created_at >= 0, columns=[K.key]), sink=lambda rows: None,
        progress=lambda n: seen.append(_pragmas(db)))
    assert seen == [before] and _pragmas(db) == before
    assert not os.path.exists(path + "-wal") or os.path.getsize(path + "-wal") == 0


def test_a_reader_keeps_the_wal_and_nobody_waits(sqlite_url):
    import sqlite3

    db = open_database(parse_url(sqlite_url))
    reader = sqlite3.connect(sqlite_url, isolation_level=None, timeout=0)
    try:
        keys(2000)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM idempotency_keys").fetchone() == (2000,)
        assert run(db, Change(K, K.created_at >= 0)) == 2000  # the checkpoints never wait for the reader
        assert os.path.getsize(sqlite_url + "-wal") > 0  # still in use by the reader's snapshot
        assert reader.execute("SELECT count(*) FROM idempotency_keys").fetchone() == (2000,)
        reader.execute("COMMIT")
    finally:
        reader.close()
        db.close()


# ------------------------------------------------------------------ pauses


def test_pauses_for_waiting_writers_every_so_often_on_sqlite(db, backend):
    keys(39)
    slept = []
    batching = Batching(first=10, smallest=10, largest=10, pause_after=0.0, pause=0.12)
    assert run(db, Change(K, K.created_at >= 0), batching=batching, sleep=slept.append) == 39
    # between batches, not after the last one; PostgreSQL locks rows, not the database
    assert slept == ([0.12] * 3 if backend == "sqlite" else [])


def test_a_writer_gets_the_lock_during_a_pause(rollback_journal):
    """A writer that starts waiting while a batch holds the lock commits in the
    pause after it, before the change goes on."""
    import sqlite3

    db, path = rollback_journal
    keys(40)
    events = []
    writer = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    threads = []

    def write():
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO idempotency_keys (key, created_at) VALUES ('nitejar', -1)")
        writer.execute("COMMIT")
        events.append("writer committed")

    def slow(key):  # the first batch holds the lock long enough for the writer to start waiting
        if key == "k00000" and not threads:
            threads.append(threading.Thread(target=write))
            threads[0].start()
            time.sleep(0.5)
        return 1

    db.connection().create_function("slow", 1, slow)
    batching = Batching(first=10, smallest=10, largest=10, pause_after=0.0, pause=0.5)
    try:
        run(db, Change(K, (K.created_at >= 0) & (fn.slow(K.key) == 1)), batching=batching,
            progress=lambda n: events.append("batch committed"))
    finally:
        for thread in threads:
            thread.join()
        writer.close()
    assert events.index("writer committed") < len(events) - 1  # before the change's last batch
    assert [k.key for k in K.select()] == ["nitejar"]


# ------------------------------------------------------------------ turns

SECOND_CHANGE = """
import sys, time
from nitejarctl.db import open_database, parse_url
from nitejarctl.db.batches import Batching, run
from nitejarctl.db.changed_rows import Change
from nitejarctl.models import IdempotencyKey as K

db = open_database(parse_url(sys.argv[1]))
print("ready", flush=True)
run(db, Change(K, K.created_at >= 20), batching=Batching(first=10, smallest=10, largest=10),
    progress=lambda n: print("batch", time.time(), flush=True))
"""


def test_bulk_changes_on_one_file_take_turns(wal_db, sqlite_url):
    db = wal_db
    keys(40)
    started = []

    def progress(n):
        if not started:  # the second change starts while this one is under way, and waits for its turn
            started.append(subprocess.Popen([sys.executable, "-c", SECOND_CHANGE, sqlite_url],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            assert started[0].stdout.readline() == "ready\n"
        time.sleep(0.3)

    batching = Batching(first=10, smallest=10, largest=10, pause_after=0.0, pause=0.3)
    run(db, Change(K, K.created_at < 20, columns=[K.key]), progress=progress, batching=batching)
    done = time.time()
    out, err = started[0].communicate(timeout=60)
    assert (started[0].returncode, err) == (0, "")
    batches = [float(line.split()[1]) for line in out.splitlines()]
    assert len(batches) == 2 and min(batches) >= done  # not one of its batches before the first change ended
    assert K.select().count() == 0


def _held(path):
    """Another process's turn: an exclusive flock on the lock file."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_waiting_for_a_turn_is_said_once_and_bounded(sqlite_url):
    fd = _held(sqlite_url + "-nitejarctl.lock")
    now = [0.0]
    waited = []
    lock = TurnLock(sqlite_url, wait=5.0, on_wait=lambda: waited.append(now[0]), notice_after=1.0,
                    clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    try:
        with pytest.raises(OperationalProblem, match=r"^another nitejarctl bulk change on this database did "
                                                     r"not finish within 5 s \(--lock-wait\)"):
            with lock:
                pass
    finally:
        os.close(fd)
    assert len(waited) == 1 and 1.0 <= waited[0] < 1.1
    with TurnLock(sqlite_url, wait=0.0):  # free again: taken at once
        pass


def test_the_lock_file_is_private_and_never_a_link(sqlite_url, tmp_path):
    path = sqlite_url + "-nitejarctl.lock"
    with TurnLock(sqlite_url, wait=0.0):
        pass
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.chmod(path, 0o644)  # as an older version left it
    with TurnLock(sqlite_url, wait=0.0):
        pass
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.remove(path)
    target = tmp_path / "elsewhere"
    os.symlink(target, path)  # dangling: following it would create the target
    with pytest.raises(OperationalProblem, match="is a symbolic link: refusing to follow it"):
        with TurnLock(sqlite_url, wait=0.0):
            pass
    assert not target.exists()
    os.remove(path)
    os.link(sqlite_url, path)  # the database itself under the lock's name
    with pytest.raises(OperationalProblem, match="is the database itself"):
        with TurnLock(sqlite_url, wait=0.0):
            pass
    os.remove(path)
    os.mkfifo(path)
    with pytest.raises(OperationalProblem, match="is not a regular file"):
        with TurnLock(sqlite_url, wait=0.0):
            pass


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_lock_file_that_cannot_be_written_is_locked_read_only(sqlite_url):
    """Another user's bulk change still takes turns: the lock file it may only
    read is locked through a read-only descriptor, never skipped."""
    import shutil
    import tempfile

    place = tempfile.mkdtemp(prefix="nitejarctl-turns-")
    try:
        os.chmod(place, 0o755)
        database = os.path.join(place, "nitejar.db")
        shutil.copy(sqlite_url, database)
        path = database + "-nitejarctl.lock"
        with TurnLock(database, wait=0.0):
            pass
        os.chmod(path, 0o644)  # root's, readable by others
        fd = _held(path)
        result_r, result_w = os.pipe()
        child = os.fork()
        if child == 0:  # as nobody
            try:
                os.setgid(65534)
                os.setuid(65534)
                TurnLock(database, wait=0.3).__enter__()
                message = "taken"
            except BaseException as exc:
                message = str(exc)
            os.write(result_w, message.encode())
            os._exit(0)
        os.close(result_w)
        os.waitpid(child, 0)
        message = os.read(result_r, 4096).decode()
        os.close(result_r)
        os.close(fd)
        assert "did not finish within 0.3 s" in message, message
    finally:
        shutil.rmtree(place)
