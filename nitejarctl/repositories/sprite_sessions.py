"""Sprite (remote shell) sessions — nitejar's spriteSessions repository."""

from __future__ import annotations

from nitejarctl.models import SpriteSession


def stale_condition(older_than: int, now: int):
    """nitejar's findStaleSessions: active and last active before now - older_than."""
    return (SpriteSession.status == "active") & (SpriteSession.last_active_at < now - older_than)


def count_stale(db, older_than: int, now: int) -> int:
    return SpriteSession.select().where(stale_condition(older_than, now)).count()
