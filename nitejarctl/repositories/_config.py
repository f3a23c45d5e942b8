"""Editing the JSON `config` column that agents and integrations share."""

from __future__ import annotations

from nitejarctl import jsonarg
from nitejarctl.errors import OperationalProblem


def edited_config(db, model, row_id: str, replacement: dict | None, sets, unsets,
                  what: str) -> tuple[str, list]:
    """The new config text of one row: `replacement` (else the stored config,
    read under a row lock on PostgreSQL) with `sets` ("a.b=value") then
    `unsets` ("a.b") applied. Returns it and the unset keys that were not
    there. Call it inside the transaction that writes the result."""
    if replacement is None:
        current = db.for_update(model.select(model.config).where(model.id == row_id)).scalar()
        base = {} if current in (None, "") else jsonarg.parse_stored(current)
        if not isinstance(base, dict):
            raise OperationalProblem(
                f"the stored config of {what} is not a JSON object; replace it with --config")
    else:
        base = replacement
    missing = jsonarg.edit(base, sets, unsets)
    return jsonarg.dumps(base), missing
