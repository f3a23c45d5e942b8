"""Dynamic shell completion: ids, agent names and session keys from the database.

Completion re-runs the program on every Tab, so this path stays light
(db.quick: no Peewee, no Rich), at most MAX_CANDIDATES candidates, and
silence — no candidates rather than an error — when no database is reachable.
"""

from __future__ import annotations

from click.shell_completion import CompletionItem

MAX_CANDIDATES = 50


def _target(ctx):
    from nitejarctl.cli.context import Settings
    from nitejarctl.db import parse_url, resolve_url

    settings = ctx.find_object(Settings)
    url, _ = resolve_url(settings.database_url if settings else None)
    return parse_url(url)


def _rows(ctx, table: str, column: str, incomplete: str) -> list[str]:
    """Values of table.column starting with `incomplete`; none at all when no
    database is reachable (completion must never fail loudly)."""
    from nitejarctl.db import quick

    try:
        return quick.values(_target(ctx), table, column, incomplete, limit=MAX_CANDIDATES)
    except Exception:
        return []


def _items(values, help_text=None):
    return [CompletionItem(v, help=help_text) for v in values]


def _column(table: str, column: str):
    """A shell_complete callback offering the values of table.column."""
    def complete(ctx, param, incomplete):
        return _items(_rows(ctx, table, column, incomplete))

    return complete


session_ids = _column("sprite_sessions", "id")
session_keys = _column("work_items", "session_key")
sprite_session_keys = _column("sprite_sessions", "session_key")
memory_ids = _column("agent_memories", "id")
summary_ids = _column("session_summaries", "id")
work_item_ids = _column("work_items", "id")
job_ids = _column("jobs", "id")


def integration_ids(ctx, param, incomplete):
    """Integrations, or on a database nitejar created its plugin instances."""
    return _items(_rows(ctx, "integrations", "id", incomplete)
                  or _rows(ctx, "plugin_instances", "id", incomplete))


def agents(ctx, param, incomplete):
    names = _rows(ctx, "agents", "name", incomplete)
    ids = _rows(ctx, "agents", "id", incomplete) if len(names) < MAX_CANDIDATES else []
    return _items((names + ids)[:MAX_CANDIDATES])
