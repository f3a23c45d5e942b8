"""The output layer: every format, exact; values never interpreted by Rich."""

import io

import pytest

from nitejarctl.output import Column, default_format, emit, emit_one, format_time

ROWS = [
    {"id": "s1", "name": "[bold]x[/]", "n": 3, "at": 1_790_000_000, "note": None},
    {"id": "s2", "name": 'tab\there "q", :smile:', "n": 4, "at": 1_790_000_060, "note": "a\nb"},
]
COLS = ["id", "name", Column("n", "int"), Column("at", "time"), "note"]


def render(fmt, rows=ROWS, **kw):
    out = io.StringIO()
    emit(iter(rows), COLS, fmt, out=out, **kw)
    return out.getvalue()


def test_json():
    assert render("json") == (
        '[\n{"id":"s1","name":"[bold]x[/]","n":3,"at":1790000000,"note":null},\n'
        '{"id":"s2","name":"tab\\there \\"q\\", :smile:","n":4,"at":1790000060,"note":"a\\nb"}\n]\n')
    assert render("json", rows=[]) == "[]\n"


def test_jsonl():
    lines = render("jsonl").splitlines()
    assert lines[0] == '{"id":"s1","name":"[bold]x[/]","n":3,"at":1790000000,"note":null}'
    assert len(lines) == 2


def test_csv_and_tsv():
    assert render("csv") == ('id,name,n,at,note\ns1,[bold]x[/],3,1790000000,\n'
                             's2,"tab\there ""q"", :smile:",4,1790000060,"a\nb"\n')
    assert render("tsv") == ("id\tname\tn\tat\tnote\ns1\t[bold]x[/]\t3\t1790000000\t\n"
                             's2\ttab\\there "q", :smile:\t4\t1790000060\ta\\nb\n')


def test_ids():
    assert render("ids") == "s1\ns2\n"


def test_table_shows_values_literally():
    text = render("table", color=False)
    assert "[bold]x[/]" in text
    assert ":smile:" in text and "😄" not in text
    assert "ago)" in text


def test_table_empty_prints_nothing():
    assert render("table", rows=[], color=False) == ""


def test_emit_one_json_with_sections():
    out = io.StringIO()
    emit_one({"id": "a", "config": {"k": [1]}}, "json", out=out,
             sections={"jobs": ([{"id": "j", "status": "DONE", "x": 1}], ["id", "status"])})
    assert out.getvalue() == ('{\n  "id": "a",\n  "config": {\n    "k": [\n      1\n    ]\n  },\n'
                              '  "jobs": [\n    {\n      "id": "j",\n      "status": "DONE"\n    }\n  ]\n}\n')


def test_emit_one_table_is_literal():
    out = io.StringIO()
    emit_one({"id": "a", "content": "[red]nope[/red] :smile:"}, "table", out=out, color=False)
    assert "[red]nope[/red] :smile:" in out.getvalue()


def test_blob_is_base64_in_json():
    out = io.StringIO()
    emit([{"id": "m", "embedding": b"\x00\x01"}], ["id", "embedding"], "json", out=out)
    assert '"embedding":"AAE="' in out.getvalue()


def test_default_format_follows_the_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert default_format(Tty()) == "table"
    assert default_format(io.StringIO()) == "tsv"


def test_format_time():
    assert format_time(None) == ""
    assert format_time(1000, now=1000 + 300).endswith("(5m ago)")
    assert format_time(1000, now=1000 - 7200).endswith("(in 2h)")


def test_table_drops_times_then_ids_when_too_narrow(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rows = [{"id": "8c7e5b1a-0000-4000-8000-000000000001", "agent_id": "0b1f-agent-uuid-0000-000000000000",
             "strength": 0.5, "created_at": 1_790_000_000, "content": "a fact worth keeping"}]
    cols = ["id", "agent_id", Column("strength", "float"), Column("created_at", "time"), "content"]
    out = io.StringIO()
    notices = []
    emit(iter(rows), cols, "table", out=out, color=False, notice=notices.append)
    header = out.getvalue().splitlines()[1].split()
    assert header == ["id", "strength", "content"]
    assert notices == ["(not shown at this width: agent_id, created_at; -o wide shows every column)\n"]
    assert "8c7e5b1a-0000-4000-8000-000000000001" in out.getvalue()


# ------------------------------------------------- tuple rows (spooled changes)

FIELDS = ("id", "name", "n", "at", "note")


def as_tuples(rows=ROWS):
    return [tuple(row[f] for f in FIELDS) for row in rows]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "tsv", "ids", "table"])
def test_tuple_rows_print_as_the_same_dicts(fmt):
    out = io.StringIO()
    assert emit(iter(as_tuples()), COLS, fmt, out=out, fields=FIELDS, color=False) == 2
    assert out.getvalue() == render(fmt, color=False)


def test_tuple_rows_in_another_order_or_missing_a_field():
    out = io.StringIO()
    rows = [("s1", 3, "x"), ("s2", None, "y")]
    emit(iter(rows), ["id", Column("n", "int"), "gone", "name"], "tsv", out=out, fields=("id", "n", "name"))
    assert out.getvalue() == "id\tn\tgone\tname\ns1\t3\t\tx\ns2\t\t\ty\n"
    out = io.StringIO()
    emit(iter(rows), ["id"], "ids", out=out, id_field="name", fields=("id", "n", "name"))
    assert out.getvalue() == "x\ny\n"


