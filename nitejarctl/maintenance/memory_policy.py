"""How nitejar treats memories: each agent's settings, the decay clock with
its one decay expression, and agents grouped by a setting (decay, prune and
edits all use these).

The decay clock
---------------
nitejar's ``decayMemories`` subtracts ``weeks_since(last_accessed_at or
created_at) × rate`` from the *current* strength, so every run charges the
whole time since the last access again: running it hourly decays far faster
than running it weekly. Here the elapsed time counts from the memory's
*decay anchor*::

    anchor = max(created_at, coalesce(last_accessed_at, created_at), updated_at)

The schema has no column for "previous decay", and none is added (databases
that nitejar's migrator created must work unchanged). ``updated_at`` carries
it instead: decay sets ``updated_at`` to now on every row it changes, so the
next run charges only the time since then. That gives the wanted invariant,
weekly-for-two-weeks == once-after-two-weeks, because the charges add up:
``max(0, max(0, s - a) - b) == max(0, s - a - b)`` for ``a, b >= 0``.

What keeps it exact:

* A row whose change would be ≤ 0.001 is not touched at all (nitejar's
  threshold), so its ``updated_at`` stays and the skipped time keeps
  accumulating until a later run charges it in one go.
* ``updated_at`` is also written by edits, which must not reset the clock
  (nitejar's decay ignores edits). So an edit *settles* the decay owed up to
  now (at the agent's configured rate, with `settled`) in the same UPDATE
  that changes the content: the time before the edit is charged then, the
  time after it by the next decay run, and nothing is lost or charged twice.
  Decay and edits use the same expression (`decayed`).
* nitejar's own writes fit the same rule: ``reinforceMemory`` sets
  ``last_accessed_at`` (an access restarts the clock in nitejar too), its
  own ``decayMemories`` leaves strength current as of ``updated_at``, and
  pinning makes a memory exempt. Unpinning sets ``updated_at``, so the time
  spent pinned is never charged (nitejar would charge it all at once).
* The one leak: an edit made by nitejar itself (its ``updateMemory``) moves
  ``updated_at`` without settling, forgiving the decay accrued since the
  previous decay run — at most one decay interval, for that memory only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import peewee as pw
from peewee import SQL, fn

from nitejarctl.models import Agent
from nitejarctl.models import AgentMemory as M

SECONDS_PER_WEEK = 7 * 24 * 60 * 60
CHANGE_THRESHOLD = 0.001
DEFAULT_DECAY_RATE = 0.1        # nitejar's DEFAULT_MEMORY_SETTINGS.decayRate
DEFAULT_MIN_STRENGTH = 0.1      # … .minStrength
DEFAULT_MAX_STORED = 200        # … .maxStoredMemories


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class MemorySettings:
    decay_rate: float = DEFAULT_DECAY_RATE
    min_strength: float = DEFAULT_MIN_STRENGTH
    max_stored: int = DEFAULT_MAX_STORED


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def memory_settings(config_text) -> MemorySettings:
    """An agent's memory settings from its config JSON, validated as nitejar's
    ``validateMemorySettings`` does: a value out of range is ignored (default)."""
    try:
        config = json.loads(config_text) if config_text else {}
    except (TypeError, ValueError):
        config = {}
    ms = config.get("memorySettings") if isinstance(config, dict) else None
    if not isinstance(ms, dict):
        return MemorySettings()
    rate, floor, cap = ms.get("decayRate"), ms.get("minStrength"), ms.get("maxStoredMemories")
    return MemorySettings(
        decay_rate=float(rate) if _number(rate) and 0 <= rate <= 1 else DEFAULT_DECAY_RATE,
        min_strength=float(floor) if _number(floor) and 0 <= floor <= 1 else DEFAULT_MIN_STRENGTH,
        max_stored=int(math.floor(cap)) if _number(cap) and cap > 0 else DEFAULT_MAX_STORED,
    )


def agent_settings(db) -> dict[str, MemorySettings]:
    """Every agent's memory settings (the agents table is small: read it once)."""
    return {a: memory_settings(c) for a, c in Agent.select(Agent.id, Agent.config).tuples()}


def settings_of(db, agent_id: str) -> MemorySettings:
    row = Agent.select(Agent.config).where(Agent.id == agent_id).tuples().first()
    return memory_settings(row[0] if row else None)


# -------------------------------------------------------- agents in groups


@dataclass
class Group:
    """Agents sharing one setting's value: their memories are those whose
    agent_id is in `ids` (or, with `exclude`, not in them; None: everyone's)."""

    value: object
    ids: list[str] | None = None
    exclude: bool = False

    def condition(self, column=None):
        column = M.agent_id if column is None else column
        if self.ids is None:
            return SQL("1 = 1")
        if self.exclude:
            return column.not_in(self.ids) if self.ids else SQL("1 = 1")
        return column == self.ids[0] if len(self.ids) == 1 else column.in_(self.ids)

    def covers(self, agent_id: str) -> bool:
        if self.ids is None:
            return True
        return (agent_id not in self.ids) if self.exclude else (agent_id in self.ids)


def groups(settings: dict[str, MemorySettings], key: Callable, default, agent_id: str | None) -> list[Group]:
    """Agents grouped by key(their settings); the default group is `agent_id
    NOT IN (the others)`, so that its statement does not list most agents.
    With `agent_id`, that agent's group alone."""
    if agent_id is not None:
        value = key(settings[agent_id]) if agent_id in settings else default
        return [Group(value, [agent_id])]
    by_value: dict = {}
    for agent, s in settings.items():
        by_value.setdefault(key(s), []).append(agent)
    special = {v: ids for v, ids in by_value.items() if v != default}
    others = [a for ids in special.values() for a in ids]
    return [Group(default, others, exclude=True)] + [Group(v, ids) for v, ids in sorted(special.items())]


def per_agent(group_list: list[Group], value: Callable, otherwise, column=None):
    """value(group.value) for each memory's agent, as SQL: a CASE over the
    few groups, `otherwise` for agents no group covers."""
    if len(group_list) == 1 and group_list[0].ids is None:
        return pw.Value(value(group_list[0].value))
    return pw.Case(None, [(g.condition(column), value(g.value)) for g in group_list], otherwise)


# ---------------------------------------------------------------- the decay


def decay_anchor(db):
    """When the memory's decay clock last started (see the module docstring)."""
    return db.greatest(M.created_at, fn.COALESCE(M.last_accessed_at, M.created_at), M.updated_at)


def elapsed(db, now: int):
    """Seconds since the decay anchor, as SQL."""
    return pw.Value(now) - decay_anchor(db)


def per_second(rate: float) -> float:
    return rate / SECONDS_PER_WEEK


def decayed(db, rate_per_second, now: int):
    """The decay expression: max(0, strength − seconds since the anchor × the
    rate per second), as SQL."""
    return db.greatest(0.0, M.strength - elapsed(db, now) * rate_per_second)


def settled(db, rate: float, now: int):
    """The strength with the decay owed up to now applied (at `rate` per
    week): what an edit stores, as it moves the decay clock."""
    owed = elapsed(db, now)
    return pw.Case(None, [((M.permanent == 0) & (owed > 0), decayed(db, per_second(rate), now))], M.strength)
