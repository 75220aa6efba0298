"""Virtual networks, guest NICs and host-bridge plans: validation (hypothesis), typed XML, and
operations on libvirt's test driver; bad input changes nothing."""
from __future__ import annotations

import gc
import ipaddress
import json

import libvirt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpd.connect.inventory import Host
from vpd.core.errors import NotFound, UsageError
from vpd.network import bridge as bridges
from vpd.network import ifaces, networks
from vpd.network.hostnet import HostNetwork, parse_links, parse_routes
from vpd.xml.checks import require_unicast_mac
from vpd.xml.network import Network, virtual_network

from .conftest import run_vpd

HOST = Host(name="t", uri="test:///default", address="198.18.9.11")


@pytest.fixture
def conn():
    gc.collect()
    c = libvirt.open("test:///default")
    yield c
    for net in c.listAllNetworks():
        if net.name() != "default":
            networks._remove(net)
    c.close()


# --- subnets and DHCP ranges --------------------------------------------------------

@pytest.mark.parametrize("text, gateway", [
    ("198.19.40.0/24", "198.19.40.1/24"),
    ("198.19.40.254/24", "198.19.40.254/24"),
    (" 198.19.41.0/30", "198.19.41.1/30"),
])
def test_subnet_gives_the_hosts_address(text, gateway):
    assert str(networks.parse_subnet(text)) == gateway


@pytest.mark.parametrize("text", ["", "198.19.40.0", "198.19.40.0/33", "198.19.40.0/31", "198.19.40.0/7",
                                  "198.19.400.0/24", "fd00::/64", "127.0.0.0/8", "224.0.0.0/24",
                                  "198.19.40.255/24", "x/24", "198.19.40.0/24; rm -rf /", "'198.19.40.0/24'"])
def test_malformed_subnets_are_usage_errors(text):
    with pytest.raises(UsageError):
        networks.parse_subnet(text)


GW = ipaddress.IPv4Interface("198.19.40.1/24")


@pytest.mark.parametrize("text", ["198.19.40.10-198.19.40.5", "198.19.40.0-198.19.40.5", "198.19.40.2-198.19.40.255",
                                  "198.19.41.2-198.19.41.9", "198.19.40.1-198.19.40.9", "198.19.40.2",
                                  "a-b", "198.19.40.2 - 198.19.40.3 - 198.19.40.4"])
def test_bad_dhcp_ranges_are_usage_errors(text):
    with pytest.raises(UsageError):
        networks.parse_dhcp_range(text, GW)


@given(st.text(max_size=40))
def test_any_text_is_a_subnet_or_a_usage_error(text):
    try:
        gw = networks.parse_subnet(text)
    except UsageError:
        return
    assert gw.ip != gw.network.network_address and gw.ip != gw.network.broadcast_address


@given(st.integers(0, 2**17 - 1), st.integers(16, 30), st.data())
def test_valid_subnets_and_ranges_round_trip_through_xml(offset, prefix, data):
    base = ipaddress.IPv4Network("198.18.0.0/15")
    net = ipaddress.IPv4Network((int(base.network_address) + offset, prefix), strict=False)
    gw = networks.parse_subnet(str(net))
    assert gw.network == net
    hosts = net.num_addresses - 2
    first = data.draw(st.integers(2, max(2, hosts)))
    last = data.draw(st.integers(first, max(first, hosts)))
    start, end = net.network_address + first, net.network_address + last
    if not start <= net.broadcast_address - 1:
        return
    spec = networks.NetworkSpec("n1", data.draw(st.sampled_from(["nat", "isolated", "routed", "open"])), str(net),
                                f"{start}-{end}")
    parsed = Network.from_xml(spec.to_xml().to_xml_string().encode())
    assert parsed.mode == spec.mode
    assert parsed.subnets() == [net]
    assert parsed.ips[0].dhcp.ranges[0].start == str(start)


@given(st.text(min_size=1, max_size=20))
def test_network_names_are_checked(name):
    try:
        spec = networks.NetworkSpec(name, "isolated", "198.19.40.0/24")
    except UsageError:
        assert not name[0].isalnum() or ".." in name or any(c not in "._-" and not c.isalnum() for c in name) \
            or not name.isascii() or len(name) > 64
        return
    assert spec.to_xml().name == name


@pytest.mark.parametrize("kwargs", [
    dict(mode="bridge"),
    dict(mode="bridge", bridge="br0", subnet="198.19.40.0/24"),
    dict(mode="nat"),
    dict(mode="isolated", subnet="198.19.40.0/24", forward_dev="eth0"),
    dict(mode="nat", subnet="198.19.40.0/24", bridge="this-name-is-too-long"),
    dict(mode="wormhole", subnet="198.19.40.0/24"),
    dict(mode="nat", subnet="198.19.40.0/24", forward_dev="eth0; reboot"),
])
def test_mode_rules(kwargs):
    with pytest.raises(UsageError):
        networks.NetworkSpec("n1", **kwargs)


