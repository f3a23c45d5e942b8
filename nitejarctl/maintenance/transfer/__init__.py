"""`nitejarctl transfer`: a SQLite database into PostgreSQL, exactly.

* source.py — the SQLite side: one read snapshot for the whole transfer, its schema;
* ddl.py — a nitejar-created schema translated to PostgreSQL (nitejarctl's own comes
  from its migrations);
* target.py — the PostgreSQL side: catalog, column checks, the keys and indexes set
  aside during the copy, the progress table that makes a transfer resumable;
* rows.py — rows as COPY text, their checksums, bad values;
* copying.py — one table, batch by batch;
* finishing.py — keys, indexes, ANALYZE, foreign keys, verification;
* engine.py — the whole transfer.

It talks to SQLite through the standard library and to PostgreSQL through
psycopg2 directly: COPY, catalog queries and per-batch transactions are what
it does, and Peewee adds nothing there.
"""
