"""Running a change from the command line: the progress bar, the changed rows
(spooled until a bulk change is over), the summary line, and what an
interruption leaves behind.

A bulk change commits batch by batch. Whatever stops it — Ctrl-C, SIGTERM,
a database error — the rows of every committed batch are still printed in
the chosen format, and one line on stderr says how many were changed and that
the others are unchanged (a rerun finishes the work). Exit 130 on SIGINT, 143
on SIGTERM, 1 on an error.
"""

from __future__ import annotations

import contextlib
import itertools
import sys

import click

from nitejarctl.cli.options import COUNT, TABLE_LIMIT
from nitejarctl.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted, Terminated


class Words:
    """How a change speaks of itself: "closed 3 stale sessions". `verb` and
    `past` (close, closed), the `noun` changed (and `nouns` when not noun +
    "s"), a `suffix` (" as error"), the progress bar's `label` (closing), and
    `whole`: what an interruption counts the work in ("stale session")."""

    __slots__ = ("verb", "past", "noun", "nouns", "suffix", "label", "whole")

    def __init__(self, verb: str, past: str, noun: str, nouns: str | None = None, *, suffix: str = "",
                 label: str = "", whole: str = ""):
        self.verb, self.past, self.noun, self.nouns = verb, past, noun, nouns
        self.suffix, self.label, self.whole = suffix, label, whole

    def count(self, n: int) -> str:
        from nitejarctl.output.words import plural

        return plural(n, self.noun, self.nouns)

    def done(self, n: int, *, dry_run: bool = False, tail: str = "") -> str:
        if dry_run:
            return f"would {self.verb} {self.count(n)}{self.suffix}{tail} (dry run)"
        return f"{self.past} {self.count(n)}{self.suffix}{tail}"

    def interrupted(self, done: int, total: int | None) -> str:
        from nitejarctl.output.words import plural

        if not done:
            return "interrupted: nothing was changed"
        noun = self.whole or self.noun
        nouns = None if self.whole else self.nouns
        if total is not None and total >= done:
            of = f"{done:,} of {plural(total, noun, nouns)}"
        else:
            of = plural(done, noun, nouns)
        return f"interrupted: {self.past} {of}{self.suffix}; the others are unchanged (rerun to finish)"


def run_bulk(settings, change, *, fields, columns, words: Words, dry_run: bool = False, remaining=None,
             total: int | None = None, id_field: str = "id", display=None) -> int:
    """Run `change(bulk)`, a repository's bulk change given a db.batches.Bulk,
    then print the rows it changed and a summary line. `fields` name the
    values of the rows it reports; `remaining()` counts the rows still to
    change, or `total` is known beforehand (for the progress bar, and an
    interruption's report); `display` turns the rows a table shows into what
    it shows. With -o count no row is read at all (the statements return
    none): only their number is printed."""
    if settings.fmt == COUNT:
        spool = None
    elif settings.fmt == "table":
        from nitejarctl.output.spool import Spool

        spool = Spool(fields, keep=TABLE_LIMIT)
    else:
        from nitejarctl.output import LineWriter
        from nitejarctl.output.spool import Spool

        spool = Spool(fields, writer=LineWriter(columns, settings.fmt, id_field=id_field, fields=fields))
    done = 0
    if remaining is not None:
        def total():
            return done + remaining()
    with contextlib.nullcontext() if spool is None else spool:
        with settings.progress(words.label or words.verb, total) as bar:
            def progress(n: int) -> None:
                nonlocal done
                done += n
                bar.update(done)

            try:
                n = change(settings.bulk(sink=None if spool is None else _timed(spool.add), progress=progress,
                                         dry_run=dry_run))
            except BaseException as exc:
                bar.stop()
                if dry_run:
                    raise
                _stopped(settings, spool, columns, words, done, total, exc, display)
                raise
        if spool is None:
            settings.emit_count(n)
        else:
            _show(settings, spool, columns, n, dry_run=dry_run, display=display)
    settings.info(words.done(n, dry_run=dry_run))
    return n


def show_changed(settings, rows, columns, words: Words, *, dry_run: bool = False, tail: str = "",
                 id_field: str = "id", display=None) -> int:
    """Rows a change by id changed (or a preview's rows), streamed, then the
    summary line. Returns how many."""
    if settings.fmt == COUNT:
        n = settings.emit_count(sum(1 for _ in rows))
        settings.info(words.done(n, dry_run=dry_run, tail=tail))
        return n
    rows = iter(rows)
    head = itertools.islice(rows, TABLE_LIMIT) if settings.fmt == "table" else rows
    shown = settings.emit(display(head) if display else head, columns, id_field=id_field)
    n = shown + sum(1 for _ in rows)
    _more(settings, n - shown, dry_run)
    settings.info(words.done(n, dry_run=dry_run, tail=tail))
    return n


def _timed(sink):
    """The sink, its time counted as formatting (-v)."""
    from nitejarctl import timings

    def timed(rows):
        with timings.measured("format"):
            sink(rows)

    return timed


def _show(settings, spool, columns, n: int, *, dry_run: bool, display) -> None:
    from nitejarctl import timings

    if spool.writer is not None:
        with timings.measured("output"):
            spool.write_to(sys.stdout)
        return
    if not n:
        return
    rows = spool.dicts()
    shown = settings.emit(display(rows) if display else rows, columns)
    _more(settings, n - shown, dry_run)


def _more(settings, hidden: int, dry_run: bool) -> None:
    if hidden > 0:
        # After a real change the rows are gone or changed: no -o json to see them again.
        hint = " (-o tsv or -o json shows all)" if dry_run else ""
        settings.info(f"… {hidden:,} more not shown{hint}")


def _stopped(settings, spool, columns, words: Words, done: int, total, exc, display) -> None:
    """The change stopped: print what committed (-o count: how many) and say
    so; raise Interrupted for a signal (the caller re-raises anything else)."""
    try:
        if spool is None:
            settings.emit_count(done)
        else:
            _show(settings, spool, columns, done, dry_run=False, display=display)
    except Exception:  # stdout is gone: the line on stderr still tells
        pass
    if callable(total):
        try:
            total = total()
        except Exception:  # the database is what failed
            total = None
    line = words.interrupted(done, total)
    if isinstance(exc, KeyboardInterrupt):
        raise Interrupted(line, EXIT_INTERRUPTED) from None
    if isinstance(exc, Terminated):
        raise Interrupted(line, EXIT_TERMINATED) from None
    if done:
        click.echo(line, err=True)
