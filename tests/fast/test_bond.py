"""Host bonds (Práctica 8) without a bonding kernel: the per-mode validation, the
/proc/net/bonding parser (on text in the format of the kernel's bond_procfs.c, as Debian 12's
6.1 kernel prints it: this sandbox's kernel has no bonding driver, see docs/lab.md), the
iproute2 and nmcli plans, the checks against a host's interfaces, and the CLI's exit 2."""
from __future__ import annotations

from pathlib import Path

import pytest

from vpd.core.errors import UsageError
from vpd.network import bond as bonds

from .test_network import HOST, hostnet

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("mode", [*bonds.MODES, "0", "1", "6"])
def test_every_mode_is_accepted_by_name_or_number(mode):
    spec = bonds.validate("bond0", mode, "eth1,eth2")
    assert spec.mode in bonds.MODES and spec.ports == ("eth1", "eth2") and spec.miimon == 100
    assert spec.nm_options().startswith(f"mode={spec.mode},miimon=100")


def test_numbers_are_the_kernels():
    assert bonds.validate("b", "0", "a,b2").mode == "balance-rr"
    assert bonds.validate("b", "1", "a,b2").mode == "active-backup"
    assert bonds.validate("b", "4", "a,b2").mode == "802.3ad"


def test_options_that_fit_their_mode():
    spec = bonds.validate("bond0", "active-backup", ["eth1", "eth2"], miimon=50, primary="eth2")
    assert spec.options() == {"mode": "active-backup", "miimon": "50", "primary": "eth2"}
    lacp = bonds.validate("bond0", "802.3ad", "eth1,eth2,eth3", xmit_hash_policy="layer3+4", lacp_rate="fast")
    assert lacp.nm_options() == "mode=802.3ad,miimon=100,xmit_hash_policy=layer3+4,lacp_rate=fast"
    assert bonds.validate("b", "balance-alb", "a,c", primary="c").primary == "c"


@pytest.mark.parametrize(("mode", "ports", "kwargs", "why"), [
    ("balance-rr", "eth1,eth2", {"primary": "eth1"}, "--primary applies"),
    ("broadcast", "eth1,eth2", {"primary": "eth1"}, "--primary applies"),
    ("active-backup", "eth1,eth2", {"primary": "eth3"}, "not one of the ports"),
    ("active-backup", "eth1,eth2", {"xmit_hash_policy": "layer2"}, "--xmit-hash-policy applies"),
    ("balance-xor", "eth1,eth2", {"xmit_hash_policy": "layer9"}, "unknown xmit_hash_policy"),
    ("balance-xor", "eth1,eth2", {"lacp_rate": "fast"}, "802.3ad only"),
    ("802.3ad", "eth1,eth2", {"lacp_rate": "sometimes"}, "slow or fast"),
    ("active-backup", "eth1,eth2", {"miimon": 0}, "miimon"),
    ("active-backup", "eth1,eth2", {"miimon": 60001}, "miimon"),
    ("active-roundrobin", "eth1,eth2", {}, "unknown bond mode"),
    ("7", "eth1,eth2", {}, "unknown bond mode"),
    ("active-backup", "eth1", {}, "at least two ports"),
    ("active-backup", "eth1,eth1", {}, "named twice"),
    ("active-backup", "eth1,bond0", {}, "its own port"),
    ("active-backup", "eth1,eth 2", {}, "port"),
])
def test_options_against_their_mode_are_refused(mode, ports, kwargs, why):
    with pytest.raises(UsageError, match=why):
        bonds.validate("bond0", mode, ports, **kwargs)


def test_bad_bond_names_are_refused():
    for name in ("bond 0", "../b", "b;rm", "a" * 16):
        with pytest.raises(UsageError):
            bonds.validate(name, "active-backup", "eth1,eth2")


def test_proc_parser_active_backup_after_a_failover():
    st = bonds.parse_proc_bonding((DATA / "proc_net_bonding_active_backup.txt").read_text())
    assert (st.mode, st.active_port, st.primary, st.mii_status, st.miimon) == \
        ("active-backup", "eth2", "eth1", "up", 100)
    assert [(p.name, p.mii_status, p.link_failures, p.permanent_mac) for p in st.ports] == [
        ("eth1", "down", 1, "52:54:00:aa:00:01"), ("eth2", "up", 0, "52:54:00:aa:00:02")]
    assert st.ports[1].speed == "10000"


