"""The copy on several connections at once ("lanes").

A large table is planned in parts, rowid ranges of about as many rows each
(one progress row per part, so that a resumed transfer continues each where
it stopped). The lanes take the parts of the largest table first, a part at
a time, each lane reading through a connection of its own to the snapshot
(source.Snapshot.readers) and writing through one of its own to the target:
the largest table is copied soonest, and its keys and indexes are built on
the workers while the lanes copy the next tables.
"""

from __future__ import annotations

import threading
import time

from nitejarctl.maintenance.transfer import finishing
from nitejarctl.maintenance.transfer import target as T
from nitejarctl.maintenance.transfer.copying import Stopped, copy_part

PART_ROWS = 5_000  # no part smaller than this (a small table is one part)


def copy(snapshot, conn, target_url, order, states, layouts, by_name, options, rejects, hooks, finish) -> None:
    """Copy the pending parts of the tables in `order` on `options.lanes`
    connections (`conn` and more); `finish(name)` once a table is copied."""
    todo = [(name, part) for name in order if states[name].state == "pending"
            for part in states[name].parts if part.state == "pending"]
    left = {name: sum(p.state == "pending" for p in states[name].parts) for name in order}
    for name in order:  # every part copied, and then stopped before the table was marked
        if states[name].state == "pending" and not left[name]:
            _copied(conn, name, finish)
    lock = threading.Lock()
    failed: list[BaseException] = []
    bars = _Bars(hooks, snapshot, states)
    began: dict[str, float] = {}

    def lane(c, reader):
        while True:
            with lock:
                if not todo or failed:
                    return
                name, part = todo.pop(0)
                began.setdefault(name, time.monotonic())
            with bars.part(name) as advance:
                copy_part(reader, c, layouts[name], part, on_bad=options.on_bad_value, rejects=rejects,
                          progress=advance, stop=lambda: bool(failed))
                with c.cursor() as cur:
                    T.set_state(cur, part.item, "copied")
                c.commit()
            with lock:
                left[name] -= 1
                last = not left[name]
                by_name[name].seconds = time.monotonic() - began[name]
            if last:
                _copied(c, name, finish)

    def other_lane(c, reader):
        try:
            lane(c, reader)
        except BaseException as exc:
            failed.append(exc)
        finally:
            c.close()

    count = min(options.lanes, len(todo))
    readers = (snapshot.readers or [snapshot]) * count
    threads = [threading.Thread(target=other_lane, args=(finishing.connect(target_url), readers[i]), daemon=True)
               for i in range(1, count)]
    for thread in threads:
        thread.start()
    try:
        if count:
            lane(conn, readers[0])
    except BaseException as exc:  # the other lanes stop at their next batch
        failed.append(exc)
    finally:
        for thread in threads:
            thread.join()
    errors = [e for e in failed if not isinstance(e, Stopped)] or failed
    if errors:
        raise errors[0]


def _copied(conn, name, finish) -> None:
    with conn.cursor() as cur:
        T.set_state(cur, "table:" + name, "copied")
    conn.commit()
    finish(name)


class _Bars:
    """One progress bar per table, however many lanes copy its parts: shown
    while any of them is being copied."""

    def __init__(self, hooks, snapshot, states):
        self.hooks, self.snapshot = hooks, snapshot
        self.lock = threading.Lock()
        self.completed = {name: state.rows for name, state in states.items()}
        self.open: dict[str, list] = {}  # table → [its bar's context, the bar, lanes copying it]

    def part(self, name: str):
        return _Part(self, name)


class _Part:
    def __init__(self, bars: _Bars, name: str):
        self.bars, self.name = bars, name

    def __enter__(self):
        bars, name = self.bars, self.name
        with bars.lock:
            if name not in bars.open:
                context = bars.hooks.progress(name, lambda: bars.snapshot.count(name))
                bar = context.__enter__()
                bar.advance(bars.completed[name])
                bars.open[name] = [context, bar, 0]
            bars.open[name][2] += 1
            bar = bars.open[name][1]

        def advance(n):
            with bars.lock:
                bars.completed[name] += n
                bar.advance(n)

        return advance

    def __exit__(self, *exc):
        bars = self.bars
        with bars.lock:
            entry = bars.open[self.name]
            entry[2] -= 1
            if not entry[2]:
                del bars.open[self.name]
                entry[0].__exit__(*exc)
        return False
