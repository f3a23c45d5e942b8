"""Counts in words: "1 session", "2,415 memories"."""

from __future__ import annotations


def number(n: int) -> str:
    """An integer with thousands separators: 12,000."""
    return f"{n:,}"


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n` and the noun that goes with it: plural("memory") is "memories",
    plural("session") "sessions"; `nouns` when English needs it otherwise."""
    if n == 1:
        return f"1 {noun}"
    if nouns is None:
        if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "o", "u"):
            nouns = noun[:-1] + "ies"
        elif noun.endswith(("s", "x", "ch", "sh")):
            nouns = noun + "es"
        else:
            nouns = noun + "s"
    return f"{number(n)} {nouns}"


def size(n: int | None) -> str:
    """A number of bytes as `ls -lh` would round it: 812 bytes, 4.0 KiB, 1.5 GiB."""
    if n is None:
        return "unknown"
    if abs(n) < 1024:
        return plural(n, "byte")
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.1f} {unit}"
    raise AssertionError("unreachable")
