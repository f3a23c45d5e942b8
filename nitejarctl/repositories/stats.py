"""Aggregates for the `stats` commands: sprite sessions and memories at a glance.

Each figure is one GROUP BY over its table; histograms bucket in SQL with CASE
(portable: SQLite has no floor() in every build, and PostgreSQL's integer cast
rounds).
"""

from __future__ import annotations

from peewee import SQL, Case, fn

from nitejarctl.models import Agent, AgentMemory, SpriteSession

# Age of last activity of active sessions: (label, upper bound in seconds).
AGE_BUCKETS = (("< 5m", 300), ("5m–15m", 900), ("15m–1h", 3600), ("1h–4h", 14400),
               ("4h–24h", 86400), ("1d–7d", 604800), ("> 7d", None))
STRENGTH_BUCKETS = 10
TOP_AGENTS = 20


def _agent_names(db, ids) -> dict[str, str]:
    if not ids or "name" not in db.columns(Agent._meta.table_name):
        return {}
    rows = Agent.select(Agent.id, Agent.name).where(Agent.id.in_(list(ids))).tuples()
    return dict(rows)


def _nulls_last(value):
    """A sort key for values a column may hold, NULL among them (after the rest)."""
    return (value is None, "" if value is None else str(value))


def _bucket(expr, bounds):
    """CASE mapping `expr` to the index of the first bound it is below."""
    cases = [(expr < bound, i) for i, bound in enumerate(bounds)]
    return Case(None, cases, len(bounds))


def session_stats(db, *, now: int, top: int = TOP_AGENTS) -> dict:
    db.require_table(SpriteSession._meta.table_name)
    S = SpriteSession
    by_status = dict(S.select(S.status, fn.COUNT(SQL("*"))).group_by(S.status).tuples())
    per_agent = (S.select(S.agent_id,
                          fn.SUM(Case(None, [(S.status == "active", 1)], 0)).alias("active"),
                          fn.SUM(Case(None, [(S.status == "closed", 1)], 0)).alias("closed"),
                          fn.SUM(Case(None, [(S.status == "error", 1)], 0)).alias("error"),
                          fn.COUNT(SQL("*")).alias("total"))
                 .group_by(S.agent_id).order_by(SQL("total").desc(), S.agent_id).limit(top).dicts())
    agents = list(per_agent)
    names = _agent_names(db, {a["agent_id"] for a in agents})
    for a in agents:
        a["agent_name"] = names.get(a["agent_id"])
        for key in ("active", "closed", "error"):
            a[key] = int(a[key] or 0)
    bounds = [b for _, b in AGE_BUCKETS if b is not None]
    bucket = _bucket(now - S.last_active_at, bounds)
    counts = dict(S.select(bucket.alias("b"), fn.COUNT(SQL("*")))
                  .where(S.status == "active").group_by(SQL("b")).tuples())
    ages = [{"age": label, "count": int(counts.get(i, 0))} for i, (label, _) in enumerate(AGE_BUCKETS)]
    return {"total": sum(by_status.values()),
            "by_status": {s: int(by_status.get(s, 0))
                          for s in sorted(set(by_status) | {"active", "closed", "error"}, key=_nulls_last)},
            "by_agent": agents, "active_age": ages}


def memory_stats(db, *, agent_id: str | None = None, top: int = TOP_AGENTS * 5) -> dict:
    db.require_table(AgentMemory._meta.table_name)
    M = AgentMemory
    bounds = [(i + 1) / STRENGTH_BUCKETS for i in range(STRENGTH_BUCKETS - 1)]
    bucket = _bucket(M.strength, bounds)
    query = M.select(M.agent_id, bucket.alias("b"), fn.COUNT(SQL("*")).alias("n"),
                     fn.SUM(M.permanent).alias("permanent"), fn.SUM(M.strength).alias("total_strength"))
    if agent_id is not None:
        query = query.where(M.agent_id == agent_id)
    per = {}
    for agent, b, n, permanent, total_strength in query.group_by(M.agent_id, SQL("b")).tuples():
        entry = per.setdefault(agent, {"agent_id": agent, "count": 0, "permanent": 0, "_sum": 0.0,
                                       "histogram": [0] * STRENGTH_BUCKETS})
        entry["count"] += n
        entry["permanent"] += int(permanent or 0)
        entry["_sum"] += float(total_strength or 0)
        entry["histogram"][int(b)] += n
    agents = sorted(per.values(), key=lambda e: (-e["count"], e["agent_id"]))[:top]
    names = _agent_names(db, {a["agent_id"] for a in agents})
    for a in agents:
        a["agent_name"] = names.get(a["agent_id"])
        a["mean_strength"] = round(a.pop("_sum") / a["count"], 4) if a["count"] else None
    return {"total": sum(e["count"] for e in per.values()), "agents": len(per),
            "buckets": [f"{i / STRENGTH_BUCKETS:.1f}–{(i + 1) / STRENGTH_BUCKETS:.1f}"
                        for i in range(STRENGTH_BUCKETS)],
            "by_agent": agents}
