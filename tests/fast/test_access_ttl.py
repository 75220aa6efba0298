"""Grant lifetimes: '15m', '2h', '90s' and friends."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpd.access.ttl import MAX_TTL, check_ttl, format_ttl, parse_ttl
from vpd.core.errors import UsageError


@pytest.mark.parametrize("text, seconds", [
    ("15m", 900), ("2h", 7200), ("90s", 90), ("1h30m", 5400), ("900", 900), (" 15M ", 900), ("1d", 86400),
    ("1m1s", 61),
])
def test_parse_ttl(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5m", "0s", "0", "15 m", "1.5h", "m", "15x", "2d", "1h30",
                                  "99999999999999999999"])
def test_bad_ttl_is_a_usage_error(text):
    with pytest.raises(UsageError):
        parse_ttl(text)


@pytest.mark.parametrize("value", [0, -1, MAX_TTL + 1, 1.5, True, "900"])
def test_check_ttl(value):
    with pytest.raises(UsageError):
        check_ttl(value)


@given(st.integers(min_value=1, max_value=MAX_TTL))
def test_format_ttl_round_trips(seconds):
    assert parse_ttl(format_ttl(seconds)) == seconds


def test_format_ttl():
    assert [format_ttl(s) for s in (90, 900, 5400, 86400)] == ["1m30s", "15m", "1h30m", "1d"]
