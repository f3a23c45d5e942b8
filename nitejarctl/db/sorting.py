"""`--sort [-]FIELD`: a listing's query ordered by one of its own output
fields, by the database (the rows still stream from its cursor)."""

from __future__ import annotations

import peewee as pw


def sortable(query) -> dict:
    """The query's output fields by name: what ORDER BY names for each (a
    column as selected, an aliased expression by its alias)."""
    fields = {}
    for node in getattr(query, "_returning", None) or ():
        if isinstance(node, pw.Alias):
            fields[node._alias] = pw.Entity(node._alias)
        elif isinstance(node, (pw.Field, pw.Column)):
            fields[node.name] = node
    return fields


def sort(query, name: str, *, descending: bool = False):
    """`query` ordered by its field `name` first (NULLs last either way, on
    both backends), its own order breaking ties. KeyError: no such field."""
    node = sortable(query)[name]
    first = node.desc(nulls="LAST") if descending else node.asc(nulls="LAST")
    return query.order_by(first, *(query._order_by or ()))
