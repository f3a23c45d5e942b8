"""Id arguments that take a unique prefix of the id (db.prefixes): the
command then sees whole ids, and reports the ones that match nothing as it
reports unknown ids (exit 3, or a warning with --ignore-missing)."""

from __future__ import annotations

from nitejarctl.cli.context import Settings


def prefixed(model: str, nouns: str):
    """A click callback turning unique prefixes of the ids of `model` (a
    nitejarctl.models name) into those ids; an ambiguous one is a usage error."""
    def callback(ctx, param, value):
        if value is None or ctx.resilient_parsing or value == ():
            return value
        from nitejarctl import models
        from nitejarctl.db import prefixes

        table = getattr(models, model)
        db = ctx.find_object(Settings).database()
        if not db.has_table(table._meta.table_name):
            return value  # the command says what is missing
        many = isinstance(value, tuple)
        full = prefixes.resolve(db, table, table._meta.primary_key, list(value) if many else [value], nouns)
        return tuple(full) if many else full[0]

    return callback
