"""`nitejarctl query SQL`: read-only, enforced by the database, on both backends."""

from __future__ import annotations

import csv
import io
import json

import pytest

from nitejarctl.db import read_only
from nitejarctl.errors import OperationalProblem, UsageProblem
from tests import factories as f
from tests.helpers.dbdump import dump
from tests.helpers.terminal import on_terminal

SECRET_CONFIG = {"botToken": "123:SECRET-abc", "chat": 5, "nested": {"password": "pw-SECRET"}}
REFUSED = ("Error: nitejarctl query runs one SELECT, WITH or EXPLAIN statement and nothing that "
           "writes: ")


@pytest.fixture
def data(db):
    a = f.agent("alpha", id="a-1")
    f.agent("beta [bold]", id="a-2")
    for i, strength in enumerate([0.05, 0.5, 0.9]):
        f.memory(a["id"], f"fact {i}", strength=strength, id=f"m-{i}")
    f.integration("telegram", "tg", config=SECRET_CONFIG, id="i-1")
    db.close()
    return a


# ----------------------------------------------------------------- formats


def test_every_format(run, data):
    sql = "SELECT id, name FROM agents ORDER BY id"
    assert run("query", sql, "-o", "json").stdout == '[\n{"id":"a-1","name":"alpha"},\n{"id":"a-2","name":"beta [bold]"}\n]\n'
    assert run("query", sql, "-o", "jsonl").stdout == '{"id":"a-1","name":"alpha"}\n{"id":"a-2","name":"beta [bold]"}\n'
    assert run("query", sql, "-o", "tsv").stdout == "id\tname\na-1\talpha\na-2\tbeta [bold]\n"
    assert list(csv.reader(io.StringIO(run("query", sql, "-o", "csv").stdout))) == [
        ["id", "name"], ["a-1", "alpha"], ["a-2", "beta [bold]"]]
    assert run("query", sql, "-o", "ids").stdout == "a-1\na-2\n"
    table = run("query", sql, "-o", "table", env={"COLUMNS": "80"})
    assert table.exit_code == 0
    assert "beta [bold]" in table.stdout and "alpha" in table.stdout


def test_with_explain_and_the_same_name_twice(run, data):
    counted = run("query", "WITH strong AS (SELECT * FROM agent_memories WHERE strength > 0.4) "
                           "SELECT count(*) AS n FROM strong", "-o", "json")
    assert json.loads(counted.stdout) == [{"n": 2}]
    explained = run("query", "EXPLAIN SELECT * FROM sprite_sessions WHERE status = 'active'", "-o", "tsv")
    assert explained.exit_code == 0 and len(explained.stdout.splitlines()) > 1
    twice = json.loads(run("query", "SELECT 1 AS x, 2 AS x", "-o", "json").stdout)
    assert twice == [{"x": 1, "x_2": 2}]
    assert run("query", "  -- why\n  SELECT 'it''s' AS q;  -- done\n", "-o", "tsv").stdout == "q\nit's\n"


def test_empty_result_and_sql_from_stdin(run, data):
    assert run("query", "SELECT id FROM agents WHERE 1 = 0", "-o", "json").stdout == "[]\n"
    table = run("query", "SELECT id FROM agents WHERE 1 = 0", "-o", "table")
    assert (table.exit_code, table.stderr) == (0, "no rows\n")
    piped = run("query", "-", "-o", "ids", input="SELECT id FROM agents ORDER BY id\n")
    assert piped.stdout == "a-1\na-2\n"


def test_limit_and_footer(run, data):
    sql = "SELECT id FROM agent_memories ORDER BY id"
    limited = run("query", sql, "--limit", "2", "-o", "ids")
    assert (limited.stdout, limited.stderr) == ("m-0\nm-1\n", "… 1 more rows not shown\n")
    assert run("query", sql, "-o", "ids").stdout == "m-0\nm-1\nm-2\n"  # machine formats: unlimited


# -------------------------------------------------------------- parameters


