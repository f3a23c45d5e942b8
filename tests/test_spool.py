"""The spool of changed rows: kept in order, counted once committed, flat in memory."""

import io
import json

import pytest

from nitejarctl import spool as spool_module
from nitejarctl.models import IdempotencyKey
from nitejarctl.spool import Spool

COLUMNS = ("id", "n", "x", "note")


def test_rows_come_back_in_order_as_tuples_and_dicts():
    with Spool(COLUMNS) as spool:
        spool.add([("a", 1, 0.5, None), ("b", 2, 1e-7, "tab\there")])
        spool.add([])
        spool.add([("c", -3, 2.0, "[bold]😄")])
        assert spool.count == len(spool) == 3
        assert list(spool.rows()) == [("a", 1, 0.5, None), ("b", 2, 1e-7, "tab\there"),
                                      ("c", -3, 2.0, "[bold]😄")]
        assert list(spool)[0] == {"id": "a", "n": 1, "x": 0.5, "note": None}
        assert [r["id"] for r in spool.dicts()] == ["a", "b", "c"]
        # Reading does not consume: a second pass sees the same rows.
        assert len(list(spool.rows())) == 3


def test_large_spools_move_to_a_file(monkeypatch):
    monkeypatch.setattr(spool_module, "MEMORY_LIMIT", 1000)
    with Spool(("id", "text")) as spool:
        for batch in range(20):
            spool.add([(f"{batch}-{i}", "x" * 50) for i in range(100)])
        assert spool._file._rolled
        ids = [row[0] for row in spool.rows()]
    assert len(ids) == 2000 and ids[0] == "0-0" and ids[-1] == "19-99"


def test_rows_count_once_their_transaction_commits(db):
    with Spool(COLUMNS, db) as spool:
        with db.atomic():
            spool.add([("a", 1, 0.0, None)])
            spool.add([("b", 2, 0.0, None)])
            assert spool.count == 0
            assert list(spool.rows()) == []  # not committed yet
        assert spool.count == 2
        spool.add([("outside", 3, 0.0, None)])  # no transaction: committed at once
        assert spool.count == 3
        assert [r[0] for r in spool.rows()] == ["a", "b", "outside"]


def test_rows_of_a_rolled_back_transaction_are_dropped(db):
    with Spool(COLUMNS, db) as spool:
        with db.atomic():
            spool.add([("kept", 1, 0.0, None)])
        with pytest.raises(RuntimeError):
            with db.atomic():
                IdempotencyKey.insert(key="k", created_at=1).execute()
                spool.add([("lost", 2, 0.0, None)])
                raise RuntimeError("batch failed")
        assert spool.count == 1
        assert [r[0] for r in spool.rows()] == ["kept"]
        # The next transaction's rows follow the committed ones.
        with db.atomic():
            spool.add([("next", 3, 0.0, None)])
        assert [r[0] for r in spool.rows()] == ["kept", "next"]
        assert spool.count == 2
    assert IdempotencyKey.select().count() == 0


def test_with_a_writer_the_spool_holds_the_lines_and_prints_them():
    from nitejarctl.output import Column
    from nitejarctl.spool import for_format

    columns = ["id", Column("n", "int"), "gone"]
    for fmt, expected in [
        ("tsv", "id\tn\tgone\na\t1\t\nb\t2\t\n"),
        ("json", '[\n{"id":"a","n":1,"gone":null},\n{"id":"b","n":2,"gone":null}\n]\n'),
        ("ids", "a\nb\n"),
    ]:
        with for_format(("id", "x", "n"), columns, fmt) as spool:
            spool.add([("a", "not printed", 1)])
            spool.add([("b", "not printed", 2)])
            out = io.StringIO()
            assert spool.write_to(out) == 2
            assert out.getvalue() == expected
            with pytest.raises(TypeError):
                next(spool.rows())
    with for_format(("id",), ["id"], "json") as spool:
        out = io.StringIO()
        assert spool.write_to(out) == 0 and out.getvalue() == "[]\n"


def test_printing_goes_through_the_text_layer_of_a_stream_in_another_encoding(monkeypatch):
    from nitejarctl.spool import for_format

    monkeypatch.setattr(spool_module, "MEMORY_LIMIT", 100)
    binary = io.BytesIO()
    out = io.TextIOWrapper(binary, encoding="utf-16", newline="")
    with for_format(("id",), ["id"], "ids") as spool:
        spool.add([("é😄" * 30,) for _ in range(50)])  # multi-byte characters across copy chunks
        spool.write_to(out)
    out.flush()
    assert binary.getvalue().decode("utf-16") == ("é😄" * 30 + "\n") * 50


def test_for_a_table_only_the_first_rows_are_kept():
    from nitejarctl.spool import for_format

    with for_format(("id",), ["id"], "table", keep=3) as spool:
        spool.add([("a",), ("b",)])
        spool.add([("c",), ("d",)])
        spool.add([("e",)])
        assert spool.count == 5
        assert list(spool.rows()) == [("a",), ("b",), ("c",)]


def test_lines_formatted_in_a_transaction_are_kept_only_if_it_commits(db):
    from nitejarctl.output import LineWriter

    with Spool(("id", "n"), db, writer=LineWriter(["id", "n"], "json")) as spool:
        with pytest.raises(RuntimeError):
            with db.atomic():
                spool.add([("lost", 0)])  # the first rows added, but never committed
                raise RuntimeError("batch failed")
        with db.atomic():
            spool.add([("a", 1), ("b", 2)])
            spool.add([("c", 3)])
            assert spool.count == 0  # nothing counts before the commit
        assert spool.count == 3
        with pytest.raises(RuntimeError):
            with db.atomic():
                spool.add([("lost too", 4)])
                raise RuntimeError("batch failed")
        with db.atomic():
            spool.add([("d", 5)])
        out = io.StringIO()
        assert spool.write_to(out) == 4
    assert json.loads(out.getvalue()) == [{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "c", "n": 3},
                                          {"id": "d", "n": 5}]
