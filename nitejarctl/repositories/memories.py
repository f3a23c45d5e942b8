"""Agent memories — nitejar's memories repository, plus set-based decay and prune.

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
  (nitejar's decay ignores edits). So :func:`edit` *settles* the decay owed
  up to now (at the agent's configured rate) in the same UPDATE that
  changes the content: the time before the edit is charged then, the time
  after it by the next decay run, and nothing is lost or charged twice.
* nitejar's own writes fit the same rule: ``reinforceMemory`` sets
  ``last_accessed_at`` (an access restarts the clock in nitejar too), its
  own ``decayMemories`` leaves strength current as of ``updated_at``, and
  pinning makes a memory exempt. Unpinning sets ``updated_at``, so the time
  spent pinned is never charged (nitejar would charge it all at once).
* The one leak: an edit made by nitejar itself (its ``updateMemory``) moves
  ``updated_at`` without settling, forgiving the decay accrued since the
  previous decay run — at most one decay interval, for that memory only.

Prune
-----
Permanent (pinned) memories are never deleted, and they count toward the
per-agent limit N (``memorySettings.maxStoredMemories`` caps what an agent
stores): the survivors are the permanent ones, then the strongest others,
most recently used first among equals, up to N in total.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field

import peewee as pw
from peewee import SQL, fn

from nitejarctl.db import dialect, present_fields, table_columns
from nitejarctl.errors import NotFound, UsageProblem
from nitejarctl.models import Agent
from nitejarctl.models import AgentMemory as M
from nitejarctl.repositories._batch import batch_key, in_batches, returning
from nitejarctl.spool import Spool

SECONDS_PER_WEEK = 7 * 24 * 60 * 60
CHANGE_THRESHOLD = 0.001
DEFAULT_DECAY_RATE = 0.1        # nitejar's DEFAULT_MEMORY_SETTINGS.decayRate
DEFAULT_MIN_STRENGTH = 0.1      # … .minStrength
DEFAULT_MAX_STORED = 200        # … .maxStoredMemories
ID_CHUNK = 500

# The listed fields, in order (the embedding blob is never listed).
LIST_FIELDS = ("id", "agent_id", "strength", "permanent", "access_count", "last_accessed_at",
               "created_at", "updated_at", "content")


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


def _agent_settings(db) -> dict[str, MemorySettings]:
    """Every agent's memory settings (the agents table is small: read it once)."""
    return {a: memory_settings(c) for a, c in Agent.select(Agent.id, Agent.config).tuples()}


@dataclass
class Group:
    """Agents sharing one parameter value: their memories are those whose
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


def _scan_agent(db):
    """agent_id for statements batched by key range. On SQLite `+agent_id`:
    otherwise the planner picks the (agent_id, strength) index for each batch
    and rescans and re-sorts the group's memories every time, instead of
    seeking the batch's rowids."""
    if dialect(db) == "sqlite":
        return pw.NodeList((SQL("+"), M.agent_id), glue="")
    return M.agent_id


def _groups(settings: dict[str, MemorySettings], key, default, agent_id: str | None) -> list[Group]:
    """Group agents by key(settings); the default group is `agent_id NOT IN
    (the others)`, so that its statement does not list most agents."""
    if agent_id is not None:
        value = key(settings[agent_id]) if agent_id in settings else default
        return [Group(value, [agent_id])]
    by_value: dict = {}
    for agent, s in settings.items():
        by_value.setdefault(key(s), []).append(agent)
    special = {v: ids for v, ids in by_value.items() if v != default}
    others = [a for ids in special.values() for a in ids]
    groups = [Group(default, others, exclude=True)]
    groups += [Group(v, ids) for v, ids in sorted(special.items())]
    return groups


# -------------------------------------------------------------------- reading


def _fields(db, names=LIST_FIELDS) -> list:
    live = {f.name for f in present_fields(db, M)}
    return [getattr(M, n) for n in names if n in live]


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(db, column, text: str):
    """Case-insensitive literal substring match: % and _ in `text` match themselves."""
    op = "ILIKE" if dialect(db) == "postgresql" else "LIKE"
    pattern = "%" + escape_like(text) + "%"
    return pw.NodeList((column, SQL(op), pattern, SQL("ESCAPE '\\'")))


def _filters(db, *, agent_id=None, min_strength=None, permanent=None, search=None):
    cond = SQL("1 = 1")
    if agent_id is not None:
        cond &= M.agent_id == agent_id
    if min_strength is not None:
        cond &= M.strength >= min_strength
    if permanent is not None:
        cond &= M.permanent == (1 if permanent else 0)
    if search:
        cond &= contains(db, M.content, search)
    return cond


