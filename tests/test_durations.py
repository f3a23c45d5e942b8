import pytest

from nitejarctl.durations import format_age, format_duration, parse_duration


@pytest.mark.parametrize("text,seconds", [
    ("3600", 3600), ("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800), ("1w", 604800),
    ("1h30m", 5400), ("2d12h", 216000), ("1W", 604800), (" 45s ", 45),
])
def test_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "-5", "-1h", "", "h", "1x", "1.5h", "1h-", "abc", "1 h"])
def test_parse_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format():
    assert format_duration(5400) == "1h30m"
    assert format_duration(604800 + 61) == "1w1m1s"
    assert [format_age(s) for s in (5, 61, 3600, 90000, 1209600)] == ["5s", "1m", "1h", "1d", "2w"]
