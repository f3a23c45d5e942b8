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


def _described(wanted):
    """A shell_complete callback offering what `wanted` (db.quick.Wanted)
    names, in its order, each described (zsh and fish show it) by its status,
    age and agent: `active, 3h ago, support-bot`."""
    def complete(ctx, param, incomplete):
        from nitejarctl.db import quick

        try:
            rows = quick.candidates(_target(ctx), wanted, incomplete, limit=MAX_CANDIDATES)
        except Exception:
            return []
        return [CompletionItem(value, help=_description(rest)) for value, *rest in rows
                if isinstance(value, str)]

    return complete


def _description(parts) -> str | None:
    import time

    from nitejarctl.durations import format_age

    status, at, agent = parts
    words = [] if status is None else [str(status)]
    if isinstance(at, int):
        delta = int(time.time()) - at
        words.append(f"{format_age(delta)} ago" if delta >= 0 else f"in {format_age(-delta)}")
    if agent is not None:
        words.append(str(agent))
    # The shells show it as it is: no controls, and short.
    text = " ".join("".join(c if c.isprintable() else " " for c in ", ".join(words)).split())
    return (text[:60] + "…" if len(text) > 61 else text) or None


def _column(table: str, column: str):
    """A shell_complete callback offering the values of table.column."""
    def complete(ctx, param, incomplete):
        return _items(_rows(ctx, table, column, incomplete))

    return complete


def _wanted(table, **kwargs):
    from nitejarctl.db.quick import Wanted

    return _described(Wanted(table, **kwargs))


_SESSIONS = dict(status="status", time="last_active_at", agent=True)
# What close, touch and error act on: the active sessions, the longest idle
# first; the recent summaries. Where any row will do (show), the rows come in
# id order: a range of the id's index, as fast on a million rows as on ten.
session_ids = _wanted("sprite_sessions", **_SESSIONS)
active_session_ids = _wanted("sprite_sessions", where="t.\"status\" = 'active'",
                             order='t."last_active_at"', **_SESSIONS)
session_keys = _column("work_items", "session_key")
sprite_session_keys = _column("sprite_sessions", "session_key")
memory_ids = _wanted("agent_memories", time="updated_at", agent=True)
summary_ids = _wanted("session_summaries", order='t."compacted_at" DESC', status="session_key",
                      time="compacted_at", agent=True)
work_item_ids = _wanted("work_items", status="status", time="created_at")
job_ids = _wanted("jobs", status="status", time="created_at", agent=True)


def integration_ids(ctx, param, incomplete):
    """Integrations, or on a database nitejar created its plugin instances."""
    return _items(_rows(ctx, "integrations", "id", incomplete)
                  or _rows(ctx, "plugin_instances", "id", incomplete))


def agents(ctx, param, incomplete):
    names = _rows(ctx, "agents", "name", incomplete)
    ids = _rows(ctx, "agents", "id", incomplete) if len(names) < MAX_CANDIDATES else []
    return _items((names + ids)[:MAX_CANDIDATES])
