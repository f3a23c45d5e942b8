"""Shell words for completion: reading the command line as bash reads it, and
writing a candidate so that the shell takes it literally.

A candidate comes from the database (agent names, session keys), and
completion puts it on a command line that the operator then runs, often as
root: it must arrive there as data, never as code. Bash inserts what
completion answers as it is, so every candidate is quoted here for the
quoting in force where it is inserted (none, '…', "…" or $'…'); control and
bidi characters become $'\\x..' escapes, so that the line shows them
instead of obeying them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Characters that mean nothing to bash in a word, wherever they stand.
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]")
# What bash cannot take literally between quotes, and what a terminal would
# obey: C0, DEL, C1, bidi controls, line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_DOUBLE_SPECIAL = '$`"\\'
_ANSI_C = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
           "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}


@dataclass
class Word:
    start: int  # where the word begins in the line
    value: str  # the word as the command receives it
    quote: str | None = None  # the quoting still open at its end: ', ", $' or None


def split_line(line: str) -> list[Word]:
    """The words of `line` (the command line up to the cursor), as bash would
    pass them. When the line ends in a blank the last word is a new, empty
    one. Unfinished quoting at the end is tolerated (it is where the cursor is)."""
    words: list[Word] = []
    i, n = 0, len(line)
    current: Word | None = None
    value: list[str] = []
    while i < n:
        c = line[i]
        if c in " \t\n":
            if current is not None:
                current.value = "".join(value)
                words.append(current)
                current, value = None, []
            i += 1
            continue
        if current is None:
            current = Word(i, "")
        if c == "\\":
            if i + 1 < n and line[i + 1] != "\n":
                value.append(line[i + 1])
            i += 2
        elif c == "'":
            end = line.find("'", i + 1)
            value.append(line[i + 1:] if end < 0 else line[i + 1:end])
            if end < 0:
                current.quote = "'"
                break
            i = end + 1
        elif c == "$" and line.startswith("$'", i):
            i = _ansi_c(line, i + 2, value)
            if i < 0:
                current.quote = "$'"
                break
        elif c == '"':
            i = _double(line, i + 1, value)
            if i < 0:
                current.quote = '"'
                break
        else:
            value.append(c)
            i += 1
    if current is None:
        current = Word(n, "")
    current.value = "".join(value)
    words.append(current)
    return words


def _double(line: str, i: int, value: list[str]) -> int:
    """Read "…" from `i` (after the opening quote); the index after the
    closing quote, or -1 when the line ends first."""
    n = len(line)
    while i < n:
        c = line[i]
        if c == '"':
            return i + 1
        if c == "\\" and i + 1 < n and line[i + 1] in _DOUBLE_SPECIAL + "\n":
            if line[i + 1] != "\n":
                value.append(line[i + 1])
            i += 2
            continue
        value.append(c)
        i += 1
    return -1


def _ansi_c(line: str, i: int, value: list[str]) -> int:
    """Read $'…' from `i` (after the opening quote), as bash decodes it."""
    n = len(line)
    raw = bytearray()

    def flush():
        if raw:
            value.append(raw.decode("utf-8", "replace"))
            raw.clear()

    while i < n:
        c = line[i]
        if c == "'":
            flush()
            return i + 1
        if c != "\\" or i + 1 >= n:
            flush()
            value.append(c)
            i += 1
            continue
        e = line[i + 1]
        if e == "x":
            digits = re.match(r"[0-9a-fA-F]{1,2}", line[i + 2:i + 4])
            if digits:
                raw.append(int(digits.group(), 16))
                i += 2 + len(digits.group())
                continue
        elif e in "uU":
            digits = re.match("[0-9a-fA-F]{1,4}" if e == "u" else "[0-9a-fA-F]{1,8}", line[i + 2:i + 10])
            if digits:
                flush()
                value.append(chr(min(int(digits.group(), 16), 0x10FFFF)))
                i += 2 + len(digits.group())
                continue
        elif e in "01234567":
            digits = re.match(r"[0-7]{1,3}", line[i + 1:i + 4]).group()
            raw.append(int(digits, 8) & 0xFF)
            i += 1 + len(digits)
            continue
        elif e == "c" and i + 2 < n:
            flush()
            value.append(chr(ord(line[i + 2]) & 0x1F))
            i += 3
            continue
        flush()
        value.append(_ANSI_C.get(e, "\\" + e))
        i += 2
    flush()
    return -1


def _escapes(text: str) -> str:
    """`text` as the inside of $'…': UTF-8 bytes as \\xHH (so that any
    locale reads it back the same)."""
    out = []
    for c in text:
        if c in "'\\":
            out.append("\\" + c)
        elif _CONTROL.match(c):
            out.append("".join(f"\\x{b:02x}" for b in c.encode("utf-8")))
        else:
            out.append(c)
    return "".join(out)


def quote(text: str, inside: str | None = None) -> str:
    """`text` written for bash so that it is taken literally, continuing
    quoting `inside` (', ", $' or None) and leaving it open as it was (the
    shell's completion closes it)."""
    out = []
    for run in re.split(f"({_CONTROL.pattern}+)", text):
        if not run:
            continue
        if _CONTROL.match(run):
            ansi = f"$'{_escapes(run)}'"
            out.append({None: ansi, "'": f"'{ansi}'", '"': f'"{ansi}"', "$'": _escapes(run)}[inside])
        elif inside is None:
            out.append("".join(c if _PLAIN.match(c) or (ord(c) > 127 and c.isprintable())
                               else "\\" + c for c in run))
        elif inside == "'":
            out.append(run.replace("'", "'\\''"))
        elif inside == '"':
            out.append("".join("\"'!'\"" if c == "!" else "\\" + c if c in _DOUBLE_SPECIAL else c
                               for c in run))
        else:
            out.append(_escapes(run))
    return "".join(out)