def list_query(db, *, limit=None, **filters):
    """Memories, strongest first within each agent (a query to stream)."""
    query = (M.select(*_fields(db)).where(_filters(db, **filters))
             .order_by(M.agent_id, M.strength.desc(), M.id))
    return query.limit(limit) if limit is not None else query


def count(db, **filters) -> int:
    return M.select().where(_filters(db, **filters)).count()


def get(db, memory_id: str) -> dict:
    """One memory with every column the table has, except the embedding blob
    (its size in bytes instead). Raises NotFound."""
    fields = [f for f in present_fields(db, M) if f.name != "embedding"]
    known = {f.column_name for f in M._meta.sorted_fields}
    extras = [c for c in table_columns(db, M._meta.table_name) if c not in known]
    size = fn.OCTET_LENGTH if dialect(db) == "postgresql" else fn.LENGTH
    query = M.select(*fields, size(M.embedding).alias("embedding_bytes"),
                     *[pw.Entity(c).alias(c) for c in extras])
    row = query.where(M.id == memory_id).dicts().first()
    if row is None:
        raise NotFound(f"no memory with id {memory_id!r}")
    return row


def _chunks(items, size=ID_CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def find(db, ids) -> dict[str, dict]:
    """id -> listed row, for those of `ids` that exist."""
    found = {}
    for chunk in _chunks(list(ids)):
        for row in M.select(*_fields(db)).where(M.id.in_(chunk)).dicts():
            found[row["id"]] = row
    return found


def missing_error(missing: list[str]) -> NotFound:
    if len(missing) == 1:
        return NotFound(f"no memory with id {missing[0]!r}")
    return NotFound("no memories with ids " + ", ".join(repr(m) for m in missing))


def require(db, ids) -> dict[str, dict]:
    """Like find, but every id must exist (NotFound names the missing ones)."""
    found = find(db, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise missing_error(missing)
    return found


# -------------------------------------------------------------------- writing


def _table_update(values: dict, where):
    """UPDATE keyed by column name, so that columns the model does not know
    (nitejar's `version`) can be set too."""
    table = M._meta.table
    return table.update({pw.Column(table, k): v for k, v in values.items()}).where(where)


def _has_version(db) -> bool:
    return "version" in table_columns(db, M._meta.table_name)


def _bump_version(db, values: dict) -> dict:
    # nitejar's updateMemory uses `version` for optimistic concurrency: an agent
    # holding the old version must get a conflict, not overwrite this change.
    if _has_version(db):
        values["version"] = pw.Column(M._meta.table, "version") + 1
    return values


def check_content(content: str) -> str:
    if not content or not content.strip():
        raise UsageProblem("memory content must not be empty")
    return content


def add(db, agent_id: str, content: str, *, permanent=False, strength=1.0, now: int) -> dict:
    """Insert a memory (columns the model does not know keep their defaults)."""
    check_content(content)
    memory_id = str(uuid.uuid4())
    M.insert({M.id: memory_id, M.agent_id: agent_id, M.content: content, M.strength: strength,
              M.access_count: 0, M.permanent: 1 if permanent else 0, M.last_accessed_at: None,
              M.created_at: now, M.updated_at: now}).execute()
    return find(db, [memory_id])[memory_id]


def _greatest(db, *args):
    return fn.GREATEST(*args) if dialect(db) == "postgresql" else fn.MAX(*args)


def decay_anchor(db):
    """When the memory's decay clock last started (see the module docstring)."""
    return _greatest(db, M.created_at, fn.COALESCE(M.last_accessed_at, M.created_at), M.updated_at)


def _per_second(rate: float) -> float:
    return rate / SECONDS_PER_WEEK


def edit(db, memory_id: str, content: str, *, now: int) -> dict:
    """Replace a memory's content. Settles the decay owed so far (the edit
    moves updated_at, the decay clock), clears the embedding (it described
    the old text; nitejar regenerates it, or stores none when embeddings are
    off) and bumps nitejar's `version`."""
    check_content(content)
    with db.atomic():
        row = (M.select(M.agent_id).where(M.id == memory_id).tuples().first())
        if row is None:
            raise NotFound(f"no memory with id {memory_id!r}")
        agent = Agent.select(Agent.config).where(Agent.id == row[0]).tuples().first()
        rate = memory_settings(agent[0] if agent else None).decay_rate
        owed = pw.Value(now) - decay_anchor(db)
        settled = pw.Case(None, [((M.permanent == 0) & (owed > 0),
                                  _greatest(db, 0.0, M.strength - owed * _per_second(rate)))],
                          M.strength)
        _table_update(_bump_version(db, {"content": content, "embedding": None,
                                         "strength": settled, "updated_at": now}),
                      M.id == memory_id).execute()
    return find(db, [memory_id])[memory_id]


def set_permanent(db, ids: list[str], permanent: bool, *, now: int) -> dict[str, dict]:
    """Pin (permanent, strength restored to 1.0, as nitejar's toggle does) or
    unpin (its decay clock restarts now: time spent pinned is not charged).
    Every id must exist; returns the updated rows."""
    with db.atomic():
        require(db, ids)
        values = {"permanent": 1 if permanent else 0, "updated_at": now}
        if permanent:
            values["strength"] = 1.0
        for chunk in _chunks(ids):
            _table_update(_bump_version(db, dict(values)), M.id.in_(chunk)).execute()
    return find(db, ids)


def delete(db, ids: list[str]) -> int:
    """Delete memories by id, a short transaction per chunk of ids."""
    total = 0
    for chunk in _chunks(ids):
        with db.atomic():
            total += M.delete().where(M.id.in_(chunk)).execute()
    return total


# ------------------------------------------------------------------- spooling

RowSpool = Spool  # the changed rows of decay and prune (see nitejarctl.spool)


# ---------------------------------------------------------------------- decay

DECAY_COLUMNS = ("id", "agent_id", "rate", "previous_strength", "strength")


@dataclass
class DecayPlan:
    groups: list[Group] = field(default_factory=list)
    agent_id: str | None = None  # --agent: only this agent's memories

    @property
    def rates(self) -> list[float]:
        return [g.value for g in self.groups]


def decay_plan(db, *, agent_id: str | None = None, rate: float | None = None) -> DecayPlan:
    """The statements decay will run: one per distinct rate (agents grouped by
    memorySettings.decayRate, or everyone at `rate`). Rate-0 groups are dropped."""
    if rate is not None:
        groups = [Group(rate, None if agent_id is None else [agent_id])]
    else:
        groups = _groups(_agent_settings(db), lambda s: s.decay_rate, DEFAULT_DECAY_RATE, agent_id)
    return DecayPlan([g for g in groups if g.value > 0], agent_id)


def decay_scope(db, plan: DecayPlan):
    """What the key ranges are cut from: memories any rate could lower."""
    scope = (M.permanent == 0) & (M.strength > CHANGE_THRESHOLD)
    if plan.agent_id is not None:
        scope &= _scan_agent(db) == plan.agent_id
    return scope


def _rate(db, plan: DecayPlan, *, per_second: bool = False):
    """Each memory's decay rate (per week, or per second) as SQL: a CASE over
    the plan's few groups of agents, 0 for agents no group covers."""
    def value(group):
        return _per_second(group.value) if per_second else group.value

    groups = plan.groups
    if len(groups) == 1 and groups[0].ids is None:
        return pw.Value(value(groups[0]))
    agent = _scan_agent(db)
    return pw.Case(None, [(g.condition(agent), value(g)) for g in groups], 0.0)


def _elapsed(db, now: int):
    return pw.Value(now) - decay_anchor(db)


def decay_condition(db, plan: DecayPlan, now: int):
    """Non-permanent memories whose strength would drop by more than the
    threshold: change = min(strength, weeks × rate) > 0.001."""
    return ((M.permanent == 0) & (M.strength > CHANGE_THRESHOLD)
            & (_elapsed(db, now) * _rate(db, plan, per_second=True) > CHANGE_THRESHOLD))


def _decayed(db, plan: DecayPlan, now: int):
    """max(0, strength − seconds since the anchor × the rate per second), as SQL."""
    return _greatest(db, 0.0, M.strength - _elapsed(db, now) * _rate(db, plan, per_second=True))


def _decay_select(db, plan: DecayPlan, now: int, where):
    rate = _rate(db, plan)
    if dialect(db) == "postgresql":  # a bare parameter would come back as numeric
        rate = pw.Cast(rate, "double precision")
    return (M.select(M.id, M.agent_id, rate.alias("rate"), M.strength.alias("previous_strength"),
                     _decayed(db, plan, now).alias("strength"))
            .where(where).order_by(batch_key(db, M)))


def decay_preview(db, plan: DecayPlan, now: int):
    """Rows decay would change (generator of dicts), in the order it changes them."""
    from nitejarctl.db import stream

    if not plan.groups:
        return
    yield from stream(db, _decay_select(db, plan, now, decay_scope(db, plan) & decay_condition(db, plan, now)))


def decay(db, plan: DecayPlan, now: int, spool=None, *, progress=None) -> int:
    """Apply the plan in one pass over the table by key range: each batch, in
    its own transaction, runs one set-based UPDATE covering every rate (a
    CASE over the agents), after one read of the rows for the report when
    `spool` wants them (their previous strength is gone after the UPDATE)."""
    if not plan.groups:
        return 0
    pg = dialect(db) == "postgresql"
    condition = decay_condition(db, plan, now)
    values = {M.strength: _decayed(db, plan, now), M.updated_at: now}

    def apply(batch):
        where = batch & condition
        if spool is not None:
            query = _decay_select(db, plan, now, where)
            spool.add(db.execute(query.for_update() if pg else query).fetchall())
        return M.update(values).where(where).execute()

    return in_batches(db, M, decay_scope(db, plan), apply, progress=progress)


# ---------------------------------------------------------------------- prune

PRUNE_COLUMNS = ("id", "agent_id", "strength", "reason", "content")
VICTIMS_TABLE = "nitejarctl_prune_victims"


@dataclass(frozen=True, order=True)
class PruneRule:
    below: float
    keep: int

    @property
    def below_reason(self) -> str:
        return f"strength < {self.below:g}"

    @property
    def keep_reason(self) -> str:
        return f"over the limit of {self.keep}"


@dataclass
class PruneRules:
    """`default` for every agent but those in `special` (rule -> agent ids);
    `agent_id`: only that agent's memories."""

    default: PruneRule
    special: dict[PruneRule, list[str]] = field(default_factory=dict)
    agent_id: str | None = None


def prune_rules(db, *, agent_id=None, below=None, keep=None) -> PruneRules:
    """Each agent's (below, keep): the options when given, else the agent's
    memorySettings.minStrength / maxStoredMemories (nitejar's 0.1 / 200)."""
    def rule(s: MemorySettings) -> PruneRule:
        return PruneRule(s.min_strength if below is None else below,
                         s.max_stored if keep is None else keep)

    default = rule(MemorySettings())
    if below is not None and keep is not None:
        return PruneRules(default, agent_id=agent_id)
    settings = _agent_settings(db)
    if agent_id is not None:
        return PruneRules(rule(settings.get(agent_id, MemorySettings())), agent_id=agent_id)
    special: dict[PruneRule, list[str]] = {}
    for agent, s in settings.items():
        if rule(s) != default:
            special.setdefault(rule(s), []).append(agent)
    return PruneRules(default, special)


def _per_agent(rules: PruneRules, attribute: str):
    """The rule's `attribute` for each memory's agent, as SQL: a CASE over the
    few distinct rules (IN lists), the default otherwise."""
    default = pw.Value(getattr(rules.default, attribute))
    if not rules.special:
        return default
    return pw.Case(None, [(M.agent_id.in_(ids), getattr(r, attribute))
                          for r, ids in rules.special.items()], default)


def _keep_of(rules: PruneRules, agent_id: str) -> int:
    for rule, ids in rules.special.items():
        if agent_id in ids:
            return rule.keep
    return rules.default.keep


def _over_the_limit(db, rules: PruneRules) -> list[str]:
    """The agents with more memories than their limit (one pass over the
    agent index): only theirs need ranking."""
    query = M.select(M.agent_id, fn.COUNT(M.id)).group_by(M.agent_id)
    if rules.agent_id is not None:
        query = query.where(M.agent_id == rules.agent_id)
    return sorted(agent for agent, n in query.tuples() if n > _keep_of(rules, agent))


def _victims(db, rules: PruneRules, *, ids: bool = False):
    """(k, accessed, reason[, id]) of the memories prune deletes (k: the batch key).

    A window over the memories of each agent past its limit: the rank within
    the agent puts the permanent ones first, then the strongest, most
    recently used first among equals; those ranked past the limit go, and
    the weak ones. The other agents' memories need no rank (they are all
    within the limit): of them only the weak ones go."""
    over = _over_the_limit(db, rules)
    extra = [M.id] if ids else []
    scope = SQL("1 = 1") if rules.agent_id is None else (M.agent_id == rules.agent_id)
    weak = (M.select(batch_key(db, M).alias("k"), fn.COALESCE(M.last_accessed_at, 0).alias("accessed"),
                     _per_agent(rules, "below_reason").alias("reason"), *extra)
            .where(scope & (M.permanent == 0) & (M.strength < _per_agent(rules, "below"))))
    if not over:
        return weak
    rank = fn.ROW_NUMBER().over(
        partition_by=[M.agent_id],
        order_by=[M.permanent.desc(), M.strength.desc(),
                  fn.COALESCE(M.last_accessed_at, M.created_at).desc(), M.created_at.desc(), M.id])
    ranked = (M.select(batch_key(db, M).alias("k"), *extra, M.permanent, M.strength,
                       fn.COALESCE(M.last_accessed_at, 0).alias("accessed"), rank.alias("rn"),
                       *[_per_agent(rules, a).alias(a)
                         for a in ("below", "keep", "below_reason", "keep_reason")])
              .where(M.agent_id.in_(over)))
    r = ranked.alias("ranked")
    reason = pw.Case(None, [(r.c.strength < r.c.below, r.c.below_reason)], r.c.keep_reason)
    ranked_victims = (pw.Select([r], [r.c.k, r.c.accessed, reason.alias("reason"), *([r.c.id] if ids else [])])
                      .where((r.c.permanent == 0) & ((r.c.strength < r.c.below) | (r.c.rn > r.c.keep))))
    return ranked_victims + weak.where(M.agent_id.not_in(over))  # UNION ALL


def prune_preview(db, rules: PruneRules):
    """Rows prune would delete (generator of dicts), in the order it deletes them."""
    from nitejarctl.db import stream

    v = _victims(db, rules, ids=True).alias("v")
    query = (M.select(M.id, M.agent_id, M.strength, v.c.reason, M.content)
             .join(v, on=(v.c.id == M.id)).order_by(v.c.k))
    yield from stream(db, query)


def _victims_model(db):
    pg = dialect(db) == "postgresql"

    class Victim(pw.Model):
        # The memory's batch key (its rowid on SQLite: the victims' rowids are
        # then the memories', and a batch of victims a key range of memories).
        k = pw.TextField(primary_key=True) if pg else pw.IntegerField(primary_key=True)
        accessed = pw.IntegerField()
        reason = pw.TextField()

        class Meta:
            database = db
            table_name = VICTIMS_TABLE
            # Qualified, so that no statement can reach a main table of that name.
            schema = "pg_temp" if dialect(db) == "postgresql" else "temp"

    return Victim


class PrunePlan:
    """The memories to delete, ranked once (a window over the memories of
    each agent past its limit) into a temporary table keyed by the memories'
    batch key; the deletion then walks
    that list in key-range batches, so its work grows with the victims, not
    with the table. Building it writes nothing to the database proper."""

    def __init__(self, db, rules: PruneRules):
        self.db = db
        self.model = v = _victims_model(db)
        v.drop_table(safe=True)
        v.create_table(temporary=True)
        p = _victims(db, rules).alias("p")
        # In key order: appended to the victims' b-tree rather than inserted all over it.
        self.count = v.insert_from(pw.Select([p], [p.c.k, p.c.accessed, p.c.reason]).order_by(p.c.k),
                                   [v.k, v.accessed, v.reason]).as_rowcount().execute()

    def execute(self, spool: Spool | None = None, *, progress=None) -> int:
        """Delete the victims still victims, batch by batch; their rows
        (PRUNE_COLUMNS) go to `spool` (DELETE … RETURNING)."""
        db, v = self.db, self.model
        key = batch_key(db, M)
        # In the subquery a bare rowid would be the victim's own: qualify it.
        this = pw.SQL(f'"{M._meta.table_name}".rowid') if dialect(db) == "sqlite" else M.id
        columns = [M.id, M.agent_id, M.strength, v.select(v.reason).where(v.k == this), M.content]

        def apply(batch):
            # Still a victim: listed in this batch, not pinned since, not accessed since.
            listed = v.select(v.k, v.accessed).where(batch)
            query = M.delete().where((M.permanent == 0)
                                     & pw.Tuple(key, fn.COALESCE(M.last_accessed_at, 0)).in_(listed))
            if spool is None:
                return query.execute()
            return returning(db, query, M, columns, spool.add)

        return in_batches(db, v, SQL("1 = 1"), apply, progress=progress)

    def close(self) -> None:
        try:
            self.model.drop_table(safe=True)
        except pw.PeeweeException:  # the connection is gone: the table went with it
            pass
