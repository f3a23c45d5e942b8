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

from nitejarctl.cli.context import say
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
                n = change(settings.bulk(sink=None if spool is None else _timed(spool), progress=progress,
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


def _timed(spool):
    """The spool's sink, its time counted as formatting (-v)."""
    from nitejarctl import timings

    def timed(rows):
        with timings.measured("format"):
            spool.add(rows)

    timed.text_columns = spool.text_columns  # the lines it takes formatted (db.batches.Bulk)
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
        if not done:  # nothing changed: nothing on stdout (an error before the first batch)
            pass
        elif spool is None:
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
    _account(words.interrupted(done, total), exc, done)


def _account(line: str, exc: BaseException, done: int) -> None:
    """What a stopped change says: Interrupted (its exit code) for a signal,
    else the line on stderr when something committed (the caller re-raises)."""
    if isinstance(exc, KeyboardInterrupt):
        raise Interrupted(line, EXIT_INTERRUPTED) from None
    if isinstance(exc, Terminated):
        raise Interrupted(line, EXIT_TERMINATED) from None
    if done:
        say(line)


# ------------------------------------------------- changes over the key graph


class CascadeReport:
    """How a change over the foreign-key graph (maintenance.cascade) speaks:
    `subject` names what is deleted ("agent 'x' (id)", one row of `table`),
    `key` and `row` its place in the JSON report ({"agent": {...}, "deletes":
    …, "nulls": …}; no subject row: None), `also` the label and words of each
    extra change run with it ({"closes": ("sprite_sessions", Words(…))})."""

    def __init__(self, subject: str, key: str | None = None, row: dict | None = None, *,
                 table: str | None = None, also: dict | None = None, extra: dict | None = None,
                 question=None):
        self.subject, self.key, self.row, self.table = subject, key, row, table
        self.question = question  # effect -> the question asked, when it should say more than words()
        self.also = also or {}
        self.extra = extra or {}  # more of the JSON report, before what changes

    def as_dict(self, effect) -> dict:
        report = {self.key: self.row} if self.key else {}
        report.update(self.extra)
        report["deletes"] = {t: n for t, n in effect.deletes.items() if n}
        report["nulls"] = {k: n for k, n in effect.nulls.items() if n}
        for name, (label, _) in self.also.items():
            report[name] = {label: effect.also[label]} if effect.also.get(label) else {}
        if effect.blocked:
            report["blocked"] = dict(effect.blocked)
        return report

    def rows(self, effect) -> list[dict]:
        rows = [{"change": "delete", "table": t, "rows": n} for t, n in effect.deletes.items() if n]
        rows += [{"change": "set null", "table": k, "rows": n} for k, n in effect.nulls.items() if n]
        rows += [{"change": words.verb, "table": label, "rows": effect.also[label]}
                 for label, words in self.also.values() if effect.also.get(label)]
        rows += [{"change": "blocked by", "table": k, "rows": n} for k, n in effect.blocked.items()]
        return rows

    def words(self, effect, *, past: bool = False, detail: bool = False) -> str:
        """"agent 'x' (id) and 12 rows in 5 other tables, set 2 references to
        NULL, close 1 sprite session" (`past`: "… 2 references set to NULL, 1
        sprite session closed"; `detail`: each table's rows too)."""
        from nitejarctl.output.words import plural

        others = {t: n for t, n in effect.deletes.items() if n}
        if self.table is not None and others.get(self.table):
            others[self.table] -= 1  # the subject itself
            if not others[self.table]:
                del others[self.table]
        parts = []
        if others:
            text = (f"{plural(sum(others.values()), 'row')} in "
                    f"{plural(len(others), 'other table' if self.table else 'table')}")
            if detail:
                text += " (" + ", ".join(f"{t} {n:,}" for t, n in others.items()) + ")"
            parts.append(text)
        nulls = sum(effect.nulls.values())
        if nulls:
            parts.append(f"{plural(nulls, 'reference')} set to NULL" if past
                         else f"set {plural(nulls, 'reference')} to NULL")
        for label, words in self.also.values():
            n = effect.also.get(label)
            if n:
                parts.append(f"{words.count(n)} {words.past}" if past else f"{words.verb} {words.count(n)}")
        if self.table is None:
            return ", ".join(parts) or "nothing"
        return self.subject + (" and " + ", ".join(parts) if parts else "")


def run_cascade(settings, cascade, report: CascadeReport, *, also=None, dry_run: bool, yes: bool,
                hints: dict | None = None) -> None:
    """Preview a cascade (maintenance.cascade), and unless `dry_run` ask,
    then change exactly that in batches; print the report (stdout) and one
    summary line (stderr). `also`: {label: Change} run with it first;
    `hints`: {key name: what to do} for the keys that may block it."""
    from nitejarctl.cli.options import confirm, require_confirmation

    require_confirmation(settings, yes, dry_run)
    effect = cascade.preview(also)
    if dry_run:
        emit_cascade(settings, report, effect)
        if effect.blocked:
            _refuse(cascade, effect, report, hints or {})
        settings.info(f"would delete {report.words(effect)} (dry run: nothing changed)")
        return
    _refuse(cascade, effect, report, hints or {})
    confirm(settings, report.question(effect) if report.question else f"Delete {report.words(effect, detail=True)}?",
            yes)
    with cascade.prepared(also) as plan:
        done = 0
        with settings.progress("deleting", plan.total) as bar:
            def progress(n: int) -> None:
                nonlocal done
                done += n
                bar.update(done)

            try:
                plan.run(settings.bulk(progress=progress))
            except BaseException as exc:
                bar.stop()
                _cascade_stopped(settings, report, plan, done, exc)
                raise
        changed = plan.effect()
    emit_cascade(settings, report, changed)
    settings.info(f"deleted {report.words(changed, past=True)}")
    if changed.rows != effect.rows:
        settings.warn(f"{changed.rows:,} rows changed where the preview counted {effect.rows:,}: "
                      "the database changed meanwhile")


def _refuse(cascade, effect, report: CascadeReport, hints: dict) -> None:
    try:
        cascade.refuse_blocked(effect, report.subject)
    except Exception as exc:
        told = [hint for key, hint in hints.items() if key in effect.blocked]
        if told:
            exc.message += " (" + "; ".join(told) + ")"
        raise


def emit_cascade(settings, report: CascadeReport, effect) -> None:
    """The report of a cascade: the JSON object, or a table of its changes."""
    from nitejarctl.output import Column

    if settings.fmt in ("json", "jsonl"):
        settings.emit_report(report.as_dict(effect))
    elif settings.fmt == "ids":
        if report.row is not None:
            settings.emit([report.row], ["id"])
    else:
        settings.emit(report.rows(effect), [Column("change"), Column("table"), Column("rows", "int")],
                      id_field="table", title=report.subject if report.row is not None else None)


def _cascade_stopped(settings, report: CascadeReport, plan, done: int, exc) -> None:
    try:
        emit_cascade(settings, report, plan.effect())
    except Exception:  # stdout is gone: the line on stderr still tells
        pass
    _account(Words("delete", "deleted", "row").interrupted(done, plan.total), exc, done)
