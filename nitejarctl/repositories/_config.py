"""Editing the JSON config column of agents and integrations (config, config_json)."""

from __future__ import annotations

from nitejarctl import jsonarg
from nitejarctl.errors import OperationalProblem


def edited_config(db, source, id_column, config_column, row_id: str, replacement: dict | None, sets,
                  unsets, what: str, *, masked: bool = False) -> tuple[str, list]:
    """The new config text of one row of `source` (a model or a table, its
    `id_column` and `config_column`): `replacement` (else the stored config,
    read under a row lock on PostgreSQL) with `sets` ("a.b=value") then
    `unsets` ("a.b") applied. Returns it and the unset keys that were not
    there. Call it inside the transaction that writes the result.

    `masked`: the config is shown with its secrets masked (nitejarctl.secrets),
    so a `***` placeholder in the result stands for the value stored at the
    same key path, which is kept."""
    stored = None
    if replacement is None or masked:
        current = db.for_update(source.select(config_column).where(id_column == row_id)).scalar()
        stored = {} if current in (None, "") else jsonarg.parse_stored(current)
    if replacement is None:
        if not isinstance(stored, dict):
            raise OperationalProblem(
                f"the stored config of {what} is not a JSON object; replace it with --config")
        base = stored
    else:
        base = replacement
    missing = jsonarg.edit(base, sets, unsets)
    if masked:
        from nitejarctl.secrets import keep_stored

        base = keep_stored(base, stored, what)
    return jsonarg.dumps(base), missing
