"""Typed errors; the root command translates each into its exit code."""

EXIT_OK = 0
EXIT_OPERATIONAL = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_PARTIAL = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class NitejarError(Exception):
    """An error a user can act on; its message is shown as one line, after
    `prefix`."""

    exit_code = EXIT_OPERATIONAL
    prefix = "Error: "

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class OperationalProblem(NitejarError):
    """Database unreachable or locked, SQL failure, schema problem."""


class SchemaProblem(OperationalProblem):
    """The database lacks a table or column a command needs."""


class DatabaseMissing(OperationalProblem):
    """A SQLite file that does not exist (only migrate creates one)."""


class UsageProblem(NitejarError):
    """Bad option value, bad JSON, refused without --yes."""

    exit_code = EXIT_USAGE


class NotFound(NitejarError):
    """An id or name that does not exist."""

    exit_code = EXIT_NOT_FOUND


class PartialFailure(NitejarError):
    """A batch finished but some items failed (each already reported)."""

    exit_code = EXIT_PARTIAL


class CheckFailed(NitejarError):
    """A check (doctor, migrate status --check) found problems; already reported."""


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt: no `except
    Exception` swallows it)."""


class Declined(NitejarError):
    """The operator answered no: nothing was done (exit 1, not an error)."""

    prefix = ""


class Interrupted(NitejarError):
    """A signal stopped a bulk change between two batches; the message says
    what it changed (shown as it is, without "Error:")."""

    prefix = ""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


MAX_IDS_SHOWN = 10


def missing_ids(noun: str, nouns: str, ids) -> NotFound:
    """NotFound naming the ids of no `noun` (at most MAX_IDS_SHOWN of them)."""
    ids = list(ids)
    if len(ids) == 1:
        return NotFound(f"no {noun} with id {ids[0]!r}")
    shown = ", ".join(repr(i) for i in ids[:MAX_IDS_SHOWN])
    more = len(ids) - MAX_IDS_SHOWN
    return NotFound(f"no {nouns} with ids {shown}" + (f" and {more} more" if more > 0 else ""))
