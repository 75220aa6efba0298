"""FQDNs and /etc/hosts: validation, the lines vpd appends, and taking exactly them out again."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpd.core.errors import UsageError
from vpd.hostprep import fqdn

# A Debian host's /etc/hosts as the installer leaves it, plus a peer.
DEBIAN = """127.0.0.1\tlocalhost
127.0.1.1\thosta.vpd.lab\thosta

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
198.18.0.12 hostb.vpd.lab hostb  # the peer
"""


@pytest.mark.parametrize("name, ok", [
    ("hosta.vpd.lab", True), ("lq-d25.vpd.com", True), ("a.b", True),
    ("hosta", False), ("localhost.localdomain", False), ("-a.b", False), ("a-.b", False),
    ("a..b", False), ("a b.c", False), ("a.b;rm", False), ("x" * 64 + ".lab", False), ("", False),
])
def test_is_fqdn(name, ok):
    assert fqdn.is_fqdn(name) is ok


def test_check_fqdn_says_what_a_name_must_look_like():
    with pytest.raises(UsageError, match="not a fully qualified") as err:
        fqdn.check_fqdn("hosta")
    assert "hosta.example.org" in err.value.hint


def test_present_entries_need_no_line():
    add, conflicts = fqdn.missing_lines(DEBIAN, [("198.18.0.12", "hostb.vpd.lab")])
    assert (add, conflicts) == ([], [])


def test_a_missing_peer_gets_one_line_with_its_short_name():
    add, conflicts = fqdn.missing_lines(DEBIAN, [("198.18.0.13", "hostc.vpd.lab")])
    assert add == ["198.18.0.13 hostc.vpd.lab hostc"] and conflicts == []


def test_a_name_on_another_address_is_reported_not_rewritten():
    # Debian's 127.0.1.1 line names the host itself: peers would reach loopback.
    add, conflicts = fqdn.missing_lines(DEBIAN, [("198.18.0.11", "hosta.vpd.lab")])
    assert add == ["198.18.0.11 hosta.vpd.lab hosta"]
    assert conflicts == ["127.0.1.1\thosta.vpd.lab\thosta"]


def test_addresses_compare_as_addresses():
    text = "2001:db8:0::2 hostb.vpd.lab\n"
    assert fqdn.missing_lines(text, [("2001:db8::2", "hostb.vpd.lab")]) == ([], [])


def test_appended_starts_a_new_line_when_the_file_does_not_end_with_one():
    assert fqdn.appended("a b", ["1.2.3.4 x.y x"]) == "\n1.2.3.4 x.y x\n"
    assert fqdn.appended("a b\n", ["1.2.3.4 x.y x"]) == "1.2.3.4 x.y x\n"
    assert fqdn.appended("", ["1.2.3.4 x.y x"]) == "1.2.3.4 x.y x\n"


def test_without_lines_takes_out_the_last_copy_only():
    text = "198.18.0.13 hostc.vpd.lab hostc\nother\n198.18.0.13 hostc.vpd.lab hostc\n"
    assert fqdn.without_lines(text, ["198.18.0.13 hostc.vpd.lab hostc"]) == \
        "198.18.0.13 hostc.vpd.lab hostc\nother\n"
    assert fqdn.without_lines(text, ["not there"]) == text


_line = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@given(st.lists(_line, max_size=8), st.lists(_line.filter(lambda s: s.strip()), min_size=1, max_size=3))
def test_appending_then_removing_gives_the_file_back(existing, added):
    text = "".join(line + "\n" for line in existing)
    assert fqdn.without_lines(text + fqdn.appended(text, added), added) == text


def test_parse_ahosts_keeps_connect_order_once_each():
    out = ("198.18.0.12     STREAM hostb.vpd.lab\n198.18.0.12     DGRAM  \n198.18.0.12     RAW    \n"
           "2001:db8::2     STREAM \n")
    assert fqdn.parse_ahosts(out) == ["198.18.0.12", "2001:db8::2"]


def test_hosts_line_leaves_out_a_short_name_equal_to_the_name():
    assert fqdn.hosts_line("198.18.0.12", "hostb.vpd.lab") == "198.18.0.12 hostb.vpd.lab hostb"
