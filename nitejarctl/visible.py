"""Text on a terminal: control characters shown, never obeyed.

Names, keys and messages come from nitejar's users. Written raw to a
terminal, an escape sequence would act (OSC 52 sets the clipboard, OSC 0 the
window title, CSI 2J clears the screen) and a bidi override would reorder
what the operator reads. Tables and every message on stderr show them
escaped instead (`\\x1b`, `\\u202e`); machine formats keep the data exact.

Imports nothing heavy: every message on stderr passes through here.
"""

from __future__ import annotations

import re

# C0 (but tab and newline, which tables may keep), DEL and C1 controls; the
# bidi embeddings, overrides, isolates and marks; the line and paragraph
# separators.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_IN_CELL = re.compile(f"[{_UNSAFE}]")
_IN_LINE = re.compile(f"[\t\n{_UNSAFE}]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if code == 0x09:
        return "\\t"
    if code == 0x0A:
        return "\\n"
    if code == 0x0D:
        return "\\r"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` for one line of a terminal: every control, bidi control, tab and
    newline escaped."""
    return _IN_LINE.sub(_escape, text)


def visible_cell(text: str) -> str:
    """`text` for a table cell: as `visible`, but tabs and newlines stay (a
    table lays them out)."""
    return _IN_CELL.sub(_escape, text)
