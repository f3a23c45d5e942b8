"""`memories prune`: delete weak memories, and the weakest beyond each agent's
limit.

Permanent (pinned) memories are never deleted, and they count toward the
per-agent limit N (``memorySettings.maxStoredMemories`` caps what an agent
stores): the survivors are the permanent ones, then the strongest others,
most recently used first among equals, up to N in total.
"""

from __future__ import annotations

from dataclasses import dataclass

import peewee as pw
from peewee import SQL, fn

from nitejarctl.db.batches import Bulk
from nitejarctl.db.changed_rows import Change, scalar
from nitejarctl.maintenance import memory_policy as policy
from nitejarctl.models import AgentMemory as M

COLUMNS = ("id", "agent_id", "strength", "reason", "content")
VICTIMS_TABLE = "nitejarctl_prune_victims"


@dataclass(frozen=True, order=True)
class Rule:
    below: float
    keep: int

    @property
    def below_reason(self) -> str:
        return f"strength < {self.below:g}"

    @property
    def keep_reason(self) -> str:
        return f"over the limit of {self.keep}"


@dataclass
class Rules:
    """Each group of agents' rule; `agent_id`: only that agent's memories."""

    groups: list[policy.Group]
    agent_id: str | None = None

    def of(self, agent_id: str) -> Rule:
        return next(g.value for g in self.groups if g.covers(agent_id))

    def per_agent(self, attribute: str):
        """The rule's `attribute` for each memory's agent, as SQL."""
        return policy.per_agent(self.groups, lambda rule: getattr(rule, attribute),
                                getattr(self.groups[0].value, attribute))


def rules(db, *, agent_id=None, below=None, keep=None) -> Rules:
    """Each agent's (below, keep): the options when given, else the agent's
    memorySettings.minStrength / maxStoredMemories (nitejar's 0.1 / 200)."""
    def rule(s: policy.MemorySettings) -> Rule:
        return Rule(s.min_strength if below is None else below, s.max_stored if keep is None else keep)

    default = rule(policy.MemorySettings())
    if below is not None and keep is not None:
        return Rules([policy.Group(default, None if agent_id is None else [agent_id])], agent_id)
    return Rules(policy.groups(policy.agent_settings(db), rule, default, agent_id), agent_id)


def _over_the_limit(db, prune: Rules) -> list[str]:
    """The agents with more memories than their limit (one pass over the
    agent index, which count(*) needs nothing else than): only theirs need
    ranking."""
    query = M.select(M.agent_id, fn.COUNT(SQL("*"))).group_by(M.agent_id)
    if prune.agent_id is not None:
        query = query.where(M.agent_id == prune.agent_id)
    return sorted(agent for agent, n in query.tuples() if n > prune.of(agent).keep)


def _weak(prune: Rules):
    """The condition of the weak memories prune deletes whatever the limits."""
    scope = SQL("1 = 1") if prune.agent_id is None else (M.agent_id == prune.agent_id)
    return scope & (M.permanent == 0) & (M.strength < prune.per_agent("below"))


def _victims(db, prune: Rules, over: list[str]):
    """(k, id, accessed, reason) of the memories prune deletes (k: the batch key).

    A window over the memories of each agent past its limit (`over`): the
    rank within the agent puts the permanent ones first, then the strongest,
    most recently used first among equals; those ranked past the limit go,
    and the weak ones. The other agents' memories need no rank (they are all
    within the limit): of them only the weak ones go."""
    key = db.batch_key(M)
    weak = (M.select(key.alias("k"), M.id, fn.COALESCE(M.last_accessed_at, 0).alias("accessed"),
                     prune.per_agent("below_reason").alias("reason"))
            .where(_weak(prune)))
    if not over:
        return weak
    rank = fn.ROW_NUMBER().over(
        partition_by=[M.agent_id],
        order_by=[M.permanent.desc(), M.strength.desc(),
                  fn.COALESCE(M.last_accessed_at, M.created_at).desc(), M.created_at.desc(), M.id])
    ranked = (M.select(key.alias("k"), M.id, M.agent_id, M.permanent, M.strength,
                       fn.COALESCE(M.last_accessed_at, 0).alias("accessed"), rank.alias("rn"))
              .where(M.agent_id.in_(over)))
    # Each ranked agent's rule, joined on once the rows are ranked (a rule per
    # agent looked up by a hash join, not four CASEs evaluated on every row).
    rules = pw.ValuesList([(agent, *_rule_values(prune.of(agent))) for agent in over], alias="rules")
    agent, below, keep, below_reason, keep_reason = (getattr(rules.c, f"column{i}") for i in range(1, 6))
    r = ranked.alias("ranked")
    reason = pw.Case(None, [(r.c.strength < below, below_reason)], keep_reason)
    ranked_victims = (pw.Select([r], [r.c.k, r.c.id, r.c.accessed, reason.alias("reason")])
                      .join(rules, on=(agent == r.c.agent_id))
                      .where((r.c.permanent == 0) & ((r.c.strength < below) | (r.c.rn > keep))))
    return ranked_victims + weak.where(M.agent_id.not_in(over))  # UNION ALL


