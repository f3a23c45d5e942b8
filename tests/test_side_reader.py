"""Reading beside the connection that writes (db.side_reader): SQLite in WAL
mode reads on a connection of its own, one query ahead; PostgreSQL has none
(its own connection reads)."""

from __future__ import annotations

import sqlite3

from nitejarctl.models import Agent

NOT_UTF8 = b"caf\xe9"  # Latin-1


def test_rows_come_in_order_one_query_ahead_and_text_that_is_not_utf8_is_escaped(db, backend):
    noted = []
    db.notify = noted.append
    reader = db.side_reader()
    if backend == "postgresql":
        assert reader is None
        return
    for i in range(5000):
        Agent.insert(id=f"a{i:05d}", name=f"agent {i}", config="{}").execute()
    conn = sqlite3.connect(db.file_path())
    conn.execute("UPDATE agents SET name = CAST(? AS TEXT) WHERE id = 'a04500'", (NOT_UTF8,))
    conn.commit()
    conn.close()
    try:
        query = Agent.select(Agent.id, Agent.name).order_by(Agent.id)
        first, second = reader.read(query), reader.read(query.where(Agent.id < "a00010"))
        # While the first is taken, the change's own connection writes (the reader is no writer).
        Agent.update(config='{"x": 1}').where(Agent.id == "a00001").execute()
        rows = [row for chunk in first for row in chunk]
        assert [r[0] for r in rows] == [f"a{i:05d}" for i in range(5000)]
        assert rows[4500][1] == "caf\\xe9" and rows[4499][1] == "agent 4499"
        assert noted == ["note: some text in this database is not valid UTF-8; its bytes are shown as "
                         "\\x escapes"]
        assert [r[0] for chunk in second for r in chunk] == [f"a{i:05d}" for i in range(10)]
        third = reader.read(query)
        next(iter(third))  # given up half-way: the reader stops reading it
        third.close()
        assert [r[0] for chunk in reader.read(query.limit(2)) for r in chunk] == ["a00000", "a00001"]
    finally:
        reader.close()
