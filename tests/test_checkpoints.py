"""The WAL while a bulk change runs on SQLite (db.checkpoints): checkpoints in
the background, and every other one a catch-up between two batches, after
which the next commit starts the WAL again from its beginning."""

import os
import sqlite3

from nitejarctl.db.checkpoints import Schedule, Session, bulk_session
from nitejarctl.models import IdempotencyKey as K

from .test_batch import keys, wal_db  # noqa: F401  (fixture)


class FakeCheckpointer:
    frames = 0

    def __init__(self, log):
        self.log = log

    def request(self):
        self.log.append("request")

    def catch_up(self):
        self.log.append("catch up")


def every_commit(**kwargs) -> Schedule:
    """A schedule that checkpoints after every commit once `eager` is over."""
    return Schedule(**{"eager": 0.0, "first_every": 0.0, "shortest": 0.0, "wal_bytes": 1, **kwargs})


def test_every_other_checkpoint_is_a_catch_up_after_the_rows_so_far_are_read(tmp_path):
    log = []
    schedule = every_commit()
    session = Session(str(tmp_path / "x.db-wal"), schedule, FakeCheckpointer(log))
    for _ in range(4):
        session.committed(0.1)
        session.between(lambda: log.append("settle"))
    assert log == ["request", "settle", "catch up", "request", "settle", "catch up"]


def test_no_catch_up_while_the_schedule_is_eager(tmp_path):
    log = []
    session = Session(str(tmp_path / "x.db-wal"), every_commit(eager=1.0), FakeCheckpointer(log))
    for _ in range(4):  # 0.8 s of transactions: each checkpointed in the background
        session.committed(0.2)
        session.between()
    assert log == ["request"] * 4
    session.committed(0.2)  # 1.0 s: eager no more
    session.between()
    session.committed(0.2)
    session.between()
    assert log == ["request"] * 5 + ["catch up"]


def wal_frames(path: str) -> tuple:
    """(frames in the WAL, frames copied) as a PASSIVE checkpoint finds them."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return frames, copied
    finally:
        conn.close()


def test_the_wal_starts_again_after_a_catch_up(wal_db, sqlite_url):  # noqa: F811
    db = wal_db
    keys(4000)
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL empty: the change's frames alone
    page = db.pragma("page_size")
    sizes, catch_ups = [], 0
    with bulk_session(db, sqlite_url, every_commit(frame_bytes=page + 24)) as session:
        for start in range(0, 4000, 250):
            catch_ups += session.due
            session.between()
            with db.atomic():
                K.delete().where((K.created_at >= start) & (K.created_at < start + 250)).execute()
            session.committed(0.01)
            sizes.append(os.path.getsize(sqlite_url + "-wal"))
    assert K.select().count() == 0
    assert catch_ups >= 6
    # after each catch-up the WAL started again from its beginning: the file grew while the
    # first few batches were written (two batches' frames at most), and then no more
    assert len(set(sizes[5:])) == 1 and max(sizes) == sizes[-1], sizes
    assert os.path.getsize(sqlite_url + "-wal") == 0  # the last checkpoint copied all and truncated
    assert wal_frames(sqlite_url) == (0, 0)
