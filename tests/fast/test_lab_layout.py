"""The lab's shape is pure: addresses stay in 198.18.0.0/15, names and UUIDs are distinct."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from vpd.core.errors import UsageError
from vpd.lab import layout


def test_hosts_are_distinct_and_in_the_benchmark_range():
    hosts = layout.lab_hosts(Path("/x"), 8)
    bench = ipaddress.ip_network("198.18.0.0/15")
    assert len({h.address for h in hosts}) == len({h.fqdn for h in hosts}) == len({h.host_uuid for h in hosts}) == 8
    assert all(ipaddress.ip_address(h.address) in bench for h in hosts)
    assert hosts[0].fqdn == "hosta.vpd.lab" and hosts[1].name == "hostb"


@pytest.mark.parametrize("n", [0, 9, -1])
def test_host_count_is_bounded(n):
    with pytest.raises(UsageError):
        layout.lab_hosts(Path("/x"), n)


def test_etc_hosts_names_every_host():
    hosts = layout.lab_hosts(Path("/x"), 3)
    text = layout.etc_hosts(hosts)
    for h in hosts:
        assert f"{h.address} {h.fqdn} {h.name}" in text


def test_daemon_configs():
    h = layout.lab_hosts(Path("/x"), 2)[1]
    conf = layout.libvirtd_conf(h)
    assert f'listen_addr = "{h.address}"' in conf and h.host_uuid in conf and "listen_tls = 0" in conf
    assert "migration_port_min = 49152" in layout.qemu_conf()
    assert f"ListenAddress {h.address}" in layout.sshd_config(h)


def test_firewall_starts_closed_but_ssh_and_libvirt_to_the_lab_network():
    rules = layout.firewall_ruleset()
    assert "policy drop" in rules
    assert "tcp dport 22 accept" in rules
    assert f"ip saddr {layout.subnet()} tcp dport {{ 16509, 16514 }} accept" in rules
    assert "49152" not in rules


@pytest.mark.parametrize("rate_bps, mbit", [(1_000_000_000, 1000), (100_000_000, 100), (8000, 1),
                                            (None, layout.UNSHAPED_LINK_MBIT)])
def test_the_inventory_states_the_link_rate_and_the_lab_flag(tmp_path, rate_bps, mbit):
    from vpd.connect.inventory import load

    hosts = layout.lab_hosts(tmp_path, 2)
    path = tmp_path / "inventory.toml"
    path.write_text(layout.inventory_toml(hosts, tmp_path / "key", tmp_path / "known_hosts", rate_bps))
    inv = load(path)
    assert [h.name for h in inv.hosts] == ["hosta", "hostb"]
    assert all(h.lab and h.link_mbit == mbit for h in inv.hosts)
    assert inv.get("hostb").address == str(hosts[1].address)
    assert inv.get("hosta").ssh_known_hosts == str(tmp_path / "known_hosts")
