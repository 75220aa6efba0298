"""firewalld rich rules, firewall-cmd's answers, and the port probe's verdicts."""
from __future__ import annotations

import pytest

from vpd.core.errors import VpdError
from vpd.hostprep import firewall, firewalld
from vpd.hostprep.ports import PEER_PORTS as PORTS

RULES_A = [
    'rule family="ipv4" source address="198.18.2.11" port port="22" protocol="tcp" accept',
    'rule family="ipv4" source address="198.18.2.11" port port="16509" protocol="tcp" accept',
    'rule family="ipv4" source address="198.18.2.11" port port="16514" protocol="tcp" accept',
    'rule family="ipv4" source address="198.18.2.11" port port="49152-49216" protocol="tcp" accept',
]
# firewall-cmd 1.3 on a lab host, asked to add a rule that was there already.
ALREADY = ('Warning: ALREADY_ENABLED: rule family="ipv4" source address="198.18.2.11" '
           'port port="49152-49216" protocol="tcp" accept\nsuccess\n')


def test_rich_rules_admit_one_source_per_port_range_as_firewalld_lists_them():
    assert firewalld.rich_rules("198.18.2.11", PORTS) == RULES_A


def test_ipv6_peers_get_ipv6_rules():
    assert firewalld.rich_rules("2001:DB8::2", ((22, 22),)) == [
        'rule family="ipv6" source address="2001:db8::2" port port="22" protocol="tcp" accept']


def test_add_and_remove_commands_runtime_and_permanent():
    assert firewalld.add_argv("public", RULES_A[:1], permanent=False) == [
        "firewall-cmd", "--zone=public", "--add-rich-rule=" + RULES_A[0]]
    assert firewalld.remove_argv("public", RULES_A[:2], permanent=True) == [
        "firewall-cmd", "--permanent", "--zone=public",
        "--remove-rich-rule=" + RULES_A[0], "--remove-rich-rule=" + RULES_A[1]]


@pytest.mark.parametrize("zone", ["--permanent", "a zone", "", "x;y"])
def test_odd_zone_names_are_refused(zone):
    with pytest.raises(VpdError):
        firewalld.check_zone(zone)


def test_rules_firewalld_already_had_are_not_vpds():
    assert firewalld.already_enabled(ALREADY) == {RULES_A[3]}
    assert firewalld.already_enabled("success\n") == set()


def test_listed_reads_one_rule_per_line():
    assert firewalld.listed("\n".join(RULES_A[:2]) + "\n\n") == set(RULES_A[:2])


def test_probe_answers():
    assert firewall.parse_probe("22=open 16509=refused 49152=filtered 16514=unreachable\n") == {
        22: "open", 16509: "refused", 49152: "filtered", 16514: "unreachable"}
    with pytest.raises(VpdError, match="unexpected port probe answer"):
        firewall.parse_probe("Traceback (most recent call last):")


def test_refused_gets_through_a_firewall_filtered_and_unreachable_do_not():
    assert [firewall.reachable(s) for s in ("open", "refused", "filtered", "unreachable")] == [
        True, True, False, False]


def test_the_probe_script_compiles():
    compile(firewall.PROBE, "<probe>", "exec")
