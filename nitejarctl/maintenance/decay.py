"""`memories decay`: nitejar's decayMemories, set-based and batched, with the
clock of memory_policy (decaying hourly or weekly gives the same strengths)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nitejarctl.db.batches import Bulk
from nitejarctl.db.changed_rows import Before, Change
from nitejarctl.maintenance import memory_policy as policy
from nitejarctl.models import AgentMemory as M

COLUMNS = ("id", "agent_id", "rate", "previous_strength", "strength")


@dataclass
class DecayPlan:
    groups: list[policy.Group] = field(default_factory=list)
    agent_id: str | None = None  # --agent: only this agent's memories

    @property
    def rates(self) -> list[float]:
        return [g.value for g in self.groups]


def plan(db, *, agent_id: str | None = None, rate: float | None = None) -> DecayPlan:
    """What decay will do: one rate per group of agents (grouped by
    memorySettings.decayRate, or everyone at `rate`). Rate-0 groups are dropped."""
    if rate is not None:
        groups = [policy.Group(rate, None if agent_id is None else [agent_id])]
    else:
        groups = policy.groups(policy.agent_settings(db), lambda s: s.decay_rate,
                               policy.DEFAULT_DECAY_RATE, agent_id)
    return DecayPlan([g for g in groups if g.value > 0], agent_id)


def _rate(db, decay: DecayPlan, value=lambda rate: rate):
    """Each memory's rate (per week, or `value` of it) as SQL: a CASE over the
    plan's few groups of agents, 0 for agents no group covers. Each rate a
    float (a bare parameter is numeric on PostgreSQL, and numeric arithmetic
    on every row is several times slower). On SQLite the agent column as the
    planner may not use an index for: otherwise it picks the (agent_id,
    strength) index for each batch and rescans and re-sorts the group's
    memories every time, instead of seeking the batch's rowids."""
    return policy.per_agent(decay.groups, lambda rate: db.as_float(value(rate)), db.as_float(0.0),
                            db.unindexed(M.agent_id))


def change(db, decay: DecayPlan, now: int) -> Change:
    """The change: non-permanent memories (whose times are numbers) whose
    strength drops by more than the threshold, change = min(strength, weeks × rate) > 0.001, get the
    decayed strength and updated_at now (one UPDATE per batch, every rate
    at once). The key ranges are cut from the memories any rate could lower."""
    per_second = _rate(db, decay, policy.per_second)
    scope = (M.permanent == 0) & (M.strength > policy.CHANGE_THRESHOLD)
    # A time that is no number (text nitejar stored) gives no age: left alone.
    scope &= db.numeric(M.created_at) & db.numeric(M.updated_at)
    scope &= M.last_accessed_at.is_null() | db.numeric(M.last_accessed_at)
    if decay.agent_id is not None:
        scope &= db.unindexed(M.agent_id) == decay.agent_id
    where = scope & (policy.elapsed(db, now) * per_second > policy.CHANGE_THRESHOLD)
    return Change(M, where, {M.strength: policy.decayed(db, per_second, now), M.updated_at: now},
                  columns=[M.id, M.agent_id, _rate(db, decay).alias("rate"),
                           Before(M.strength, "previous_strength"), M.strength],
                  scope=scope)


def decay(db, decay_plan: DecayPlan, now: int, bulk: Bulk) -> int:
    """Apply the plan in one pass over the table by key range; returns how many
    memories (would have) changed. The sink gets COLUMNS."""
    if not decay_plan.groups:
        return 0
    return bulk.apply(db, change(db, decay_plan, now))
