"""Práctica 8 on the session lab: a lab host's link cut and restored (`vpd lab link`), measured
by pings between hosts; loss and delay on a link; a guest NIC's link set down and up
(`vpd vm iface link`, libvirt's domif-setlink) as the guest sees it; and a host bond in
active-backup over two spare links that survives one port going down.

Kernel limits found in this sandbox (docs/lab.md, "Link faults and bonds"): no netem (delay is
refused, loss goes through nftables) and no bonding driver (the bond is refused with the reason,
and the failover part is skipped saying so)."""
from __future__ import annotations

import contextlib
import re
import subprocess
import time

import libvirt
import pytest

from vpd.connect import inventory
from vpd.connect.libvirt_conn import Connections
from vpd.core.paths import lab_dir
from vpd.lab import control, hostproc, network
from vpd.lab.layout import LabHost
from vpd.lab.links import outside_name
from vpd.vm.console import ConsoleStream
from vpd.vm.guest_channel import GuestChannel

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab

HOSTA = ("--host", "hosta")
NET, NET_SUBNET, VM, MAC = "pbond", "198.19.48.0/24", "bondg", "52:54:00:48:00:0a"


def holder(name: str) -> int:
    return control.load_state().host(name).holder_pid


def on_host(name: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return hostproc.run_in_host(holder(name), list(argv), check=check, timeout=30)


def address_of(name: str) -> str:
    return control.load_state().host(name).address


def ping(src: str, dst: str, count: int = 3) -> tuple[int, list[float]]:
    """Replies received and their RTTs (ms), pinging from lab host src to lab host dst."""
    out = on_host(src, "busybox", "ping", "-c", str(count), "-i", "0.2", "-W", "1", address_of(dst),
                  check=False).stdout
    rtts = [float(x) for x in re.findall(r"time=([0-9.]+) ms", out)]
    return len(rtts), rtts


def link_of(report: dict, host: str, iface: str) -> dict:
    return next(x for h in report["hosts"] if h["name"] == host for x in h["links"] if x["iface"] == iface)


def test_lab_link_down_cuts_the_host_off_and_up_brings_it_back(lab):
    assert ping("hosta", "hostb")[0] == 3
    assert vpd_json("lab", "link", "hostb", "eth0", "down")["up"] is False
    try:
        assert link_of(vpd_json("lab", "status"), "hostb", "eth0")["up"] is False
        assert ping("hosta", "hostb", count=1)[0] == 0
        # The host's own NIC lost its carrier, as when a cable is pulled.
        assert on_host("hostb", "cat", "/sys/class/net/eth0/carrier", check=False).stdout.strip() in ("0", "")
    finally:
        vpd_json("lab", "link", "hostb", "eth0", "up")
    deadline = time.monotonic() + 5
    while ping("hosta", "hostb", count=1)[0] == 0 and time.monotonic() < deadline:
        pass
    assert ping("hosta", "hostb")[0] == 3


def test_lab_link_loss_and_delay(lab):
    # Values are checked before anything changes (every case: tests/fast/test_lab_links.py).
    for bad in (["loss", "101%"], ["delay", "10001"]):
        proc = vpd("lab", "link", "hostb", "eth0", *bad)
        assert proc.returncode == 2, (bad, proc.stderr)
    lossy = vpd_json("lab", "link", "hostb", "eth0", "loss", "100%")
    try:
        assert lossy["loss_pct"] == 100 and link_of(vpd_json("lab", "status"), "hostb", "eth0")["loss_pct"] == 100
        assert ping("hosta", "hostb", count=1)[0] == 0
    finally:
        cleared = vpd_json("lab", "link", "hostb", "eth0", "clear")
    assert cleared["up"] and not cleared["loss_pct"]
    assert ping("hosta", "hostb")[0] == 3
    base = min(ping("hosta", "hostb")[1])
    delayed = vpd("lab", "link", "hostb", "eth0", "delay", "80", "--json")
    if delayed.returncode != 0:
        # This kernel has no netem: the refusal must say so, and nothing may have changed.
        assert delayed.returncode == 1 and "netem" in delayed.stdout, delayed.stdout
        assert ping("hosta", "hostb")[0] == 3
        pytest.skip("the lab kernel has no netem qdisc: link delay cannot be emulated (docs/lab.md)")
    try:
        replies, rtts = ping("hosta", "hostb")
        assert replies == 3 and min(rtts) >= 80 > base
    finally:
        vpd_json("lab", "link", "hostb", "eth0", "clear")


@contextlib.contextmanager
def guest_channel(vm: str):
    with Connections() as conns:
        dom = conns.get(inventory.resolve().get("hosta")).lookupByName(vm)
        with ConsoleStream(dom, "serial1") as stream:
            ch = GuestChannel(stream.send, stream.recv)
            ch.wait_ready(timeout=30)
            yield ch


@pytest.fixture
def guest(lab):
    try:
        vpd_json("net", "create", NET, *HOSTA, "--mode", "isolated", "--subnet", NET_SUBNET)
        vpd_json("vm", "create", VM, *HOSTA, "--lab-guest", "--memory", "96")
        vpd_json("vm", "iface", "attach", VM, *HOSTA, "--network", NET, "--mac", MAC)
        vpd_json("vm", "start", VM, *HOSTA, "--wait-boot", timeout=180)
        yield VM
    finally:
        with Connections() as conns:
            conn = conns.get(inventory.resolve().get("hosta"))
            for dom in conn.listAllDomains():
                if dom.name() == VM:
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.destroy()
                    dom.undefine()
            for net in conn.listAllNetworks():
                if net.name() == NET:
                    with contextlib.suppress(libvirt.libvirtError):
                        net.destroy()
                    net.undefine()


def test_guest_nic_link_down_is_seen_by_the_guest(guest):
    rows = vpd_json("vm", "iface", "list", guest, *HOSTA)["interfaces"]
    assert [(r["mac"], r["link"]) for r in rows] == [(MAC, "up")]
    with guest_channel(guest) as ch:
        nic = ch.interface_with_mac(MAC)
        assert ch.run(f"cat /sys/class/net/{nic}/carrier").output.strip() == "1"
        down = vpd_json("vm", "iface", "link", guest, MAC, "down", *HOSTA)
        assert down["changed"] and down["live"] and down["config"]
        assert ch.run(f"cat /sys/class/net/{nic}/carrier").output.strip() == "0"
        assert vpd_json("vm", "iface", "link", guest, MAC, "down", *HOSTA)["changed"] is False
        dev = vpd_json("vm", "iface", "list", guest, *HOSTA)["interfaces"][0]
        assert dev["link"] == "down"
        # By its host-side device, as `virsh domif-setlink VM vnet0 up` names it.
        assert vpd_json("vm", "iface", "link", guest, dev["interface"], "up", *HOSTA)["changed"]
        assert ch.run(f"cat /sys/class/net/{nic}/carrier").output.strip() == "1"
    assert [op["target"] for op in vpd_json("journal", "--operation", "vm.iface.link", "--limit", "10")]


@pytest.fixture
def spare_links(lab):
    """hosta gets eth1 and eth2 on the lab LAN (what `vpd lab up --links 3` gives every host)."""
    state = control.load_state().host("hosta")
    host = LabHost(state.index, lab_dir())
    made = network.plug_extra_links(host, state.holder_pid, 3)
    try:
        yield ["eth1", "eth2"]
    finally:
        for name in made:
            network.unplug_name(name)


def test_host_bond_active_backup_survives_one_port_down(spare_links):
    bad = vpd("host", "bond", "create", "bond0", *HOSTA, "--mode", "balance-rr", "--ports", "eth1,eth2",
              "--primary", "eth1")
    assert bad.returncode == 2 and "--primary applies" in bad.stderr
    mgmt = vpd("host", "bond", "create", "bond0", *HOSTA, "--mode", "active-backup", "--ports", "eth0,eth1")
    assert mgmt.returncode == 2 and "management address" in mgmt.stderr
    has_bonding = on_host("hosta", "test", "-e", "/sys/class/net/bonding_masters", check=False).returncode == 0
    made = vpd("host", "bond", "create", "bond0", *HOSTA, "--mode", "active-backup", "--ports", "eth1,eth2",
               "--primary", "eth1", "--miimon", "100", "--json")
    if not has_bonding:
        assert made.returncode == 1 and "no bonding driver" in made.stdout, made.stdout
        assert "bond0" not in on_host("hosta", "ip", "-br", "link").stdout
        pytest.skip("the lab kernel has no bonding driver (CONFIG_BONDING unset, no modules): "
                    "host bond failover cannot run here (docs/lab.md)")
    assert made.returncode == 0, made.stderr
    try:
        st = vpd_json("host", "bond", "status", "bond0", *HOSTA)
        assert st["mode"] == "active-backup" and st["active_port"] == "eth1" and st["miimon"] == 100
        vpd_json("lab", "link", "hosta", "eth1", "down")
        deadline = time.monotonic() + 3
        while st["active_port"] != "eth2" and time.monotonic() < deadline:
            time.sleep(0.1)
            st = vpd_json("host", "bond", "status", "bond0", *HOSTA)
        ports = {p["name"]: p for p in st["ports"]}
        assert st["active_port"] == "eth2" and st["mii_status"] == "up"
        assert ports["eth1"]["mii_status"] == "down" and ports["eth1"]["link_failures"] >= 1
    finally:
        vpd("lab", "link", "hosta", "eth1", "up")
        vpd("host", "bond", "delete", "bond0", *HOSTA)
    assert "bond0" not in on_host("hosta", "ip", "-br", "link").stdout


def test_spare_links_are_named_as_lab_up_links_makes_them():
    assert outside_name("vpd1-hosta", 2) == "vpd1-hosta-3"
