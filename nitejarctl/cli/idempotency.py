"""`nitejarctl idempotency`: list and prune idempotency keys."""

from __future__ import annotations

import sys

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import (
    DURATION,
    dry_run_option,
    effective_limit,
    emit_listing,
    fetch_limit,
    group,
    limit_option,
    yes_option,
)
from nitejarctl.errors import UsageProblem


@group()
def idempotency():
    """Idempotency keys (one per delivered webhook event): list and prune.

    \b
    Examples:
      nitejarctl idempotency list --older-than 30d
      nitejarctl idempotency prune --older-than 30d --yes
    """


def _columns():
    from nitejarctl.output import Column

    return [Column("key"), Column("work_item_id"), Column("created_at", "time")]


def _keys(n: int) -> str:
    return f"{n} idempotency {'key' if n == 1 else 'keys'}"


@idempotency.command(name="list")
@click.option("--older-than", type=DURATION, metavar="DURATION",
              help="Only keys created more than this long ago (e.g. 7d).")
@limit_option
@pass_settings
def idempotency_list(settings, older_than, limit):
    """List idempotency keys, oldest first.

    \b
    Examples:
      nitejarctl idempotency list --older-than 7d
      nitejarctl idempotency list -o json --limit 10
    """
    from nitejarctl.db import now, stream
    from nitejarctl.repositories import idempotency as repo

    db = settings.database()
    cutoff = now() - older_than if older_than is not None else None
    limit = effective_limit(settings, limit)
    rows = stream(db, repo.list_query(db, cutoff=cutoff, limit=fetch_limit(limit)))
    emit_listing(settings, rows, _columns(), limit=limit, id_field="key", noun="keys",
                 count=lambda: repo.count(db, cutoff=cutoff))


@idempotency.command(name="prune")
@click.option("--older-than", type=DURATION, metavar="DURATION", required=True,
              help="Delete keys created more than this long ago (e.g. 30d).")
@dry_run_option
@yes_option
@pass_settings
def idempotency_prune(settings, older_than, dry_run, yes):
    """Delete idempotency keys created more than DURATION ago.

    A key older than any retry window of the senders (Telegram, GitHub, …)
    no longer prevents a duplicate; deleting it frees space.

    \b
    Examples:
      nitejarctl idempotency prune --older-than 30d --dry-run
      nitejarctl idempotency prune --older-than 30d --yes -o ids
    """
    from nitejarctl.cli.memories import confirm_or_abort, report, spooled
    from nitejarctl.cli.options import progress, spool
    from nitejarctl.db import now, stream
    from nitejarctl.repositories import idempotency as repo

    if not (yes or dry_run or _interactive()):
        raise UsageProblem("refusing to delete without --yes when not on a terminal")
    db = settings.database()
    cutoff = now() - older_than
    noun = ("idempotency key", "idempotency keys")
    if dry_run:
        report(settings, stream(db, repo.prune_preview(db, cutoff)), _columns(), "would prune",
               dry_run=True, noun=noun, id_field="key")
        return
    if not yes:
        total = repo.count(db, cutoff=cutoff)
        if total:
            confirm_or_abort(settings, f"Delete {_keys(total)}?", yes)
    with spool(settings, repo.COLUMNS, _columns(), db, id_field="key") as pruned:
        with progress(settings, "pruning", lambda: bar.completed + repo.count(db, cutoff=cutoff)) as bar:
            n = spooled(settings, pruned, lambda: repo.prune(db, cutoff, pruned, progress=bar.update), "pruned")
        report(settings, pruned, _columns(), "pruned", n=n, noun=noun, id_field="key")


def _interactive() -> bool:
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
