"""nftables: reading `nft -j -a list ruleset` and the rules vpd adds (samples captured from lab hosts)."""
from __future__ import annotations

import json

import pytest

from vpd.core.errors import VpdError
from vpd.hostprep import nft
from vpd.hostprep.ports import PEER_PORTS as PORTS

# A lab host's firewall as `vpd lab up` leaves it (layout.firewall_ruleset).
LAB = r'''{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "vpd_lab_host", "handle": 2}}, {"chain": {"family": "inet", "table": "vpd_lab_host", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 2, "expr": [{"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 3, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 4, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 6, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 8, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, 16509, 16514]}}}, {"accept": null}]}}]}'''  # noqa: E501 (captured verbatim)
# The same host after `vpd host prepare hosta hostb`.
LAB_PREPARED = r'''{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "vpd_lab_host", "handle": 2}}, {"chain": {"family": "inet", "table": "vpd_lab_host", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 10, "comment": "vpd-prepare hostb 198.18.2.12", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "198.18.2.12"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, 16509, 16514, {"range": [49152, 49216]}]}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 2, "expr": [{"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 3, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 4, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 6, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "vpd_lab_host", "chain": "input", "handle": 8, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, 16509, 16514]}}}, {"accept": null}]}}]}'''  # noqa: E501 (captured verbatim)
# firewalld's input chain (nftables backend): policy accept, but a final reject.
FIREWALLD_CHAIN = r'''{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"chain": {"family": "inet", "table": "firewalld", "name": "filter_INPUT", "handle": 22, "type": "filter", "hook": "input", "prio": 10, "policy": "accept"}}, {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_INPUT", "handle": 26, "expr": [{"match": {"op": "==", "left": {"ct": {"key": "state"}}, "right": {"set": ["established", "related"]}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_INPUT", "handle": 27, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_INPUT", "handle": 28, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_INPUT", "handle": 29, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_INPUT", "handle": 33, "expr": [{"jump": {"target": "filter_INPUT_ZONES"}}]}}, {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_INPUT", "handle": 34, "expr": [{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}}]}'''  # noqa: E501 (captured verbatim)

EXPECTED_ARGV = ["nft", "insert", "rule", "inet", "vpd_lab_host", "input", "ip", "saddr", "198.18.2.12",
                 "tcp", "dport", "{ 22, 16509, 16514, 49152-49216 }", "accept",
                 "comment", '"vpd-prepare hostb 198.18.2.12"']


def _ruleset(chain: dict, *rules: list) -> str:
    """A one-chain ruleset in nft's JSON shape."""
    items = [{"chain": chain}] + [
        {"rule": {"family": chain["family"], "table": chain["table"], "chain": chain["name"], "handle": i + 10,
                  "expr": expr}} for i, expr in enumerate(rules)]
    return json.dumps({"nftables": items})


def _chain(**kw) -> dict:
    return {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter",
            "hook": "input", "prio": 0, "policy": "accept", **kw}


def test_lab_ruleset_has_one_closed_input_chain():
    rs = nft.parse(LAB)
    assert rs.input_chains == [nft.Chain("inet", "vpd_lab_host", "input", "drop")]
    assert rs.closed_input_chains() == rs.input_chains
    assert [r.handle for r in rs.rules] == [2, 3, 4, 6, 8]
    assert rs.vpd_rules() == []


def test_plan_inserts_one_tagged_rule_per_peer_with_the_exact_command():
    planned = nft.plan(nft.parse(LAB), [("hostb", "198.18.2.12")], PORTS)
    assert [(str(c), name, argv) for c, name, _, argv in planned] == [
        ("inet vpd_lab_host input", "hostb", EXPECTED_ARGV)]


def test_plan_is_empty_once_prepared_and_the_rule_is_found_by_its_comment():
    rs = nft.parse(LAB_PREPARED)
    assert nft.plan(rs, [("hostb", "198.18.2.12")], PORTS) == []
    [rule] = rs.vpd_rules()
    assert (rule.handle, rule.comment) == (10, "vpd-prepare hostb 198.18.2.12")
    assert nft.delete_argv(rule) == ["nft", "delete", "rule", "inet", "vpd_lab_host", "input", "handle", "10"]


def test_a_new_peer_still_gets_its_rule_when_another_is_there():
    planned = nft.plan(nft.parse(LAB_PREPARED), [("hostb", "198.18.2.12"), ("hostc", "198.18.2.13")], PORTS)
    assert [name for _, name, _, _ in planned] == ["hostc"]


def test_firewalld_chain_with_a_final_reject_counts_as_closed():
    rs = nft.parse(FIREWALLD_CHAIN)
    assert rs.input_chains == [nft.Chain("inet", "firewalld", "filter_INPUT", "accept")]
    assert rs.closed_input_chains() == rs.input_chains


@pytest.mark.parametrize("last, closed", [
    ([{"counter": {"packets": 0, "bytes": 0}}, {"drop": None}], True),
    ([{"reject": None}], True),
    ([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "192.0.2.1"}},
      {"drop": None}], False),  # drops one source only
    ([{"accept": None}], False),
])
def test_only_an_unconditional_last_drop_closes_an_accepting_chain(last, closed):
    rs = nft.parse(_ruleset(_chain(), [{"accept": None}], last))
    assert bool(rs.closed_input_chains()) is closed


def test_chains_off_the_input_hook_or_outside_ip_families_are_ignored():
    for chain in (_chain(hook="forward", policy="drop"), _chain(family="arp", policy="drop"),
                  _chain(family="bridge", policy="drop")):
        assert nft.parse(_ruleset(chain)).input_chains == []


def test_family_decides_which_peers_a_chain_gets():
    v4_only = nft.Chain("ip", "filter", "INPUT", "drop")
    v6_only = nft.Chain("ip6", "filter", "INPUT", "drop")
    both = nft.Chain("inet", "filter", "input", "drop")
    assert nft.accept_argv(v4_only, "b", "2001:db8::2", PORTS) is None
    assert nft.accept_argv(v6_only, "b", "198.18.0.12", PORTS) is None
    argv = nft.accept_argv(both, "b", "2001:DB8::2", PORTS)
    assert argv[6:9] == ["ip6", "saddr", "2001:db8::2"] and argv[-1] == '"vpd-prepare b 2001:db8::2"'


@pytest.mark.parametrize("table, chain", [("my table", "input"), ("t", "in;put"), ("t", '"x"'), ("-t", "c")])
def test_names_nft_cannot_read_are_refused(table, chain):
    with pytest.raises(VpdError, match="cannot be written"):
        nft.accept_argv(nft.Chain("inet", table, chain, "drop"), "b", "198.18.0.12", PORTS)


def test_only_vpd_comments_are_vpd_rules():
    assert nft.is_vpd_comment("vpd-prepare hostb 198.18.2.12")
    assert not nft.is_vpd_comment("vpd-prepared by hand")
    assert not nft.is_vpd_comment(None)


def test_unreadable_json_is_a_clear_error():
    with pytest.raises(VpdError, match="JSON ruleset"):
        nft.parse("Error: Could not process rule")
