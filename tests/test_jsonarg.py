"""JSON arguments: `--config JSON|@file`, dotted `--set` / `--unset`."""

import io

import pytest

from nitejarctl import jsonarg
from nitejarctl.errors import UsageProblem


def usage_error(fn, *args):
    with pytest.raises(UsageProblem) as info:
        fn(*args)
    assert info.value.exit_code == 2
    return info.value.message


def test_parse_object_inline():
    assert jsonarg.parse_object('{"a": {"b": [1, 2]}, "c": null}') == {"a": {"b": [1, 2]}, "c": None}


def test_parse_object_error_has_line_and_column():
    assert usage_error(jsonarg.parse_object, '{"mode": 1 "x"}', "--config") == (
        "invalid JSON in --config: Expecting ',' delimiter (line 1, column 12)")
    assert usage_error(jsonarg.parse_object, "", "--config") == (
        "invalid JSON in --config: Expecting value (line 1, column 1)")


def test_parse_object_from_file(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{\n  "model": "x",\n  "n": 2\n}\n', encoding="utf-8")
    assert jsonarg.parse_object(f"@{good}") == {"model": "x", "n": 2}
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "model": "x",\n  "n": 2,\n}\n', encoding="utf-8")
    assert usage_error(jsonarg.parse_object, f"@{bad}", "--config") == (
        f"invalid JSON in --config file {bad}: Expecting property name enclosed in double "
        "quotes (line 4, column 1)")


def test_parse_object_file_problems(tmp_path):
    missing = tmp_path / "missing.json"
    assert usage_error(jsonarg.parse_object, f"@{missing}", "--config") == (
        f"cannot read --config file {missing}: No such file or directory")
    assert usage_error(jsonarg.parse_object, "@", "--config") == (
        "--config @: a file name is missing after '@'")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"a": "\xe9"}')
    assert usage_error(jsonarg.parse_object, f"@{latin}", "--config") == (
        f"cannot read --config file {latin}: not UTF-8 (invalid continuation byte)")


def test_parse_object_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO('{"from": "stdin"}'))
    assert jsonarg.parse_object("@-") == {"from": "stdin"}


@pytest.mark.parametrize("text, kind", [
    ("[1, 2]", "an array"), ('"s"', "a string"), ("3", "a number"), ("true", "a boolean"),
    ("null", "null"),
])
def test_parse_object_requires_an_object(text, kind):
    assert usage_error(jsonarg.parse_object, text, "--config") == (
        f"--config must be a JSON object ({{…}}), not {kind}")


def test_nan_is_not_json():
    assert usage_error(jsonarg.parse_object, '{"a": NaN}', "--config") == (
        "invalid JSON in --config: NaN is not valid JSON")
    assert jsonarg.parse_value("NaN") == "NaN"


@pytest.mark.parametrize("text, expected", [
    ("0.2", 0.2), ("3", 3), ("true", True), ("null", None), ('"quoted"', "quoted"),
    ("[1,2]", [1, 2]), ('{"a":1}', {"a": 1}), ("plain words", "plain words"), ("", ""),
    ("[bold]", "[bold]"), ("{not json", "{not json"),
])
def test_parse_value(text, expected):
    assert jsonarg.parse_value(text) == expected


def test_parse_assignment():
    assert jsonarg.parse_assignment("a.b.c=1") == (["a", "b", "c"], 1)
    assert jsonarg.parse_assignment("url=http://x/?a=b") == (["url"], "http://x/?a=b")
    assert usage_error(jsonarg.parse_assignment, "=1") == (
        "--set expects dotted.key=value, got '=1' (the key is empty)")
    assert usage_error(jsonarg.parse_assignment, "novalue") == (
        "--set expects dotted.key=value, got 'novalue'")
    assert usage_error(jsonarg.parse_assignment, "a..b=1") == (
        "--set needs a dotted key such as memorySettings.decayRate, got 'a..b'")
    assert usage_error(jsonarg.parse_path, "", "--unset") == (
        "--unset needs a dotted key such as memorySettings.decayRate, got ''")
    assert usage_error(jsonarg.parse_path, "a.", "--unset") == (
        "--unset needs a dotted key such as memorySettings.decayRate, got 'a.'")


def test_set_and_unset_nested():
    obj = {"keep": 1, "a": {"b": {"c": 1, "d": 2}}}
    missing = jsonarg.edit(obj, sets=["a.b.c=5", "x.y.z=true", "a.e=[1]"],
                           unsets=["a.b.d", "nope.deeper", "keep.not_an_object"])
    assert obj == {"keep": 1, "a": {"b": {"c": 5}, "e": [1]}, "x": {"y": {"z": True}}}
    assert missing == ["nope.deeper", "keep.not_an_object"]


def test_set_replaces_null_and_refuses_non_objects():
    obj = {"a": None, "n": 3}
    jsonarg.set_path(obj, ["a", "b"], 1)
    assert obj == {"a": {"b": 1}, "n": 3}
    assert usage_error(jsonarg.set_path, obj, ["n", "m"], 1) == (
        "cannot set n.m: n is a number, not an object")
    assert usage_error(jsonarg.set_path, {"a": {"l": []}}, ["a", "l", "x"], 1) == (
        "cannot set a.l.x: a.l is an array, not an object")


def test_edit_validates_everything_before_changing():
    obj = {"a": 1}
    usage_error(jsonarg.edit, obj, ["a=2", "=3"], [])
    assert obj == {"a": 1}


def test_dumps_is_compact_and_keeps_unicode():
    assert jsonarg.dumps({"a": [1, "é 😀"]}) == '{"a":[1,"é 😀"]}'


def test_parse_stored():
    assert jsonarg.parse_stored('{"a":1}') == {"a": 1}
    assert jsonarg.parse_stored("not json [bold]") == "not json [bold]"
    assert jsonarg.parse_stored(None) is None
