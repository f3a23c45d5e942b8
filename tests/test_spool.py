"""The spool of changed rows: kept in order, counted, flat in memory, printed
once the change is over."""

import io
import json

from nitejarctl.output import LineWriter
from nitejarctl.output.spool import Spool

COLUMNS = ("id", "n", "x", "note")


def test_rows_come_back_in_order_as_tuples_and_dicts():
    with Spool(COLUMNS) as spool:
        spool.add([("a", 1, 0.5, None), ("b", 2, 1e-7, "tab\there")])
        spool.add([])
        spool.add([("c", -3, 2.0, "[bold]😄")])
        assert spool.count == len(spool) == 3
        assert list(spool.rows()) == [("a", 1, 0.5, None), ("b", 2, 1e-7, "tab\there"),
                                      ("c", -3, 2.0, "[bold]😄")]
        assert next(spool.dicts()) == {"id": "a", "n": 1, "x": 0.5, "note": None}
        assert [r["id"] for r in spool.dicts()] == ["a", "b", "c"]
        # Reading does not consume: a second pass sees the same rows.
        assert len(list(spool.rows())) == 3


def test_large_spools_move_to_a_file():
    with Spool(("id", "text"), memory_limit=1000) as spool:
        for batch in range(20):
            spool.add([(f"{batch}-{i}", "x" * 50) for i in range(100)])
        assert spool.on_disk
        ids = [row[0] for row in spool.rows()]
    assert len(ids) == 2000 and ids[0] == "0-0" and ids[-1] == "19-99"


def test_keep_holds_the_first_rows_and_counts_them_all():
    with Spool(("id",), keep=3) as spool:
        spool.add([("a",), ("b",)])
        spool.add([("c",), ("d",)])
        spool.add([("e",)])
        assert spool.count == 5
        assert list(spool.rows()) == [("a",), ("b",), ("c",)]


def test_formatted_lines_are_printed_with_the_formats_header_and_footer():
    fields = ("id", "n", "secret")
    for fmt, expected in (
        ("json", '[\n{"id":"a","n":1},\n{"id":"b","n":2}\n]\n'),
        ("jsonl", '{"id":"a","n":1}\n{"id":"b","n":2}\n'),
        ("tsv", "id\tn\na\t1\nb\t2\n"),
        ("csv", "id,n\na,1\nb,2\n"),
        ("ids", "a\nb\n"),
    ):
        with Spool(fields, writer=LineWriter(["id", "n"], fmt, fields=fields)) as spool:
            spool.add([("a", 1, "x")])
            spool.add([("b", 2, "y")])
            out = io.StringIO()
            assert spool.write_to(out) == 2
            assert out.getvalue() == expected, fmt


def test_an_empty_spool_prints_a_well_formed_document():
    with Spool(("id",), writer=LineWriter(["id"], "json", fields=("id",))) as spool:
        out = io.StringIO()
        assert spool.write_to(out) == 0
        assert json.loads(out.getvalue()) == []


def test_chunks_are_formatted_a_piece_at_a_time_in_order():
    fields = ("id",)
    with Spool(fields, writer=LineWriter(["id"], "jsonl", fields=fields)) as spool:
        spool.add([(f"r{i}",) for i in range(12_345)])
        out = io.StringIO()
        spool.write_to(out)
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == [f"r{i}" for i in range(12_345)]
