"""Deleting rows with everything the foreign keys say goes with them.

nitejar's databases declare their foreign keys (ON DELETE CASCADE, SET NULL,
or nothing) but nitejar writes SQLite without enforcing them. A `Cascade`
reads the keys from the database's own catalogue (db.foreign_keys) and walks
them from the rows to delete — `roots`: a condition on each of some tables —
to every depth:

* a row whose CASCADE key points at a doomed row is doomed too;
* a surviving row whose SET NULL key points at a doomed row gets NULL there;
* a surviving row whose key has no such action (NO ACTION, RESTRICT) and
  points at a doomed row blocks the change: nothing is done and the preview
  says which key (unless the key is `detach`ed: then it is set NULL too).

Every table's doomed rows are one condition on that table (IN subqueries of
its parents' conditions), so `preview()` counts exactly what `prepared()`
then changes: the NULLs first, then the deletes, children before parents, the
roots last (a change stopped half-way can be run again: its roots are still
there). Each step is one `Change` walked in key-range batches (db.batches)
over a temporary list of the keys it changes, re-checked in each batch; on
SQLite foreign keys are off on the connection meanwhile (the change does all
of it itself, and SQLite would look for every deleted row's children again).

A cycle of CASCADE keys (a table deleting its own rows through others) is
refused: no nitejar schema has one, and its preview would need a fixed point.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

from peewee import SQL

from nitejarctl.db import foreign_keys as fks
from nitejarctl.db.changed_rows import Change
from nitejarctl.errors import OperationalProblem, SchemaProblem

TEMPORARY = "nitejarctl_cascade_"


@dataclass
class Effect:
    """What a cascade does: rows deleted per table, keys set NULL per
    `table.column`, references that block it per `table.column`, and the rows
    of the `also` changes run with it, per label."""

    deletes: dict = field(default_factory=dict)
    nulls: dict = field(default_factory=dict)
    blocked: dict = field(default_factory=dict)
    also: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.deletes.values()) + sum(self.nulls.values()) + sum(self.also.values())


@dataclass
class Step:
    """One table's part of the change: delete its doomed rows, or set NULL
    the `columns` of key `key` where `where(t)` says."""

    table: str
    where: Callable  # (an instance of the table) -> condition
    key: fks.ForeignKey | None = None  # for a NULL step

    @property
    def label(self) -> str:
        return self.table if self.key is None else self.key.name


def _any(parts):
    return functools.reduce(operator.or_, parts)


def dangling_roots(db, found: dict, *, detach: bool = False):
    """What repairing the dangling references `found` ({ForeignKey: rows},
    db.dangling_references) takes, key by key: ({table: condition} of the
    rows to delete — those of CASCADE keys —, [keys whose dangling values are
    set NULL], {key: rows} of those kept). A key without ON DELETE action
    keeps its rows, unless `detach` (and the column allows NULL)."""
    deleting: dict[str, list] = {}
    nulls, kept = [], {}
    for fk, n in found.items():
        if fk.cascades:
            deleting.setdefault(fk.child, []).append(fk)
        elif fk.sets_null or (detach and all(db.nullable(fk.child, c) for c in fk.child_columns)):
            nulls.append(fk)
        else:
            kept[fk] = n
    roots = {table: functools.partial(_dangling_rows, db, keys) for table, keys in deleting.items()}
    return roots, nulls, kept


def _dangling_rows(db, keys, t):
    return _any([db.dangling(fk, t) for fk in keys])


class Cascade:
    """The rows `roots` ({table: condition(t)}) select, and every row the
    foreign keys tie to them. `dangling_nulls`: keys whose values that point
    nowhere are set NULL as well (repair). `detach`: names of keys without an
    ON DELETE action whose references to doomed rows are set NULL instead of
    blocking."""

    def __init__(self, db, roots: dict, *, dangling_nulls=(), detach=frozenset()):
        self.db = db
        self.roots = dict(roots)
        keys = [fk for fk in db.foreign_keys() if db.has_table(fk.child)]
        self.doomed = self._doomed(keys)
        self._check_cycles(keys)
        self._cascading = {t: [fk for fk in keys if fk.cascades and fk.child == t and fk.parent in self.doomed]
                           for t in self.doomed}
        into = [fk for fk in keys if fk.parent in self.doomed and not fk.cascades]
        self._nulled = [fk for fk in into if fk.sets_null or fk.name in detach]
        self._restricting = [fk for fk in into if fk.restricts and fk.name not in detach]
        self._dangling = list(dict.fromkeys(dangling_nulls))
        self._order = self._children_first(keys)

    # -------------------------------------------------------------- the graph

    def _doomed(self, keys) -> set[str]:
        doomed, queue = set(self.roots), list(self.roots)
        while queue:
            parent = queue.pop()
            for fk in keys:
                if fk.cascades and fk.parent == parent and fk.child not in doomed:
                    doomed.add(fk.child)
                    queue.append(fk.child)
        return doomed

    def _check_cycles(self, keys) -> None:
        edges = {t: {fk.parent for fk in keys if fk.cascades and fk.child == t and fk.parent in self.doomed}
                 for t in self.doomed}
        done, path = set(), []

        def visit(t):
            if t in path:
                cycle = path[path.index(t):] + [t]
                raise SchemaProblem("the foreign keys " + " -> ".join(cycle) + " delete rows in a cycle "
                                    "(ON DELETE CASCADE): nitejarctl cannot tell what such a delete removes")
            if t in done:
                return
            path.append(t)
            for parent in edges[t]:
                visit(parent)
            path.pop()
            done.add(t)

        for t in sorted(self.doomed):
            visit(t)

    def _children_first(self, keys) -> list[str]:
        """The doomed tables, each before every doomed table it refers to (by
        any key but to its own rows: a key without ON DELETE action is checked
        when its parent is deleted, so its children must be gone by then; SET
        NULL keys are left out when they alone make a cycle)."""
        for with_nulls in (True, False):
            refers = {t: {fk.parent for fk in keys if fk.child == t and fk.parent in self.doomed
                          and fk.parent != t and (with_nulls or not fk.sets_null)} for t in self.doomed}
            order, placed = [], set()
            while len(order) < len(self.doomed):
                ready = sorted(t for t in self.doomed - placed
                               if not any(t in refers[c] for c in self.doomed - placed if c != t))
                if not ready:
                    break
                order += ready
                placed.update(ready)
            else:
                return order
        raise SchemaProblem("the foreign keys between " + ", ".join(sorted(self.doomed - placed))
                            + " refer to each other in a cycle: nitejarctl cannot order the delete")

    # ---------------------------------------------------------- the conditions

    def selects(self, table: str, t):
        """The doomed rows of `table`, as a condition on `t` (an instance of it)."""
        parts = []
        if table in self.roots:
            parts.append(self.roots[table](t))
        for fk in self._cascading[table]:
            parents = fks.table(self.db, fk.parent)
            parts.append(fks.references(fk, t, self._keys(parents, fk).where(self.selects(fk.parent, parents))))
        return _any(parts)

    def _keys(self, parents, fk):
        return parents.select(*(getattr(parents.c, c) for c in fk.parent_columns))

    def _pointing(self, fk, t):
        """The rows of `t` whose key `fk` points at a doomed row."""
        parents = fks.table(self.db, fk.parent)
        return fks.references(fk, t, self._keys(parents, fk).where(self.selects(fk.parent, parents)))

    def _surviving(self, table: str, t, condition):
        return condition & ~self.selects(table, t) if table in self.doomed else condition

    def steps(self) -> list[Step]:
        """NULLs first (while every parent is still there), then the deletes,
        children first."""
        steps = []
        for fk in list(dict.fromkeys(self._nulled + self._dangling)):
            def where(t, fk=fk):
                parts = []
                if fk in self._nulled:
                    parts.append(self._pointing(fk, t))
                if fk in self._dangling:
                    parts.append(self.db.dangling(fk, t))
                return self._surviving(fk.child, t, _any(parts))
            steps.append(Step(fk.child, where, fk))
        for table in self._order:
            steps.append(Step(table, functools.partial(self.selects, table)))
        return steps

    # -------------------------------------------------------------- previews

    def preview(self, also: dict | None = None) -> Effect:
        """What the change would do (nothing is written)."""
        effect = Effect()
        for step in self.steps():
            t = fks.table(self.db, step.table)
            n = fks.count(self.db, t, step.where(t))
            if step.key is None:
                effect.deletes[step.table] = n
            else:
                effect.nulls[step.label] = effect.nulls.get(step.label, 0) + n
                if n and any(not self.db.nullable(step.table, c) for c in step.key.child_columns):
                    effect.blocked[step.label] = n
        for fk in self._restricting:
            t = fks.table(self.db, fk.child)
            n = fks.count(self.db, t, self._surviving(fk.child, t, self._pointing(fk, t)))
            if n:
                effect.blocked[fk.name] = effect.blocked.get(fk.name, 0) + n
        for label, change in (also or {}).items():
            effect.also[label] = change.model.select().where(change.condition()).count()
        return effect

    def refuse_blocked(self, effect: Effect, what: str) -> None:
        """One line naming the references that keep `what` from being deleted."""
        if effect.blocked:
            from nitejarctl.output.words import plural

            keys = ", ".join(f"{name} ({plural(n, 'row')})" for name, n in sorted(effect.blocked.items()))
            raise OperationalProblem(
                f"cannot delete {what}: rows that stay would be left referring to deleted ones through "
                f"foreign keys without ON DELETE CASCADE or SET NULL (or NOT NULL keys): {keys}")

    def prepared(self, also: dict | None = None) -> Prepared:
        """The change, its keys listed (use as a context manager)."""
        return Prepared(self, also or {})


class Prepared:
    """A cascade's steps with the keys each one changes listed in temporary
    tables (reading only); `run(bulk)` then changes them, batch by batch."""

    def __init__(self, cascade: Cascade, also: dict):
        self.cascade, self.db = cascade, cascade.db
        self.also = dict(also)
        self.steps = cascade.steps()
        self._listed: list = []
        self.counts = [0] * (len(self.also) + len(self.steps))
        self.total = 0

    def __enter__(self) -> Prepared:
        try:
            for change in self.also.values():
                self.total += change.model.select().where(change.condition()).count()
            for i, step in enumerate(self.steps):
                t = fks.table(self.db, step.table)
                listed = self.db.listed_rows(f"{TEMPORARY}{i}", t, step.where(t))
                self._listed.append(listed)
                self.total += listed.count
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for listed in self._listed:
            listed.drop()
        self._listed = []

    def _change(self, step: Step, listed) -> Change:
        target = fks.table(self.db, step.table)
        values = None if step.key is None else {getattr(target.c, c): None for c in step.key.child_columns}
        return Change(target, values=values, scan=listed.model, scope=SQL("1 = 1"),
                      within=lambda batch: listed.within(target, batch) & step.where(target))

    def run(self, bulk) -> None:
        """Change what the steps list (`counts` holds what committed, in
        `also` then steps order, when something stops it half-way)."""
        changes = list(self.also.values())
        changes += [self._change(step, listed) for step, listed in zip(self.steps, self._listed)]
        with self.db.cascades_by_hand():
            bulk.apply_each(self.db, changes, self.counts)

    def effect(self) -> Effect:
        """What committed so far."""
        effect = Effect()
        n_also = len(self.also)
        for label, n in zip(self.also, self.counts[:n_also]):
            effect.also[label] = n
        for step, n in zip(self.steps, self.counts[n_also:]):
            if step.key is None:
                effect.deletes[step.table] = n
            else:
                effect.nulls[step.label] = effect.nulls.get(step.label, 0) + n
        return effect
