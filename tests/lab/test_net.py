"""Práctica 5 on real lab guests: NAT, isolated and routed networks with DHCP, NICs hot-plugged
and unplugged, a host bridge on a spare NIC that puts a guest on the lab LAN, and a bridge on the
management NIC that is refused, then forced and rolled back when the host stops answering."""
from __future__ import annotations

import contextlib
import subprocess
import time

import libvirt
import pytest

from vpd.connect import inventory
from vpd.connect.libvirt_conn import Connections
from vpd.core.paths import lab_dir
from vpd.lab import control, hostproc, layout, network
from vpd.lab.layout import LabHost
from vpd.vm.console import ConsoleStream
from vpd.vm.guest_channel import GuestChannel

from .conftest import VPD, vpd, vpd_json

pytestmark = pytest.mark.lab

HOSTA = ("--host", "hosta")
NAT, ISO, ROUTED, LANBR = "pnat", "piso", "prouted", "plan"
NAT_NET, ISO_NET, ROUTED_NET = "198.19.40.0/24", "198.19.41.0/24", "198.19.42.0/24"
A, B = "netga", "netgb"
MAC_A_NAT, MAC_B_ISO = "52:54:00:40:00:0a", "52:54:00:41:00:0b"
MAC_A_ISO, MAC_B_ROUTED, MAC_A_LAN = "52:54:00:41:00:0a", "52:54:00:42:00:0b", "52:54:00:b0:00:0a"
LAN_DHCP_RANGE = [str(layout.subnet().network_address + i) for i in range(100, 111)]


def links(host: str) -> set[str]:
    return {line.split()[0].split("@")[0] for line in on_host(host, "ip", "-br", "link").stdout.splitlines()}


def holder(name: str) -> int:
    return control.load_state().host(name).holder_pid


