from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpd.core.errors import EXIT_USAGE, UsageError, VpdError
from vpd.core.names import check_name, parse_rate, parse_size
from vpd.hostprep import firewalld, fqdn
from vpd.storage import pools, volumes


@pytest.mark.parametrize("name", ["mvp4", "hosta", "CONT_VOL_COMP", "a.b-c_d", "9lives", "x" * 64])
def test_good_names_pass(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "has space", "quote'", 'dq"', "../etc", "a/b", "-lead", ".hidden",
                                  "x" * 65, "a..b", "semi;colon", "new\nline", "$(rm)"])
def test_bad_names_are_usage_errors(name):
    with pytest.raises(UsageError) as err:
        check_name(name)
    assert err.value.exit_code == EXIT_USAGE


@given(st.text(min_size=1, max_size=100))
def test_any_accepted_name_is_path_and_shell_safe(name):
    try:
        check_name(name)
    except UsageError:
        return
    assert "/" not in name and ".." not in name and not name.startswith(("-", "."))
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


@pytest.mark.parametrize("text,expected", [("10G", 10 * 1024**3), ("512M", 512 * 1024**2), ("1GiB", 1024**3),
                                           ("4096", 4096), ("1.5K", 1536), (" 2 t ", 2 * 1024**4)])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "-1G", "0", "ten", "10X", "1e9", "2P0"])
def test_bad_sizes(text):
    with pytest.raises(UsageError):
        parse_size(text)


def test_rates():
    assert parse_rate("1gbit") == 10**9
    assert parse_rate("100mbit") == 10**8
    assert parse_rate("none") is None
    with pytest.raises(UsageError):
        parse_rate("fast")


@pytest.mark.parametrize("check", [
    check_name,
    volumes.check_existing_name,
    lambda v: pools.parse_server(v + ":3260", "server"),
    pools.check_chap_user,
    lambda v: fqdn.check_fqdn(v + ".vpd.lab"),
    firewalld.check_zone,
])
def test_a_trailing_newline_is_refused(check):
    # re's `$` also matches before a final "\n": validators use fullmatch, so "vm1\n" is not "vm1".
    check("vm1")
    with pytest.raises(VpdError):
        check("vm1\n")
