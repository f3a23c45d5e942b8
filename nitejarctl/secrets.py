"""Secrets in configs and in database errors: what is shown, what is kept.

A config key whose name speaks of a secret (token, secret, password,
passphrase, private key, API key, credential — any case, any depth) has its
value shown as `***`, and every value nitejar encrypted (`enc:…`) as
`enc:***`, in every output (integrations today, plugin instances later).
A config written back with those placeholders keeps the stored values at the
same key paths, so `show -o json | … | update --config @-` never stores
`***`. A PostgreSQL error that quotes the failing row (`DETAIL: Failing row
contains (…)`) is shown without the row.

Imports nothing heavy: the error path of every command uses it.
"""

from __future__ import annotations

import re

MASK = "***"
ENCRYPTED = "enc:"
ENCRYPTED_MASK = ENCRYPTED + MASK
PLACEHOLDERS = (MASK, ENCRYPTED_MASK)

# Compared with the key lower-cased and without `_` and `-`: privateKey,
# private_key and PRIVATE-KEY are all privatekey.
_SECRET_WORDS = ("token", "secret", "password", "passphrase", "privatekey", "apikey", "credential")


def is_secret_key(name: str) -> bool:
    flat = str(name).lower().replace("_", "").replace("-", "")
    return any(word in flat for word in _SECRET_WORDS)


def _masked_value(value):
    if isinstance(value, str) and value.startswith(ENCRYPTED):
        return ENCRYPTED_MASK
    return MASK


def mask_config(value, *, secret: bool = False):
    """A copy of a parsed config with every secret replaced by its placeholder.
    Under a secret key every non-empty leaf is masked (the structure stays)."""
    if isinstance(value, dict):
        return {k: mask_config(v, secret=secret or is_secret_key(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_config(v, secret=secret) for v in value]
    if isinstance(value, str) and value.startswith(ENCRYPTED):
        return ENCRYPTED_MASK
    if secret and value is not None and value != "":
        return _masked_value(value)
    return value


def is_secret_column(column: str) -> bool:
    """A result column whose text is a secret: named like one, and not a
    reference to another row (`credential_id`)."""
    return is_secret_key(column) and not str(column).lower().endswith("_id")


def mask_cell(value, *, secret: bool = False):
    """A value of any query's result as listings show secrets: text in a
    `secret` column (is_secret_column) as `***`, nitejar's encrypted values
    as `enc:***`, and the secrets of a JSON object or array held as text
    masked inside it (the rest of it kept)."""
    if not isinstance(value, str) or not value:
        return value
    if secret:
        return _masked_value(value)
    if value.startswith(ENCRYPTED):
        return ENCRYPTED_MASK
    if value[:1] in "{[" and (ENCRYPTED in value or any(w in value.lower() for w in _JSON_HINTS)):
        import json

        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        masked = mask_config(parsed)
        if masked != parsed:
            return json.dumps(masked, ensure_ascii=False, separators=(",", ":"))
    return value


# A JSON text can hold a secret only if one of these is in it (a quick test
# before parsing every JSON cell of a large result).
_JSON_HINTS = ("token", "secret", "password", "passphrase", "private", "api", "credential")


def keep_stored(new, stored, what: str, path: tuple = ()):
    """`new` with every placeholder replaced by the value `stored` holds at the
    same key path (dict keys, list positions). A placeholder where nothing is
    stored is refused: `***` is never written as a value. Returns the merged
    value (`new` itself is not changed)."""
    from nitejarctl.errors import UsageProblem

    if isinstance(new, str) and new in PLACEHOLDERS:
        found, value = _at(stored, path)
        if not found or (isinstance(value, str) and value in PLACEHOLDERS):
            where = ".".join(str(p) for p in path) or "the config"
            raise UsageProblem(f"{where} in the config of {what} is the placeholder {new!r} but "
                               "nothing is stored there: give the real value")
        return value
    if isinstance(new, dict):
        return {k: keep_stored(v, stored, what, (*path, k)) for k, v in new.items()}
    if isinstance(new, list):
        return [keep_stored(v, stored, what, (*path, i)) for i, v in enumerate(new)]
    return new


def _at(value, path: tuple):
    for part in path:
        if isinstance(value, dict) and isinstance(part, str) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return False, None
    return True, value


# PostgreSQL quotes a row that breaks a constraint in the error's DETAIL; the
# row holds the config. The quote ends at the end of its line, but a value
# may hold newlines: the lines that follow, up to the next part of the error
# or of a traceback, go too.
_FAILING_ROW = re.compile(
    r"Failing row contains .*?(?=\n(?:[A-Z]+:|Traceback|The above|During handling|  File|\S+Error\b|\n)|\Z)",
    re.S)


def without_rows(text: str) -> str:
    """A database error's text without the row PostgreSQL quotes in it."""
    return _FAILING_ROW.sub("Failing row not shown", text)
