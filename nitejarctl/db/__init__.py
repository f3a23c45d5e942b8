"""The database: where it is (urls), opening it (connect), and every
difference between SQLite and PostgreSQL (dialects), including how bulk
changes are cut into batches (batches, checkpoints, changed_rows).

Nothing outside this package tests which backend it is talking to: it asks
the open database (a `dialects.Database`) for what it needs. This module
imports neither Peewee nor psycopg2, so that `--help` and shell completion
stay fast.
"""

from __future__ import annotations

import time

from nitejarctl.db.urls import DEFAULT_PATH, Target, mask_secrets, mask_url, parse_url, resolve_url

DEFAULT_BUSY_TIMEOUT = 5.0

__all__ = ["DEFAULT_BUSY_TIMEOUT", "DEFAULT_PATH", "Target", "mask_secrets", "mask_url", "now",
           "open_database", "parse_url", "resolve_url"]


def now() -> int:
    """The current time as integer Unix seconds (the unit of every time column)."""
    return int(time.time())


def open_database(target: Target, *, create: bool = False, readonly: bool = False,
                  busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
    """Open and check a connection, and bind the models to it (see connect)."""
    from nitejarctl.db.connect import open_database as open_

    return open_(target, create=create, readonly=readonly, busy_timeout=busy_timeout)