def test_modes_map_to_libvirt_forward_modes():
    gw = ipaddress.IPv4Interface("198.19.40.1/24")
    assert virtual_network("a", "isolated", gateway=gw).forward is None
    assert virtual_network("a", "routed", gateway=gw, forward_dev="eth1").forward.dev == "eth1"
    bridged = Network.from_xml(virtual_network("a", "bridge", bridge="br0").to_xml_string().encode())
    assert bridged.mode == "bridge" and bridged.bridge.name == "br0" and bridged.ips == []


# --- operations on the test driver ----------------------------------------------------

def test_create_is_idempotent_and_refuses_other_settings(conn):
    spec = networks.NetworkSpec("lan1", "nat", "198.19.40.0/24", "198.19.40.10-198.19.40.20")
    made = networks.create(conn, HOST, spec, autostart=True)
    assert made["created"] and made["active"] and made["autostart"] and made["subnet"] == "198.19.40.1/24"
    again = networks.create(conn, HOST, spec)
    assert again["created"] is False and again["changed"] is False
    with pytest.raises(UsageError, match="other settings"):
        networks.create(conn, HOST, networks.NetworkSpec("lan1", "isolated", "198.19.40.0/24"))


def test_overlapping_subnets_are_refused_and_nothing_is_defined(conn):
    before = sorted(n.name() for n in conn.listAllNetworks())
    with pytest.raises(UsageError, match="overlaps .* 'default'"):
        networks.create(conn, HOST, networks.NetworkSpec("clash", "nat", "192.168.122.128/25"))
    hostnet = HostNetwork(parse_links(ADDR_JSON, LINK_JSON), parse_routes(ROUTE_JSON))
    with pytest.raises(UsageError, match="eth0"):
        networks.create(conn, HOST, networks.NetworkSpec("clash", "nat", "198.18.9.0/25"), hostnet=hostnet)
    with pytest.raises(UsageError, match="route 198.19.60.0/24"):
        networks.create(conn, HOST, networks.NetworkSpec("clash", "routed", "198.19.60.0/23"), hostnet=hostnet)
    with pytest.raises(UsageError, match="forward device"):
        networks.create(conn, HOST, networks.NetworkSpec("clash", "nat", "198.19.70.0/24", forward_dev="eth9"),
                        hostnet=hostnet)
    with pytest.raises(UsageError, match="not a bridge"):
        networks.create(conn, HOST, networks.NetworkSpec("clash", "bridge", bridge="eth0"), hostnet=hostnet)
    assert sorted(n.name() for n in conn.listAllNetworks()) == before


def test_stop_and_delete_refuse_while_running_vms_use_the_network(conn):
    # The test driver's running domain "test" has a NIC on "default".
    with pytest.raises(UsageError, match="test"):
        networks.stop(conn, HOST, "default")
    with pytest.raises(UsageError, match="test"):
        networks.delete(conn, HOST, "default")
    assert conn.networkLookupByName("default").isActive()
    spec = networks.NetworkSpec("lan2", "isolated", "198.19.41.0/24")
    networks.create(conn, HOST, spec, start=False)
    assert networks.start(conn, HOST, "lan2")["changed"]
    assert not networks.start(conn, HOST, "lan2")["changed"]
    assert networks.set_autostart(conn, HOST, "lan2")["autostart"]
    assert networks.stop(conn, HOST, "lan2")["changed"]
    assert networks.delete(conn, HOST, "lan2")["deleted"]
    with pytest.raises(NotFound):
        networks.find_network(conn, HOST, "lan2")