def test_tsv_columns_of_every_kind_in_one_chunk():
    rows = [{"s": "plain", "m": 1, "f": 0.25, "b": True, "j": {"k": [1]}, "e": "a\\b\tc\r\nd"},
            {"s": "again", "m": None, "f": 1e-7, "b": False, "j": None, "e": None},
            {"s": "x", "m": 2.5, "f": 3, "b": None, "j": [1, "two"], "e": b"\x00\x01"}]
    out = io.StringIO()
    emit(iter(rows), list(rows[0]), "tsv", out=out)
    assert out.getvalue() == ("s\tm\tf\tb\tj\te\n"
                              "plain\t1\t0.25\t1\t{\"k\":[1]}\ta\\\\b\\tc\\r\\nd\n"
                              "again\t\t1e-07\t0\t\t\n"
                              "x\t2.5\t3\t\t[1,\"two\"]\tAAE=\n")


def test_csv_of_values_the_csv_module_does_not_write_itself():
    out = io.StringIO()
    emit(iter([("a", True, {"k": 1}, b"\x01"), ("b", None, None, None)]), ["id", "b", "j", "blob"], "csv",
         out=out, fields=("id", "b", "j", "blob"))
    assert out.getvalue() == 'id,b,j,blob\na,1,"{""k"":1}",AQ==\nb,,,\n'


def test_many_rows_are_written_in_chunks():
    rows = [(f"id{i}", i) for i in range(5001)]
    out = io.StringIO()
    assert emit(iter(rows), ["id", Column("n", "int")], "json", out=out, fields=("id", "n")) == 5001
    text = out.getvalue()
    assert text.startswith('[\n{"id":"id0","n":0},\n') and text.endswith('{"id":"id5000","n":5000}\n]\n')
    assert text.count("\n") == 5003


# -------------------------------------------------------------------- progress


def test_progress_bar_waits_for_its_delay_and_asks_the_total_only_then(capsys):
    from nitejarctl.output import ProgressBar

    asked = []
    with ProgressBar("deleting", lambda: asked.append(1) or 10, delay=60) as bar:
        bar.update(3)
        assert not bar.shown and bar.completed == 3 and asked == []
        assert bar.say("a line") is False
    with ProgressBar("deleting", lambda: asked.append(1) or 10, delay=0, color=False) as bar:
        bar.update(4)
        assert bar.shown and asked == [1]
        bar.advance(2)
        assert bar.completed == 6
        assert bar.say("[bold] literally") is True
    assert not bar.shown
    assert "[bold] literally" in capsys.readouterr().err


def test_progress_bar_disabled_never_shows():
    from nitejarctl.output import ProgressBar

    with ProgressBar("deleting", 5, enabled=False, delay=0) as bar:
        bar.update(5)
        assert not bar.shown and bar.say("x") is False


@pytest.mark.parametrize("command", [
    ("sessions", "close", "--stale", "1h"),
    ("sessions", "purge", "--older-than", "1d", "--yes"),
    ("memories", "decay"),
    ("memories", "prune", "--below", "0.5", "--yes"),
    ("idempotency", "prune", "--older-than", "30d", "--yes"),
])
def test_bulk_changes_show_a_progress_bar_on_a_terminal_and_keep_stdout_clean(run, db, command):
    from datetime import UTC, datetime

    from freezegun import freeze_time

    from nitejarctl.cli.context import Settings
    from nitejarctl.db.batches import Batching
    from tests import factories as f

    terminal = Settings(stderr_terminal=True, progress_delay=0.0, interactive=True,
                        batching=Batching(first=2, smallest=2, largest=2))
    now = 1_790_000_000
    def at(ts):
        return freeze_time(datetime.fromtimestamp(ts, UTC))

    with at(now - 30 * 86400):
        agent = f.agent("ops")
        for i in range(5):
            f.sprite_session(agent["id"], status="active", id=f"s{i}", last_active_at=now - 7200)
            f.sprite_session(agent["id"], status="closed", id=f"c{i}", last_active_at=now - 2 * 86400)
            f.memory(agent["id"], f"m{i}", strength=0.3, id=f"m{i}")
            f.idempotency_key(f"k{i}", created_at=now - 40 * 86400)
    with at(now):
        result = run(*command, "-o", "ids", settings=terminal)
    assert result.exit_code == 0, result.stderr
    label = {"close": "closing", "purge": "deleting", "decay": "decaying"}.get(command[1], "pruning")
    assert f"{label} " in result.stderr and "\x1b[" in result.stderr  # drawn on the terminal
    assert "\x1b" not in result.stdout and label not in result.stdout
    assert len(result.stdout.split()) == 5
    assert set(result.stdout.split()) <= {*(f"{p}{i}" for p in "scmk" for i in range(5))}
    assert result.stderr.rstrip("\n").endswith(" 5 memories" if command[0] == "memories" else
                                               " 5 idempotency keys" if command[0] == "idempotency" else
                                               " 5 sessions")


def test_table_in_priority_order_drops_from_the_right_but_never_the_kept_column(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    rows = [{"name": "alpha", "status": "idle", "last": 1_790_000_000, "created": 1_790_000_000,
             "id": "8c7e5b1a-0000-4000-8000-000000000001"}]
    cols = ["name", "status", Column("last", "time"), Column("created", "time"), "id"]

    def header(**kwargs):
        out, notices = io.StringIO(), []
        emit(iter(rows), cols, "table", out=out, color=False, notice=notices.append, **kwargs)
        return out.getvalue().splitlines()[1].split(), notices

    assert header(fit="order") == (["name", "status", "last"], [
        "(not shown at this width: created, id; -o wide shows every column)\n"])
    assert header(fit="order", keep="created")[0] == ["name", "status", "created"]
    # Nothing dropped, nothing cut: the table is as wide as it needs.
    shown, notices = header(fit="none")
    assert shown == ["name", "status", "last", "created", "id"] and notices == []
    out = io.StringIO()
    emit(iter(rows), cols, "table", out=out, color=False, fit="none")
    assert "8c7e5b1a-0000-4000-8000-000000000001" in out.getvalue()
