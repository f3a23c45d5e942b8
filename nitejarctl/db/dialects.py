"""SQLite and PostgreSQL as Peewee databases: every difference between the
two backends lives in nitejarctl/db/ — db.sqlite.Sqlite and
db.postgres.Postgres, on their shared base db.base.Database.

They subclass Peewee's own databases, so that a repository builds its queries
with Peewee and asks the database it was given for whatever differs: the key
bulk changes are batched by, a planner hint, the temporary schema, how a
case-insensitive substring is matched, how rows stream, how changed rows are
read back, the DDL types. A database also keeps what it learnt of the live
schema (`columns`, `tables`), and reports every statement to `trace` when one
is set (-v).
"""

from __future__ import annotations

from nitejarctl.db.base import Database
from nitejarctl.db.postgres import Postgres
from nitejarctl.db.sqlite import Sqlite

BACKENDS = {"sqlite": Sqlite, "postgresql": Postgres}

__all__ = ["BACKENDS", "Database", "Postgres", "Sqlite"]
