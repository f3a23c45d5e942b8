"""Agents — nitejar's agents repository."""

from __future__ import annotations

from nitejarctl.errors import NotFound
from nitejarctl.models import Agent


def resolve(db, ref: str) -> dict:
    """The agent whose id, or else unique name, is `ref` ({'id', 'name', 'config', ...}).
    Raises NotFound."""
    fields = [Agent.id, Agent.name, Agent.config, Agent.status]
    row = Agent.select(*fields).where(Agent.id == ref).dicts().first()
    if row is None:
        row = Agent.select(*fields).where(Agent.name == ref).dicts().first()
    if row is None:
        raise NotFound(f"no agent with id or name {ref!r}")
    return row


def resolve_id(db, ref: str) -> str:
    return resolve(db, ref)["id"]