def test_nic_attach_is_idempotent_by_mac_and_refuses_clashes(conn):
    # The test driver cannot hotplug or edit NICs: real attach/detach run in tests/lab/test_net.py.
    networks.create(conn, HOST, networks.NetworkSpec("lan3", "isolated", "198.19.42.0/24"))
    dom = conn.lookupByName("test")  # running, with NIC aa:bb:cc:dd:ee:ff on "default"

    def attach(**kwargs):
        taken = kwargs.pop("taken", set())
        return ifaces.attach(conn, HOST, dom, ifaces.AttachRequest(live=True, config=False, **kwargs),
                             macs_elsewhere=taken, hostnet=None)

    assert attach(network="default", mac="AA:BB:CC:DD:EE:FF")["changed"] is False
    with pytest.raises(UsageError, match="already has a NIC"):
        attach(network="lan3", mac="aa:bb:cc:dd:ee:ff")
    with pytest.raises(UsageError, match="another VM"):
        attach(network="lan3", mac="52:54:00:aa:00:02", taken={"52:54:00:aa:00:02"})
    with pytest.raises(NotFound):
        attach(network="nonet")
    networks.stop(conn, HOST, "lan3")
    with pytest.raises(UsageError, match="not active"):
        attach(network="lan3")
    rows = ifaces.list_interfaces(dom, HOST)
    assert [(r["mac"], r["source"], r["interface"]) for r in rows] == [("aa:bb:cc:dd:ee:ff", "default", "testnet0")]
    with pytest.raises(UsageError, match="say which NIC"):
        ifaces.detach(dom, HOST, live=True, config=False)
    with pytest.raises(NotFound):
        ifaces.detach(dom, HOST, mac="52:54:00:aa:00:01", live=True, config=False)


def test_nic_requests_are_checked():
    with pytest.raises(UsageError):
        ifaces.AttachRequest()
    with pytest.raises(UsageError):
        ifaces.AttachRequest(network="a", bridge="b")
    with pytest.raises(UsageError):
        ifaces.AttachRequest(network="a", model="virtio'/><evil")
    with pytest.raises(UsageError):
        ifaces.AttachRequest(network="a", mac="01:00:5e:00:00:01")  # multicast


@given(st.text(max_size=20))
def test_macs_are_unicast_or_refused(text):
    try:
        mac = require_unicast_mac(text, "MAC")
    except UsageError:
        return
    assert int(mac[:2], 16) & 1 == 0 and len(mac) == 17


def test_random_macs_are_unicast_qemu_macs_and_new():
    taken = {ifaces.random_mac(set()) for _ in range(50)}
    mac = ifaces.random_mac(taken)
    assert mac.startswith("52:54:00:") and mac not in taken
    require_unicast_mac(mac, "MAC")


# --- host bridges: plans from `ip -j` output ---------------------------------------------