def on_host(name: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return hostproc.run_in_host(holder(name), list(argv), check=check, timeout=30)


def address_of(name: str) -> str:
    return control.load_state().host(name).address


@contextlib.contextmanager
def channel(conns, lab_inventory, vm: str):
    dom = conns.get(lab_inventory.get("hosta")).lookupByName(vm)
    with ConsoleStream(dom, "serial1") as stream:
        ch = GuestChannel(stream.send, stream.recv)
        ch.wait_ready(timeout=30)
        yield ch


def test_bad_networks_are_refused_and_change_nothing(lab):
    before = vpd_json("net", "list")
    bad = [
        [NAT, "--mode", "nat", "--subnet", str(layout.subnet())],  # the hosts' own LAN
        [NAT, "--mode", "nat", "--subnet", "198.19.40.0/33"],
        [NAT, "--mode", "nat", "--subnet", NAT_NET, "--dhcp", "198.19.50.10-198.19.50.20"],
        ["bad name", "--mode", "isolated", "--subnet", NAT_NET],
        [NAT, "--mode", "routed", "--subnet", NAT_NET, "--forward-dev", "eth9"],
        [LANBR, "--mode", "bridge", "--bridge", "nobr0"],
    ]
    for args in bad:
        proc = vpd("net", "create", *args, *HOSTA)
        assert proc.returncode == 2, (args, proc.stderr)
    assert vpd_json("net", "list") == before
    assert not any(name.startswith("virbr") for name in links("hosta"))


@pytest.fixture(scope="module")
def nets(lab):
    made = {}
    for name, mode, subnet, dhcp in ((NAT, "nat", NAT_NET, "198.19.40.10-198.19.40.99"),
                                     (ISO, "isolated", ISO_NET, "198.19.41.10-198.19.41.99"),
                                     (ROUTED, "routed", ROUTED_NET, "198.19.42.10-198.19.42.99")):
        made[name] = vpd_json("net", "create", name, *HOSTA, "--mode", mode, "--subnet", subnet, "--dhcp", dhcp)
    yield made
    with Connections() as conns:  # in-process: a CLI call per object would cost seconds
        conn = conns.get(inventory.resolve().get("hosta"))
        for net in conn.listAllNetworks():
            if net.name() in (LANBR, ROUTED, ISO, NAT):
                with contextlib.suppress(libvirt.libvirtError):
                    net.destroy()
                net.undefine()


@pytest.fixture(scope="module")
def guests(nets, lab):
    """Two guests on hosta: A starts on the NAT network, B on the isolated one; booted in parallel."""
    try:
        for vm, net, mac in ((A, NAT, MAC_A_NAT), (B, ISO, MAC_B_ISO)):
            vpd_json("vm", "create", vm, *HOSTA, "--lab-guest", "--memory", "96")
            attached = vpd_json("vm", "iface", "attach", vm, *HOSTA, "--network", net, "--mac", mac)
            assert attached["config"] and not attached["live"]
        starts = [subprocess.Popen([*VPD, "vm", "start", vm, *HOSTA, "--wait-boot", "--json"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for vm in (A, B)]
        for proc in starts:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
        yield (A, B)
    finally:
        with Connections() as conns:
            conn = conns.get(inventory.resolve().get("hosta"))
            for dom in conn.listAllDomains():
                if dom.name() in (A, B):
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.destroy()
                    dom.undefine()


def test_network_create_is_idempotent(nets):
    assert nets[NAT]["created"] and nets[NAT]["active"] and nets[NAT]["subnet"] == "198.19.40.1/24"
    again = vpd_json("net", "create", NAT, *HOSTA, "--mode", "nat", "--subnet", NAT_NET,
                     "--dhcp", "198.19.40.10-198.19.40.99")
    assert again["created"] is False and again["changed"] is False
    other = vpd("net", "create", NAT, *HOSTA, "--mode", "isolated", "--subnet", NAT_NET)
    assert other.returncode == 2 and "other settings" in other.stderr
    overlap = vpd("net", "create", "pclash", *HOSTA, "--mode", "isolated", "--subnet", "198.19.41.128/25")
    assert overlap.returncode == 2 and ISO in overlap.stderr
    listed = {(n["host"], n["name"]): n for h in vpd_json("net", "list")["hosts"] for n in h["networks"]}
    assert listed[("hosta", ROUTED)]["mode"] == "routed" and listed[("hosta", ISO)]["mode"] == "isolated"
    assert [op["operation"] for op in vpd_json("journal", "--operation", "net.create", "--limit", "100")
            if op["target"] == f"hosta/{NAT}"]


def test_nat_network_gives_a_dhcp_lease_that_net_leases_shows(guests, conns, lab_inventory):
    with channel(conns, lab_inventory, A) as ch:
        address = ch.wait_ipv4(ch.interface_with_mac(MAC_A_NAT))
        leases = vpd_json("net", "leases", NAT)["leases"]
        assert {(lease["mac"], f"{lease['ip']}/{lease['prefix']}") for lease in leases} == {(MAC_A_NAT, address)}
        rows = vpd_json("vm", "iface", "list", A, *HOSTA)["interfaces"]
        assert rows[0]["mac"] == MAC_A_NAT and address in rows[0]["addresses"] and rows[0]["source"] == NAT
        # NAT reaches out: the other lab host answers, through hosta's address.
        assert ch.ping(address_of("hostb"))


def test_isolated_network_links_its_guests_and_nothing_else(guests, conns, lab_inventory):
    hot = vpd_json("vm", "iface", "attach", A, *HOSTA, "--network", ISO, "--mac", MAC_A_ISO)
    assert hot["live"] and hot["config"] and hot["target"]
    with channel(conns, lab_inventory, A) as a, channel(conns, lab_inventory, B) as b:
        a_iso = a.wait_ipv4(a.interface_with_mac(MAC_A_ISO), timeout=60).split("/")[0]
        b_iso = b.wait_ipv4(b.interface_with_mac(MAC_B_ISO)).split("/")[0]
        a_nat = a.ipv4_addresses(a.interface_with_mac(MAC_A_NAT))[0].split("/")[0]
        assert a.ping(b_iso) and b.ping(a_iso)
        # Even told to route through the host, B reaches neither the LAN nor the NAT network.
        assert b.run("ip route replace default via 198.19.41.1").exit_code == 0
        try:
            assert not b.ping(address_of("hostb"), count=1, timeout_s=2)
            assert not b.ping(a_nat, count=1, timeout_s=2)
        finally:
            b.run("ip route del default")
    stop = vpd("net", "stop", ISO, *HOSTA)
    assert stop.returncode == 2 and A in stop.stderr and B in stop.stderr


def test_routed_network_is_reached_from_the_other_host_through_a_route(guests, conns, lab_inventory):
    vpd_json("vm", "iface", "attach", B, *HOSTA, "--network", ROUTED, "--mac", MAC_B_ROUTED, "--live")
    with channel(conns, lab_inventory, B) as b:
        b_routed = b.wait_ipv4(b.interface_with_mac(MAC_B_ROUTED), timeout=60).split("/")[0]
    ping = ("busybox", "ping", "-c", "2", "-W", "3", b_routed)
    assert on_host("hostb", *ping, check=False).returncode != 0  # no route yet
    on_host("hostb", "ip", "route", "add", ROUTED_NET, "via", address_of("hosta"))
    try:
        assert on_host("hostb", *ping, check=False).returncode == 0
    finally:
        on_host("hostb", "ip", "route", "del", ROUTED_NET, check=False)
    # --live only: the definition does not keep the NIC.
    rows = vpd_json("vm", "iface", "list", B, *HOSTA)["interfaces"]
    assert MAC_B_ROUTED in [r["mac"] for r in rows]
    gone = vpd_json("vm", "iface", "detach", B, *HOSTA, "--mac", MAC_B_ROUTED)
    assert gone["live"] and not gone["unplug_pending"]
    assert MAC_B_ROUTED not in [r["mac"] for r in vpd_json("vm", "iface", "list", B, *HOSTA)["interfaces"]]


@contextlib.contextmanager
def lan_dhcp_server_on(host: str, tmp_path):
    """busybox udhcpd on the host's LAN NIC (only in its network namespace), with its firewall
    opened for DHCP just for the test: the lab LAN has no DHCP server of its own."""
    conf = tmp_path / "udhcpd.conf"
    conf.write_text(f"start {LAN_DHCP_RANGE[0]}\nend {LAN_DHCP_RANGE[-1]}\ninterface eth0\n"
                    f"lease_file {tmp_path / 'udhcpd.leases'}\npidfile {tmp_path / 'udhcpd.pid'}\n"
                    f"option subnet {layout.subnet().netmask}\n")
    (tmp_path / "udhcpd.leases").touch()
    opened = on_host(host, "nft", "-e", "-a", "insert", "rule", "inet", "vpd_lab_host", "input",
                     "udp", "dport", "67", "accept").stdout
    handle = opened.split("# handle")[-1].split()[0]
    server = subprocess.Popen(["nsenter", "-t", str(holder(host)), "-n", "busybox", "udhcpd", "-f", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        server.kill()
        server.wait(timeout=10)
        on_host(host, "nft", "delete", "rule", "inet", "vpd_lab_host", "input", "handle", handle, check=False)


def test_guest_on_a_host_bridge_is_on_the_lab_lan(guests, conns, lab_inventory, tmp_path):
    state = control.load_state().host("hosta")
    network.plug_second_nic(LabHost(state.index, lab_dir()), state.holder_pid, "eth1")
    made = vpd_json("host", "bridge", "create", "br0", "--iface", "eth1", *HOSTA)
    assert made["changed"] and made["confirmed"] and not made["management"]
    assert vpd_json("host", "bridge", "create", "br0", "--iface", "eth1", *HOSTA)["changed"] is False
    in_use = vpd("host", "bridge", "create", "br1", "--iface", "eth1", *HOSTA)
    assert in_use.returncode == 2 and "already a port of br0" in in_use.stderr
    # The same bridge as a libvirt network (forward mode bridge), as the seed also shows.
    bridged = vpd_json("net", "create", LANBR, *HOSTA, "--mode", "bridge", "--bridge", "br0")
    assert bridged["mode"] == "bridge" and bridged["active"]
    hostb = address_of("hostb")
    with lan_dhcp_server_on("hostb", tmp_path):
        vpd_json("vm", "iface", "attach", A, *HOSTA, "--bridge", "br0", "--mac", MAC_A_LAN)
        with channel(conns, lab_inventory, A) as a:
            nic = a.interface_with_mac(MAC_A_LAN)
            # The guest's own DHCP client asks the LAN, and the LAN's server (on hostb) answers.
            lan_address = a.wait_ipv4(nic, timeout=60).split("/")[0]
            assert lan_address in LAN_DHCP_RANGE
            assert a.run(f"ping -c 2 -W 3 -I {nic} {hostb}").exit_code == 0
    # hostb saw the guest itself on the LAN (its MAC), not hosta relaying it.
    neigh = on_host("hostb", "ip", "neigh", "show", lan_address).stdout
    assert MAC_A_LAN in neigh
    busy = vpd("host", "bridge", "delete", "br0", *HOSTA)
    assert busy.returncode == 2 and "guests are still on br0" in busy.stderr
    vpd_json("vm", "iface", "detach", A, *HOSTA, "--bridge", "br0")
    vpd_json("net", "delete", LANBR, *HOSTA)
    assert vpd_json("host", "bridge", "delete", "br0", *HOSTA)["changed"]
    assert "br0" not in links("hosta")


def _hostb_eth0() -> str:
    return on_host("hostb", "ip", "-br", "-4", "addr", "show", "dev", "eth0").stdout


def test_management_nic_bridge_is_refused_then_rolled_back_when_the_host_goes_silent(lab):
    before = _hostb_eth0()
    assert address_of("hostb") in before
    refused = vpd("host", "bridge", "create", "brm", "--iface", "eth0", "--host", "hostb")
    assert refused.returncode == 2 and "management address" in refused.stderr
    assert _hostb_eth0() == before
    # A firewall that drops everything arriving on the new bridge (as a zone the bridge falls into
    # would): the host stops answering after the change, and must come back by itself.
    on_host("hostb", "nft", "add", "table", "inet", "vpd_test_drop")
    on_host("hostb", "nft", "add", "chain", "inet", "vpd_test_drop", "input",
            "{ type filter hook input priority -10; policy accept; }")
    on_host("hostb", "nft", "add", "rule", "inet", "vpd_test_drop", "input", "iifname", "brm", "drop")
    try:
        started = time.monotonic()
        forced = vpd("host", "bridge", "create", "brm", "--iface", "eth0", "--host", "hostb", "--force-management",
                     "--confirm-timeout", "8")
        rollback_s = time.monotonic() - started
        assert forced.returncode == 1 and "rolled it back" in forced.stderr, forced.stderr
    finally:
        on_host("hostb", "nft", "delete", "table", "inet", "vpd_test_drop", check=False)
    assert _hostb_eth0() == before
    assert "brm" not in links("hostb")
    assert [h["reachable"] for h in vpd_json("host", "list")["hosts"]] == [True, True]
    # Without the trap the forced change holds, and delete gives the address back.
    made = vpd_json("host", "bridge", "create", "brm", "--iface", "eth0", "--host", "hostb", "--force-management")
    assert made["management"] and made["confirmed"] and made["moved_addresses"]
    assert address_of("hostb") in on_host("hostb", "ip", "-br", "-4", "addr", "show", "dev", "brm").stdout
    undone = vpd_json("host", "bridge", "delete", "brm", "--host", "hostb", "--force-management")
    assert undone["iface"] == "eth0" and _hostb_eth0() == before
    print(f"\nforced bridge rolled back and host back in {rollback_s:.1f} s (confirm timeout 8 s)")