def test_proc_parser_802_3ad_skips_the_lacp_details():
    st = bonds.parse_proc_bonding((DATA / "proc_net_bonding_802_3ad.txt").read_text())
    assert st.mode == "802.3ad" and st.active_port is None and st.miimon == 100
    assert [(p.name, p.mii_status, p.link_failures) for p in st.ports] == [("eth1", "up", 0), ("eth2", "up", 2)]


def test_proc_parser_balance_rr_and_nothing():
    st = bonds.parse_proc_bonding("Bonding Mode: load balancing (round-robin)\nMII Status: down\n"
                                  "MII Polling Interval (ms): 0\n")
    assert st.mode == "balance-rr" and st.mii_status == "down" and st.ports == []
    assert bonds.parse_proc_bonding("") == bonds.BondStatus()


def test_iproute2_plan_enslaves_ports_down_and_rolls_back():
    spec = bonds.validate("bond0", "active-backup", "eth1,eth2", primary="eth1")
    net = hostnet()
    net.links["eth2"] = net.links["eth1"].__class__("eth2", "veth", None, "02:76:70:09:02:01", True)
    plan = bonds.plan_iproute2(net, spec)
    lines = plan.batch.splitlines()
    assert lines[0] == "link add name bond0 type bond mode active-backup miimon 100 primary eth1"
    assert lines.index("link set dev eth1 down") < lines.index("link set dev eth1 master bond0") \
        < lines.index("link set dev bond0 up") < lines.index("link set dev eth1 up")
    script = plan.rollback_script()
    assert "ip link set dev eth1 nomaster\n" in script and "ip link del dev bond0\n" in script
    assert plan.moves == []
    forced = bonds.plan_iproute2(net, bonds.validate("bond0", "active-backup", "eth0,eth2"), move_from="eth0")
    assert "addr add 198.18.9.11/24 dev bond0" in forced.batch.splitlines()
    assert "route replace default via 198.18.9.1 dev bond0 proto static metric 100" in forced.batch.splitlines()
    assert forced.moves == ["198.18.9.11/24"]
    assert "ip addr add 198.18.9.11/24 dev eth0\n" in forced.rollback_script()


def test_networkmanager_plan_is_the_seeds_nmcli_steps():
    plan = bonds.plan_networkmanager(bonds.validate("bond0", "active-backup", "enp1s0,enp2s0"))
    assert plan.changes[0] == ["nmcli", "connection", "add", "type", "bond", "con-name", "bond0", "ifname", "bond0",
                               "bond.options", "mode=active-backup,miimon=100", "connection.autoconnect", "yes"]
    assert plan.changes[1][:9] == ["nmcli", "connection", "add", "type", "ethernet", "port-type", "bond",
                                   "controller", "bond0"]
    assert plan.changes[-1] == ["nmcli", "connection", "up", "bond0"]
    assert ["nmcli", "connection", "delete", "bond0"] == plan.rollback[-1]
    assert ["nmcli", "connection", "delete", "bond0-port-enp2s0"] in plan.rollback


def test_checks_against_the_host():
    net = hostnet()
    with pytest.raises(UsageError, match="management address"):
        bonds.check_create(net, HOST, bonds.validate("bond0", "1", "eth0,eth1"), force_management=False)
    assert bonds.check_create(net, HOST, bonds.validate("bond0", "1", "eth0,eth1"), force_management=True) is False
    with pytest.raises(UsageError, match="does not exist"):
        bonds.check_create(net, HOST, bonds.validate("bond0", "1", "eth1,eth7"), force_management=True)
    with pytest.raises(UsageError, match="cannot be a bond port"):
        bonds.check_create(net, HOST, bonds.validate("bond0", "1", "eth1,virbr0"), force_management=True)
    with pytest.raises(UsageError, match="already exists"):
        bonds.check_create(net, HOST, bonds.validate("virbr0", "1", "eth1,eth0"), force_management=True)