LINK_JSON = json.dumps([
    {"ifname": "lo", "flags": ["LOOPBACK", "UP"], "address": "00:00:00:00:00:00"},
    {"ifname": "eth0", "flags": ["UP"], "address": "02:76:70:09:00:01", "linkinfo": {"info_kind": "veth"}},
    {"ifname": "eth1", "flags": ["UP"], "address": "02:76:70:09:01:01", "linkinfo": {"info_kind": "veth"}},
    {"ifname": "virbr0", "flags": ["UP"], "address": "52:54:00:00:00:09", "linkinfo": {"info_kind": "bridge"}},
])
ADDR_JSON = json.dumps([
    {"ifname": "lo", "flags": ["UP"], "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth0", "flags": ["UP"], "addr_info": [
        {"family": "inet", "local": "198.18.9.11", "prefixlen": 24},
        {"family": "inet6", "local": "fe80::76:70ff:fe09:1", "prefixlen": 64}]},
    {"ifname": "eth1", "flags": ["UP"], "addr_info": [{"family": "inet", "local": "198.18.9.111", "prefixlen": 24}]},
])
ROUTE_JSON = json.dumps([
    {"dst": "198.18.9.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "prefsrc": "198.18.9.11"},
    {"dst": "198.19.60.0/24", "gateway": "198.18.9.12", "dev": "eth0", "protocol": "static"},
    {"dst": "default", "gateway": "198.18.9.1", "dev": "eth0", "protocol": "static", "metric": 100},
])


def hostnet() -> HostNetwork:
    return HostNetwork(parse_links(ADDR_JSON, LINK_JSON), parse_routes(ROUTE_JSON))


def test_the_management_interface_is_refused_unless_forced():
    with pytest.raises(UsageError, match="management address"):
        bridges.check_create(hostnet(), HOST, "br0", "eth0", force_management=False)
    assert bridges.check_create(hostnet(), HOST, "br0", "eth0", force_management=True) is False
    assert bridges.check_create(hostnet(), HOST, "br0", "eth1", force_management=False) is False
    for bad in (("virbr0", "eth1"), ("br0", "eth7"), ("br0", "virbr0"), ("br 0", "eth1"), ("br0", "../eth1")):
        with pytest.raises(UsageError):
            bridges.check_create(hostnet(), HOST, *bad, force_management=True)


def test_iproute2_plan_moves_addresses_and_routes_and_rolls_back():
    plan = bridges.plan_iproute2(hostnet(), "br0", "eth0")
    lines = plan.batch.splitlines()
    assert lines[0].startswith("link add name br0 type bridge")
    assert "link set dev br0 address 02:76:70:09:00:01" in lines
    assert lines.index("link set dev eth0 master br0") < lines.index("addr del 198.18.9.11/24 dev eth0") \
        < lines.index("addr add 198.18.9.11/24 dev br0")
    assert "route replace default via 198.18.9.1 dev br0 proto static metric 100" in lines
    assert "route replace 198.19.60.0/24 via 198.18.9.12 dev br0 proto static" in lines
    assert not any("fe80" in line for line in lines)  # link-local addresses stay per device
    script = plan.rollback_script()
    assert "ip link del dev br0\n" in script and "ip addr add 198.18.9.11/24 dev eth0\n" in script
    assert "ip route replace default via 198.18.9.1 dev eth0 proto static metric 100\n" in script


def test_networkmanager_plan_is_the_seeds_nmcli_steps():
    plan = bridges.plan_networkmanager("br0", "eth1", "Wired 1", {"ipv4.method": "manual",
                                                                  "ipv4.addresses": "198.18.9.111/24",
                                                                  "ipv4.gateway": "", "ipv4.dns": ""})
    assert plan.changes[0][:6] == ["nmcli", "connection", "add", "type", "bridge", "ifname"]
    assert "198.18.9.111/24" in plan.changes[0] and "ipv4.gateway" not in plan.changes[0]
    assert ["nmcli", "connection", "up", "Wired 1"] in plan.rollback
    assert "'Wired 1'" in plan.rollback_script()


def test_probe_ssh_never_rides_the_shared_connection():
    opts = bridges._ProbeRunner(Host(name="h", uri="qemu+ssh://root@h/system", address="198.18.9.11")).ssh_options()
    assert "ControlMaster=no" in opts and not any(o.startswith("ControlPath") for o in opts)


# --- the CLI: bad input exits 2 and changes nothing ---------------------------------------

@pytest.mark.parametrize("args", [
    ["net", "create", "bad name", "--host", "t1", "--mode", "nat", "--subnet", "198.19.40.0/24"],
    ["net", "create", "../n", "--host", "t1", "--mode", "nat", "--subnet", "198.19.40.0/24"],
    ["net", "create", "n1", "--host", "t1", "--mode", "nat", "--subnet", "198.19.40.0/33"],
    ["net", "create", "n1", "--host", "t1", "--mode", "nat", "--subnet", "198.19.40.0/24",
     "--dhcp", "198.19.41.2-198.19.41.9"],
    ["net", "create", "n1", "--host", "t1", "--mode", "nat", "--subnet", "192.168.122.0/24"],
    ["net", "create", "n1", "--host", "nohost", "--mode", "nat", "--subnet", "198.19.40.0/24"],
    ["net", "start", "nonet", "--host", "t1"],
    ["net", "leases", "nonet"],
    ["vm", "iface", "attach", "test", "--host", "t1", "--network", "default", "--mac", "zz:zz"],
    ["vm", "iface", "attach", "test", "--host", "t1"],
    ["vm", "iface", "attach", "novm", "--host", "t1", "--network", "default"],
    ["host", "bridge", "create", "br 0", "--iface", "eth0", "--host", "t1"],
    ["host", "bond", "create", "bond0", "--host", "t1", "--mode", "active-roundrobin", "--ports", "eth1,eth2"],
    ["host", "bond", "create", "bond0", "--host", "t1", "--mode", "balance-rr", "--ports", "eth1,eth2",
     "--primary", "eth1"],
    ["host", "bond", "create", "bond0", "--host", "t1", "--mode", "1", "--ports", "eth1"],
    ["vm", "iface", "link", "test", "52:54:00:00:00:99", "down", "--host", "t1"],
    ["vm", "iface", "link", "novm", "aa:bb:cc:dd:ee:ff", "down", "--host", "t1"],
])
def test_cli_bad_input_exits_2(args, test_inventory):
    proc = run_vpd(*args, "--json", inventory=test_inventory, check_rc=2)
    assert json.loads(proc.stdout)["error"]


def test_cli_net_list_covers_every_host(test_inventory):
    out = json.loads(run_vpd("net", "list", "--json", inventory=test_inventory, check_rc=0).stdout)
    assert [h["host"] for h in out["hosts"]] == ["t1", "t2"]
    assert out["hosts"][0]["networks"][0]["name"] == "default"
    assert out["hosts"][0]["networks"][0]["mode"] == "nat"


@given(st.text(max_size=24))
def test_interface_names_fit_the_kernel_or_are_refused(text):
    from vpd.xml.checks import require_ifname

    try:
        name = require_ifname(text, "interface")
    except UsageError:
        return
    assert 1 <= len(name) <= 15 and "/" not in name and ".." not in name and name.isascii()
    assert not any(c.isspace() for c in name)