def test_parameters(run, data):
    result = run("query", "SELECT id FROM agent_memories WHERE strength < :s AND agent_id = :a ORDER BY id",
                 "-p", "s", "0.6", "-p", "a", "a-1", "-o", "ids")
    assert (result.exit_code, result.stdout) == (0, "m-0\nm-1\n")
    repeated = run("query", "SELECT :v AS a, :v AS b, ':v' AS literal, '%' AS pct", "-p", "v", "x%y", "-o", "json")
    assert json.loads(repeated.stdout) == [{"a": "x%y", "b": "x%y", "literal": ":v", "pct": "%"}]
    assert json.loads(run("query", "SELECT name FROM agents WHERE name LIKE 'al%'", "-o", "json").stdout) == [
        {"name": "alpha"}]
    hostile = "x'); DELETE FROM agents; --"
    assert json.loads(run("query", "SELECT count(*) AS n FROM agents WHERE name = :n", "-p", "n", hostile,
                          "-o", "json").stdout) == [{"n": 0}]


def test_a_postgresql_cast_is_no_parameter(run, data, backend):
    if backend != "postgresql":
        pytest.skip("'::' casts are PostgreSQL's")
    result = run("query", "SELECT :n::integer + 1 AS n, 'a'::text AS t, $q$:not$q$ AS d", "-p", "n", "41",
                 "-o", "json")
    assert json.loads(result.stdout) == [{"n": 42, "t": "a", "d": ":not"}]


def test_a_missing_or_unknown_parameter_is_a_usage_error(run, data):
    missing = run("query", "SELECT :a, :b", "-p", "a", "1")
    assert (missing.exit_code, missing.stderr) == (2, "Error: no value for :b (give -p b VALUE)\n")
    unused = run("query", "SELECT 1", "-p", "x", "1")
    assert (unused.exit_code, unused.stderr) == (2, "Error: the query has no parameter :x\n")
    assert run("query", "   ").exit_code == 2
    assert run("query", "SELECT 'open").exit_code == 2


# --------------------------------------------------------------- read-only


@pytest.mark.parametrize("sql", [
    "DELETE FROM agents",
    "UPDATE agent_memories SET strength = 0",
    "INSERT INTO agents (id, name) VALUES ('x', 'x')",
    "DROP TABLE agents",
    "PRAGMA query_only = OFF",
    "VACUUM",
    "SELECT 1; DELETE FROM agents",
    "SELECT 1; ; SELECT 2",
])
def test_a_statement_that_is_not_a_read_is_refused(run, data, db_url, sql):
    before = dump(db_url)
    result = run("query", sql)
    assert result.exit_code == 1
    assert result.stderr.startswith(REFUSED) and result.stderr.endswith(" (nothing changed)\n")
    assert result.stderr.count("\n") == 1
    assert dump(db_url) == before


def test_the_database_refuses_a_write_hidden_in_a_read(run, data, db_url, backend):
    before = dump(db_url)
    if backend == "sqlite":
        sneaky = ["WITH x AS (SELECT 1) DELETE FROM agents",
                  "WITH x AS (SELECT 1) UPDATE agents SET name = 'pwned'"]
    else:
        sneaky = ["WITH gone AS (DELETE FROM agents RETURNING id) SELECT count(*) FROM gone",
                  "EXPLAIN ANALYZE DELETE FROM agents",
                  "SELECT set_config('transaction_read_only', 'off', false), "
                  "(SELECT count(*) FROM agents)",
                  "SELECT nextval(pg_get_serial_sequence('nitejarctl_migrations', 'id'))"]
    for sql in sneaky:
        result = run("query", sql)
        assert result.exit_code == 1, (sql, result.stdout, result.stderr)
        assert result.stderr.startswith("Error: "), (sql, result.stderr)
        assert "Traceback" not in result.stderr
    assert dump(db_url) == before


def test_a_delete_by_the_database_says_it_was_a_write(run, data, db_url, backend):
    sql = ("WITH x AS (SELECT 1) DELETE FROM agents" if backend == "sqlite" else
           "EXPLAIN ANALYZE DELETE FROM agents")
    result = run("query", sql)
    assert result.exit_code == 1
    assert result.stderr.startswith(REFUSED + "the database refused a write: ")
    assert result.stderr.endswith(" (nothing changed)\n")


def test_rows_stream_before_a_late_error(run, db, backend):
    """The first rows are printed while the database still computes: an error
    at row 4,500 comes after the rows before it."""
    if backend == "sqlite":
        sql = ("WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 6000) "
               "SELECT v, json(CASE WHEN v < 4500 THEN '1' ELSE 'not json' END) AS j FROM s")
    else:
        sql = "SELECT v, 1 / (v - 4500) AS j FROM generate_series(1, 6000) AS v"
    result = run("query", sql, "-o", "jsonl")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: database error: ")
    assert len(result.stdout.splitlines()) >= 2000  # at least the first batch, streamed


