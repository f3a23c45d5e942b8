"""What a listing shows: its columns for the format asked (a table's own
choice and order, every column with -o wide, exactly --columns), the order
--sort asks of the database, and agents by name in tables.

A listing names its fields (what machine formats print, in that order) and,
for tables, the columns a person reads first: name-like fields, status, the
times the listing is about, ids last. A narrow terminal drops the columns from
the right of that order, never the first nor the sorted one (which a table
shows even when it is not among its own columns).
"""

from __future__ import annotations

from dataclasses import dataclass

from nitejarctl.errors import UsageProblem

AGENT = "agent"  # a table's agent column: the agent's name, its id when no agent has it
NAME_CHUNK = 500  # rows whose agents are named by one query


@dataclass
class Plan:
    columns: list           # output.Column, in the order shown
    fit: str                # how a table fits the terminal: "order" (drop from the right) or "none"
    keep: str | None        # the sorted-on column: never dropped
    agent_names: bool       # the rows need the agent column


def plan(settings, columns, table=None) -> Plan:
    """The columns to emit: --columns as given (any format); for a table the
    listing's `table` names (every column after them with -o wide); else
    every field, unchanged."""
    from nitejarctl.output import Column, columns_of

    fields = columns_of(columns)
    known = {c.name: c for c in fields}
    if "agent_id" in known and AGENT not in known:
        known[AGENT] = Column(AGENT)
    keep = settings.sort.lstrip("-") if settings.sort else None
    if settings.columns:
        unknown = [n for n in settings.columns if n not in known]
        if unknown:
            raise UsageProblem(f"no column {unknown[0]!r} in this listing (columns: {', '.join(known)})")
        chosen, fit = [known[n] for n in dict.fromkeys(settings.columns)], "none"
    elif settings.fmt == "table":
        chosen = [known[n] for n in (table or [c.name for c in fields]) if n in known]
        fit = "order"
        if keep in known and known[keep] not in chosen:
            chosen.append(known[keep])  # the order shown is the order of a column shown
        if settings.wide:
            chosen += [c for c in fields if c not in chosen]
            fit = "none"
    else:
        chosen, fit = fields, "none"
    virtual = AGENT not in {c.name for c in fields}
    return Plan(chosen, fit, keep, virtual and any(c.name == AGENT for c in chosen))


def sorted_query(settings, query):
    """`query` as --sort orders it (a usage error for a field it lacks)."""
    if not settings.sort:
        return query
    from nitejarctl.db.sorting import sort, sortable

    name = settings.sort.lstrip("-")
    fields = sortable(query)
    if name not in fields:
        raise UsageProblem(f"cannot sort by {name!r} (fields: {', '.join(fields)})")
    return sort(query, name, descending=settings.sort.startswith("-"))


def with_agent_names(db, rows):
    """Rows with the agent column: each agent named once per listing, by one
    query for each NAME_CHUNK rows (sprite sessions may name agents that do
    not exist: those show their id)."""
    import itertools

    from nitejarctl.repositories import agents

    names: dict = {}
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, NAME_CHUNK)):
        unknown = {r.get("agent_id") for r in chunk} - names.keys() - {None}
        if unknown:
            found = agents.names(db, unknown)
            names.update({i: found.get(i, i) for i in unknown})
        for row in chunk:
            row[AGENT] = names.get(row.get("agent_id"))
            yield row
