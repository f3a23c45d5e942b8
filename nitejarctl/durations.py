"""Durations: "3600", "90s", "30m", "1h30m", "7d", "1w" <-> seconds."""

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"([0-9]+)([smhdw])")
_WHOLE = re.compile(r"(?:[0-9]+[smhdw])+")
_DIGITS = re.compile(r"[0-9]+")
# Longer ago than any time a database holds; "now - duration" stays a small
# integer on every backend (a 64-bit column, a bound parameter).
MAX_SECONDS = 1000 * 365 * 86400


def parse_duration(text: str) -> int:
    """Seconds in `text`; raises ValueError for zero, negative or garbage."""
    value = str(text).strip().lower()
    if _DIGITS.fullmatch(value):
        seconds = _number(value)
    elif _WHOLE.fullmatch(value):
        seconds = sum(_number(n) * _UNITS[u] for n, u in _PART.findall(value))
    else:
        raise ValueError(
            f"{text!r} is not a duration (use seconds or units s, m, h, d, w, e.g. 90s, 1h30m, 7d)"
        )
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is too long (at most 1000 years)")
    return seconds


def _number(digits: str) -> int:
    # int() of thousands of digits is slow or refused; anything this long is too long anyway.
    return int(digits) if len(digits) <= 20 else MAX_SECONDS + 1


def format_duration(seconds: int) -> str:
    """Compact form of a positive number of seconds: 5400 -> '1h30m'."""
    if seconds <= 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNITS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def format_age(seconds: int) -> str:
    """Human age for tables: '45s', '5m', '3h', '2d', '6w'."""
    seconds = max(0, int(seconds))
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "w" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
