"""JSON on the command line: `--config JSON|@file` and dotted-key edits
(`--set memorySettings.decayRate=0.2`, `--unset sessionSettings.compaction`).

Errors are usage errors (exit 2); a parse error names the parser's line and
column. Imports neither Click nor Peewee.
"""

from __future__ import annotations

import json
import sys

from nitejarctl.errors import UsageProblem


def _reject_constant(name: str):
    # NaN and Infinity are not JSON (nitejar's JSON.parse rejects them).
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str):
    """json.loads without NaN/Infinity."""
    return json.loads(text, parse_constant=_reject_constant)


def dumps(value) -> str:
    """Compact JSON as nitejar's JSON.stringify writes it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def read_argument(value: str, option: str) -> tuple[str, str]:
    """(text, where) for `JSON`, `@file` or `@-` (stdin)."""
    if not value.startswith("@"):
        return value, option
    path = value[1:]
    if not path:
        raise UsageProblem(f"{option} @: a file name is missing after '@'")
    if path == "-":
        try:
            text = sys.stdin.read()
            text.encode("utf-8")  # stdin read with surrogateescape (a C locale)
        except UnicodeDecodeError as exc:
            raise UsageProblem(f"cannot read {option} (stdin): not UTF-8 ({exc.reason})") from None
        except UnicodeEncodeError:
            raise UsageProblem(f"cannot read {option} (stdin): not UTF-8") from None
        return text, f"{option} (stdin)"
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(), f"{option} file {path}"
    except OSError as exc:
        raise UsageProblem(f"cannot read {option} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageProblem(f"cannot read {option} file {path}: not UTF-8 ({exc.reason})") from None


def parse_object(value: str, option: str = "--config") -> dict:
    """A JSON object from `JSON`, `@file` or `@-`; anything else is a usage error."""
    text, where = read_argument(value, option)
    try:
        parsed = loads(text)
    except json.JSONDecodeError as exc:
        raise UsageProblem(
            f"invalid JSON in {where}: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:
        raise UsageProblem(f"invalid JSON in {where}: {exc}") from None
    if not isinstance(parsed, dict):
        raise UsageProblem(f"{where} must be a JSON object ({{…}}), not {_kind(parsed)}")
    return parsed


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def parse_value(text: str):
    """A --set value: JSON when it parses (`0.2`, `true`, `{"a":1}`), else the string."""
    try:
        return loads(text)
    except ValueError:
        return text


def parse_path(key: str, option: str = "--unset") -> list[str]:
    """`a.b.c` -> ['a', 'b', 'c']; an empty key or segment is a usage error."""
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise UsageProblem(f"{option} needs a dotted key such as memorySettings.decayRate, got {key!r}")
    return parts


def parse_assignment(text: str, option: str = "--set") -> tuple[list[str], object]:
    """`a.b=value` -> (['a', 'b'], parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise UsageProblem(f"{option} expects dotted.key=value, got {text!r}")
    if not key:
        raise UsageProblem(f"{option} expects dotted.key=value, got {text!r} (the key is empty)")
    return parse_path(key, option), parse_value(raw)


def set_path(obj: dict, path: list[str], value) -> None:
    """Set obj[a][b]… = value, creating objects on the way."""
    node = obj
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            where = ".".join(path[:depth + 1])
            raise UsageProblem(f"cannot set {'.'.join(path)}: {where} is {_kind(child)}, not an object")
        node = child
    node[path[-1]] = value


def unset_path(obj: dict, path: list[str]) -> bool:
    """Remove obj[a][b]…; False when it was not there."""
    node = obj
    for part in path[:-1]:
        node = node.get(part)
        if not isinstance(node, dict):
            return False
    if path[-1] not in node:
        return False
    del node[path[-1]]
    return True


def edit(obj: dict, sets=(), unsets=()) -> list[str]:
    """Apply `--set` assignments (texts) then `--unset` keys to `obj` in place.
    Returns the unset keys that were not there."""
    assignments = [parse_assignment(s) for s in sets]
    paths = [parse_path(u) for u in unsets]
    for path, value in assignments:
        set_path(obj, path, value)
    return [".".join(p) for p in paths if not unset_path(obj, p)]


def parse_stored(text):
    """A stored JSON text column for `show`: the parsed value, or the text
    itself when it is not JSON (never fails)."""
    if text is None or not isinstance(text, str):
        return text
    try:
        return loads(text)
    except ValueError:
        return text


def parse_config_edits(config_text: str | None, sets=(), unsets=()) -> dict | None:
    """Check --config, --set and --unset before anything is opened: the parsed
    replacement config (None when --config is not given); usage errors otherwise."""
    config = None if config_text is None else parse_object(config_text, "--config")
    for text in sets:
        parse_assignment(text, "--set")
    for key in unsets:
        parse_path(key, "--unset")
    return config