def _rule_values(rule: Rule) -> tuple:
    return rule.below, rule.keep, rule.below_reason, rule.keep_reason


def preview(db, prune: Rules):
    """Rows prune would delete (dicts of COLUMNS), in the order it deletes them."""
    v = _victims(db, prune, _over_the_limit(db, prune)).alias("v")
    query = (M.select(M.id, M.agent_id, M.strength, v.c.reason, M.content)
             .join(v, on=(v.c.id == M.id)).order_by(v.c.k))
    yield from db.stream(query)


def _victims_model(db):
    class Victim(pw.Model):
        # The memory's batch key (its rowid on SQLite: the victims' rowids are
        # then the memories', and a batch of victims a key range of memories).
        k = db.batch_key_field(M, primary_key=True)
        id = pw.TextField()
        accessed = pw.IntegerField()
        reason = pw.TextField()

        class Meta:
            database = db
            table_name = VICTIMS_TABLE
            # Qualified, so that no statement can reach a main table of that name.
            schema = db.temp_schema

    return Victim


class PrunePlan:
    """What prune deletes, and how. When an agent is past its limit, the
    memories to delete are ranked once (a window over the memories of each
    such agent) into a temporary table keyed by the memories' batch key; the
    deletion then walks that list in key-range batches, so its work grows
    with the victims, not with the table. Otherwise there is nothing to rank:
    the weak memories go, batched like any other change, and no temporary
    table is needed. Building the plan writes nothing to the database
    proper. `total` is how many it deletes when known beforehand (the
    ranked list's length), `remaining()` how many are left to delete."""

    def __init__(self, db, prune: Rules):
        self.db, self.prune = db, prune
        self.model = None
        self.total: int | None = None
        over = _over_the_limit(db, prune)
        if not over:
            return
        self.model = v = _victims_model(db)
        v.drop_table(safe=True)
        v.create_table(temporary=True)
        p = _victims(db, prune, over).alias("p")
        # In key order: appended to the victims' b-tree rather than inserted all over it.
        self.total = v.insert_from(pw.Select([p], [p.c.k, p.c.id, p.c.accessed, p.c.reason]).order_by(p.c.k),
                                   [v.k, v.id, v.accessed, v.reason]).as_rowcount().execute()
        db.analyze_temporary(VICTIMS_TABLE)

    def __enter__(self) -> PrunePlan:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def remaining(self) -> int:
        if self.model is None:
            return M.select().where(_weak(self.prune)).count()
        return self.total

    def change(self) -> Change:
        """The weak memories, or the ranked victims still victims, batch by
        batch: listed in the batch (the same memory at the same place), not
        pinned since, not accessed since."""
        columns = [M.id, M.agent_id, M.strength]
        if self.model is None:
            return Change(M, _weak(self.prune),
                          columns=[*columns, self.prune.per_agent("below_reason").alias("reason"), M.content])
        db, v = self.db, self.model
        key = db.batch_key(M)
        pairs = [(M.id, v.id), (fn.COALESCE(M.last_accessed_at, 0), v.accessed)]

        def within(batch):
            return (M.permanent == 0) & db.rows_listed(M, v, v.k, pairs, SQL("1 = 1") if batch is None else batch)

        reason = scalar(v.select(v.reason).where(v.k == key), "reason")
        return Change(M, columns=[*columns, reason, M.content], scan=v, scope=SQL("1 = 1"), within=within,
                      temporary=True)

    def execute(self, bulk: Bulk) -> int:
        return bulk.apply(self.db, self.change())

    def close(self) -> None:
        if self.model is None:
            return
        try:
            self.model.drop_table(safe=True)
        except pw.PeeweeException:  # the connection is gone: the table went with it
            pass
