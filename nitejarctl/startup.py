"""The garbage collector over a nitejarctl process's life.

Start-up imports Click, Peewee, psycopg2 and nitejarctl's own modules: tens
of thousands of objects that live until the process ends, and no garbage.
Collecting while they are made only walks them again and again, and so
does the interpreter's collection at exit: on a command that has little to
do, the two cost a fifth of its time. So `begin` pauses the collector for
the start-up, `ready` (the database is open, the command's imports are
done) moves what exists into the permanent generation, which no collection
walks, and resumes collecting, and `end` does the same before the
interpreter's own teardown. Only the `nitejarctl` program calls `begin`:
code that imports nitejarctl in a process of its own keeps its collector
as it is.
"""

from __future__ import annotations

import gc

_paused = False


def begin() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def ready() -> None:
    """The start-up is over: collect from here on (the rows a command reads
    and writes are garbage that must go), never walking what it made."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def end() -> None:
    """The command is done and its database closed: what is garbage goes now
    (a collection of what came after `ready`, whose finalizers run as they
    would at exit); the rest lives until the process ends, and the
    interpreter's teardown need not walk it."""
    ready()
    gc.collect()
    gc.freeze()
