"""Typed errors; the root command translates each into its exit code."""

EXIT_OK = 0
EXIT_OPERATIONAL = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_PARTIAL = 4
EXIT_INTERRUPTED = 130


class NitejarError(Exception):
    """An error a user can act on; its message is shown as one line."""

    exit_code = EXIT_OPERATIONAL

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