# ----------------------------------------------------------------- secrets


def test_secrets_are_masked_as_listings_mask_them(run, data, db):
    f.agent("gamma", id="a-3", config={"apiKey": "sk-SECRET-1", "model": "m"})
    db.close()
    result = run("query", "SELECT id, config, 'tok-SECRET-2' AS access_token, 'c-1' AS credential_id, "
                          "'enc:SECRET-3' AS sealed, 12 AS prompt_tokens FROM integrations", "-o", "json")
    assert "SECRET" not in result.stdout
    row = json.loads(result.stdout)[0]
    assert json.loads(row["config"]) == {"botToken": "***", "chat": 5, "nested": {"password": "***"}}
    assert (row["access_token"], row["credential_id"], row["sealed"], row["prompt_tokens"]) == (
        "***", "c-1", "enc:***", 12)
    agents = run("query", "SELECT config FROM agents WHERE id = 'a-3'", "-o", "tsv")
    assert "SECRET" not in agents.stdout and '"model":"m"' in agents.stdout
    table = run("query", "SELECT config FROM integrations", "-o", "table", env={"COLUMNS": "200"})
    assert "SECRET" not in table.stdout
    shown = run("query", "SELECT config FROM integrations", "-o", "json", "--show-secrets")
    assert json.loads(json.loads(shown.stdout)[0]["config"]) == SECRET_CONFIG


def test_control_characters_are_escaped_on_a_terminal(db, db_url):
    f.agent("evil\x1b[2J\x07name", id="a-evil")
    db.close()
    screen = on_terminal("-d", db_url, "query", "SELECT name FROM agents", columns=100)
    assert screen.code == 0
    assert "\x1b[2J" not in screen.text and "\x07" not in screen.text
    assert "evil" in screen.text and "name" in screen.text


def test_query_does_not_change_a_sqlite_file(sqlite_url):
    import os

    before = os.stat(sqlite_url).st_mtime_ns
    from tests.conftest import Run

    assert Run(sqlite_url)("query", "SELECT count(*) FROM agents").exit_code == 0
    assert os.stat(sqlite_url).st_mtime_ns == before


# ----------------------------------------------------------------- parsing


def test_parse_finds_parameters_outside_literals():
    st = read_only.parse("""SELECT :a, ':b', ":c", a::text, `:d`, $$ :e $$, $t$:f$t$, -- :g
    /* :h */ x=:i, E'\\':j'""")
    assert st.keyword == "select" and st.names == ["a", "i"]
    assert read_only.parse("with x as (select 1) select * from x").keyword == "with"
    assert read_only.parse("(select 1)").pieces == ["(select 1)"]
    with pytest.raises(OperationalProblem):
        read_only.parse("select 1; select 2")
    with pytest.raises(OperationalProblem):
        read_only.parse("delete from x")
    with pytest.raises(UsageProblem):
        read_only.parse("/* never closed")


# ------------------------------------------------------- other databases


def test_a_database_nitejar_created(upstream_url):
    from tests.conftest import Run

    result = Run(upstream_url)("query", "SELECT count(*) AS n FROM kysely_migration", "-o", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["n"] > 0
    refused = Run(upstream_url)("query", "DELETE FROM kysely_migration")
    assert refused.exit_code == 1


def test_a_missing_file_is_not_created(tmp_path):
    from tests.conftest import Run

    missing = tmp_path / "none.db"
    result = Run(str(missing))("query", "SELECT 1")
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: database file {missing} does not exist")
    assert not missing.exists()


def test_a_reader_that_goes_away_ends_it_quietly(db_url):
    import subprocess

    from tests.helpers.terminal import nitejarctl

    sql = ("WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 200000) "
           "SELECT v FROM s")
    command = subprocess.run(f"{' '.join(nitejarctl())} -d '{db_url}' query '{sql}' -o jsonl | head -2",
                             shell=True, capture_output=True, text=True, timeout=120)
    assert command.stdout == '{"v":1}\n{"v":2}\n'
    assert command.stderr == ""
