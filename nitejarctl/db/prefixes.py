"""Unique id prefixes, as git and docker take them: wherever an id is taken,
its first MIN_LENGTH or more characters do when no other id starts so.

Set-based: the ids given are looked up together (IN, by chunks), and only
those that are no id are tried as prefixes, a chunk at a time in one
statement, each prefix a range scan of the id's index that stops at its
second match (enough to tell unique from ambiguous)."""

from __future__ import annotations

import peewee as pw

from nitejarctl.errors import UsageProblem

MIN_LENGTH = 6
EXACT_CHUNK = 500
PREFIX_CHUNK = 100
TOP = "\U0010ffff"  # above every character: [p, p + TOP) holds what starts with p


def starts_with(db, field, prefix: str):
    """`field` starts with `prefix`, as a range its index can scan (compared
    code point by code point on both backends)."""
    column = db.code_point_order(field)
    return (column >= prefix) & (column < prefix + TOP)


def expand(db, source, field, refs) -> dict[str, list]:
    """{ref: the values of `field` (of `source`, a model or a table) it
    starts (two at most)} for each of `refs` that is no value of `field` but at
    least MIN_LENGTH characters long."""
    refs = list(dict.fromkeys(refs))
    model = source
    found = set()
    for start in range(0, len(refs), EXACT_CHUNK):
        chunk = refs[start:start + EXACT_CHUNK]
        found.update(v for (v,) in model.select(field).where(field.in_(chunk)).tuples())
    candidates = [r for r in refs if r not in found and isinstance(r, str) and len(r) >= MIN_LENGTH]
    matches: dict[str, list] = {}
    for start in range(0, len(candidates), PREFIX_CHUNK):
        parts = []
        for i, prefix in enumerate(candidates[start:start + PREFIX_CHUNK]):
            inner = (model.select(pw.Cast(pw.Value(prefix), "text").alias("ref"), field.alias("value"))
                     .where(starts_with(db, field, prefix)).order_by(field).limit(2))
            parts.append(pw.Select(from_list=[inner.alias(f"p{i}")], columns=[pw.SQL("*")]))
        union = parts[0]
        for part in parts[1:]:
            union = union + part
        for ref, value in db.execute(union).fetchall():
            matches.setdefault(ref, []).append(value)
    return matches


def resolve(db, source, field, refs, nouns: str) -> list:
    """`refs` with each unique prefix replaced by its id; the others as they
    are (an id, or one the command will report as not found). An ambiguous
    prefix is a usage error saying how many `nouns` it matches."""
    matches = expand(db, source, field, refs)
    for ref, values in matches.items():
        if len(values) > 1:
            n = source.select().where(starts_with(db, field, ref)).count()
            raise UsageProblem(f"{ref!r} is the start of {n:,} {nouns}' ids: give more of the id")
    return [matches[r][0] if r in matches else r for r in refs]
