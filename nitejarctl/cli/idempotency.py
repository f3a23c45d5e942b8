"""`nitejarctl idempotency`: list and prune idempotency keys."""

from __future__ import annotations

import click

from nitejarctl.cli.changes import Words, run_bulk
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import (
    DURATION,
    confirm,
    dry_run_option,
    group,
    listing,
    listing_options,
    require_confirmation,
    yes_option,
)

WORDS = Words("prune", "pruned", "idempotency key", label="pruning")


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


@idempotency.command(name="list", counts=True)
@click.option("--older-than", type=DURATION, metavar="DURATION",
              help="Only keys created more than this long ago (e.g. 7d).")
@listing_options
@pass_settings
def idempotency_list(settings, older_than, limit):
    """List idempotency keys, oldest first.

    \b
    Examples:
      nitejarctl idempotency list --older-than 7d
      nitejarctl idempotency list -o json --limit 10
    """
    from nitejarctl.db import now
    from nitejarctl.repositories import idempotency as repo

    cutoff = now() - older_than if older_than is not None else None
    listing(settings, repo.list_query(settings.database(), cutoff=cutoff), _columns(), limit=limit,
            id_field="key", noun="keys", table=("key", "created_at", "work_item_id"))


@idempotency.command(name="prune", counts=True)
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
    from nitejarctl.db import now
    from nitejarctl.durations import format_duration
    from nitejarctl.repositories import idempotency as repo

    require_confirmation(settings, yes, dry_run)
    db = settings.database()
    cutoff = now() - older_than
    if not (dry_run or yes):
        total = repo.count(db, cutoff=cutoff)
        if total:
            confirm(settings, f"Delete {WORDS.count(total)} older than {format_duration(older_than)}?", yes)
    run_bulk(settings, lambda bulk: repo.prune(db, cutoff, bulk), fields=repo.COLUMNS, columns=_columns(),
             words=WORDS, dry_run=dry_run, remaining=lambda: repo.count(db, cutoff=cutoff), id_field="key")
