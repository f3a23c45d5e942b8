"""An operator's own SQL, read-only: one SELECT, WITH or EXPLAIN statement,
its `:name` parameters bound, run where the database itself refuses every
write (SQLite opened with mode=ro and `PRAGMA query_only`; PostgreSQL in a
`SET TRANSACTION READ ONLY` transaction) and streamed.

The statement is read token by token — string literals, quoted names,
comments, dollar quotes and `::` casts are not parameters — only to find its
first keyword, its parameters and whether a second statement follows; what it
does is the database's to refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nitejarctl.errors import OperationalProblem, UsageProblem

KEYWORDS = ("select", "with", "explain")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[A-Za-z]+")
_TOKEN = re.compile(r"\w+")


@dataclass
class Statement:
    keyword: str  # select | with | explain (lower case)
    pieces: list[str]  # the SQL text around the parameters: len(names) + 1 pieces
    names: list[str]  # the parameters, in order of appearance (repeats included)


def refusal(what: str) -> OperationalProblem:
    return OperationalProblem(f"nitejarctl query runs one SELECT, WITH or EXPLAIN statement and "
                              f"nothing that writes: {what} (nothing changed)")


def parse(sql: str) -> Statement:
    """The statement's keyword, parameters and text; anything but one SELECT,
    WITH or EXPLAIN statement is refused (exit 1, as a write is)."""
    pieces, names = [], []
    start = keyword_at = None  # where the statement's text and its first word begin
    i, n, piece = 0, len(sql), 0
    end = n
    while i < n:
        c = sql[i]
        if c in " \t\r\n\f\v":
            i += 1
            continue
        if c == "(":
            if start is None:
                start = piece = i
            i += 1
            continue
        if sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            if close < 0:
                raise UsageProblem("the query has an unterminated /* comment")
            i = close + 2
            continue
        if start is None:
            start = piece = i
        if keyword_at is None:
            keyword_at = i
        if c == ";":
            rest = parse_tail(sql, i + 1)
            if rest:
                raise refusal("a second statement follows the first ';'")
            end = i
            break
        if c in "'\"`":
            backslash = c == "'" and i > 0 and sql[i - 1] in "eE" and not _NAME.match(sql[i - 2:i - 1] or " ")
            i = _quoted(sql, i, c, backslash)
            continue
        if c == "$":
            tag = _DOLLAR.match(sql, i)
            if tag:
                close = sql.find(tag.group(0), tag.end())
                if close < 0:
                    raise UsageProblem(f"the query has an unterminated {tag.group(0)} quote")
                i = close + len(tag.group(0))
                continue
        if c == ":":
            if sql.startswith("::", i):
                i += 2
                continue
            name = _NAME.match(sql, i + 1)
            if name and (i == 0 or not _NAME.match(sql[i - 1])):
                pieces.append(sql[piece:i])
                names.append(name.group(0))
                i = piece = name.end()
                continue
        if c.isalnum() or c == "_":
            i = _TOKEN.match(sql, i).end()  # a name or number: no parameter inside
            continue
        i += 1
    if keyword_at is None:
        raise UsageProblem("the query is empty")
    pieces.append(sql[piece:end])
    word = _WORD.match(sql, keyword_at)
    keyword = word.group(0).lower() if word else sql[keyword_at:keyword_at + 10]
    if keyword not in KEYWORDS:
        raise refusal(f"it is {keyword.upper()!r}" if word else "it does not begin with a keyword")
    return Statement(keyword, pieces, names)


def parse_tail(sql: str, i: int) -> str:
    """What follows a ';' other than blanks and comments."""
    return re.sub(r"--[^\n]*|/\*.*?\*/|\s+", "", sql[i:], flags=re.S)


def _quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """The index after the quoted text that starts at i (a doubled quote, or
    a backslash in E'…', escapes one)."""
    j = i + 1
    n = len(sql)
    while j < n:
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    raise UsageProblem("the query has an unterminated quote " + quote)


def bind(statement: Statement, values: dict[str, str]) -> tuple[list[str], list[str]]:
    """The statement's pieces and the value of each parameter in order; a
    parameter without a value, or a value for none, is a usage error."""
    missing = sorted(set(statement.names) - set(values))
    if missing:
        raise UsageProblem("no value for " + ", ".join(f":{m}" for m in missing)
                           + f" (give -p {missing[0]} VALUE)")
    unused = sorted(set(values) - set(statement.names))
    if unused:
        raise UsageProblem("the query has no parameter " + ", ".join(f":{u}" for u in unused))
    return statement.pieces, [values[name] for name in statement.names]


def rows(db, statement: Statement, values: dict[str, str]):
    """The column names, then each row (tuples), read-only and streamed."""
    pieces, params = bind(statement, values)
    try:
        stream = db.read_only_rows(pieces, params, declare=statement.keyword != "explain")
        yield from stream
    except Exception as exc:
        if wrote(exc):
            raise refusal("the database refused a write: " + " ".join(str(exc).split())) from None
        raise


def wrote(exc: BaseException) -> bool:
    """Did the database refuse the statement because it writes?"""
    text = str(exc)
    return ("readonly database" in text or "read-only transaction" in text
            or getattr(exc, "pgcode", None) == "25006")
