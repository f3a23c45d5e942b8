"""`nitejarctl repair`: mend what nitejar leaves behind in its database."""

from __future__ import annotations

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import dry_run_option, group, yes_option


@group()
def repair():
    """Mend what nitejar leaves behind in its database.

    \b
    Examples:
      nitejarctl repair orphans --dry-run
      nitejarctl repair orphans --yes -o json
    """


@repair.command(name="orphans")
@click.option("--detach", is_flag=True,
              help="Also set to NULL the dangling values of keys without ON DELETE action "
                   "(where the column allows NULL), instead of keeping them.")
@dry_run_option
@yes_option
@pass_settings
def repair_orphans(settings, detach, dry_run, yes):
    """Remove dangling references: rows whose parent is gone (nitejar writes
    without enforcing its foreign keys), as the keys say.

    A key ON DELETE CASCADE: the row is deleted, and with it what the keys tie
    to it. ON DELETE SET NULL: the value is set to NULL. A key without
    either keeps its rows as they are (reported as kept; --detach sets them
    to NULL where the column allows). A row whose references all have their
    parent is never deleted for itself. The preview (--dry-run, the question)
    counts exactly what the repair changes: -o json gives {"orphans": {key:
    rows}, "kept": {key: rows}, "deletes": {table: rows}, "nulls":
    {"table.column": rows}}. Batched like every bulk change; asks on a
    terminal, --yes skips the question.

    \b
    Examples:
      nitejarctl repair orphans --dry-run
      nitejarctl doctor -o json | jq .orphans
      nitejarctl repair orphans --yes
    """
    from nitejarctl.cli.changes import CascadeReport, emit_cascade, run_cascade
    from nitejarctl.maintenance.cascade import Cascade, Effect, dangling_roots

    db = settings.database()
    found = db.dangling_references()
    roots, nulls, kept = dangling_roots(db, found, detach=detach)
    orphans = _by_name(found.items())
    report = CascadeReport("dangling references", extra={"orphans": orphans, "kept": _by_name(kept.items())})
    if not roots and not nulls:
        emit_cascade(settings, report, Effect())
        settings.info("no dangling references to repair" + _kept_words(kept))
        return
    cascade = Cascade(db, roots, dangling_nulls=nulls,
                      detach={fk.name for fk in db.foreign_keys() if detach and fk.restricts})
    run_cascade(settings, cascade, report, dry_run=dry_run, yes=yes)
    if kept:
        settings.info(_kept_words(kept).lstrip("; "))


def _by_name(items) -> dict:
    named: dict = {}
    for fk, n in items:
        named[fk.name] = named.get(fk.name, 0) + n
    return dict(sorted(named.items()))


def _kept_words(kept: dict) -> str:
    from nitejarctl.output.words import plural

    if not kept:
        return ""
    keys = ", ".join(f"{name} {n:,}" for name, n in _by_name(kept.items()).items())
    return (f"; kept {plural(sum(kept.values()), 'dangling reference')} of keys without ON DELETE action "
            f"({keys}): --detach sets them to NULL where the column allows")
