"""Práctica 8 on the session lab: a lab host's link cut and restored (`vpd lab link`), measured
by pings between hosts; loss and delay on a link; a guest NIC's link set down and up
(`vpd vm iface link`, libvirt's domif-setlink) as the guest sees it; a bond inside a lab guest
(`vm create --network ... --network ... --bond`): active-backup loses at most 100 ms of a 10 ms ping
from the host when its active port's cable is pulled, `vm bond status` names the new active port,
and the same bond switched to balance-rr sends on both ports; `vpd net perf` (iperf3) into the guest
and between two lab hosts; and a host bond in active-backup over two spare links that survives one
port going down.

Kernel limits found in this sandbox (docs/lab.md, "Link faults and bonds"): no netem (delay is
refused, loss goes through nftables) and no bonding driver (the bond is refused with the reason,
and the failover part is skipped saying so). The lab guest boots its own kernel, whose bonding
module it loads: guest bonds run for real."""
from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import threading
import time

import libvirt
import pytest

from vpd.connect import inventory
from vpd.connect.libvirt_conn import Connections
from vpd.core.paths import lab_dir
from vpd.lab import control, hostproc, network
from vpd.lab.hostproc import HOST_ENV
from vpd.lab.layout import LabHost
from vpd.lab.links import outside_name
from vpd.network.bond import BondStatus, parse_proc_bonding
from vpd.network.ifaces import set_link as set_iface_link
from vpd.vm.console import ConsoleStream
from vpd.vm.guest_channel import GuestChannel

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab

HOSTA = ("--host", "hosta")
NET, NET_SUBNET, VM, MAC, MAC2 = "pbond", "198.19.48.0/24", "bondg", "52:54:00:48:00:0a", "52:54:00:48:00:0b"
ADDR = "198.19.48.10"
MACS = (MAC, MAC2)
INTERVAL_MS = 10


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


@pytest.fixture(scope="module")
def guest(lab):
    """One lab guest for the module, as the seed's P8 VM: two virtio NICs on one network, bonded
    inside (active-backup, told on its kernel command line), with iperf3."""
    try:
        vpd_json("net", "create", NET, *HOSTA, "--mode", "isolated", "--subnet", NET_SUBNET)
        vpd_json("vm", "create", VM, *HOSTA, "--lab-guest", "--iperf3", "--memory", "96",
                 "--network", f"network={NET},mac={MAC}", "--network", f"network={NET},mac={MAC2}",
                 "--bond", f"bond0:mode=active-backup,miimon=100,primary=eth0,ports=all,addr={ADDR}/24",
                 "--start", "--wait-boot", timeout=180)
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
    assert [(r["mac"], r["link"]) for r in rows] == [(MAC, "up"), (MAC2, "up")]
    with guest_channel(guest) as ch:
        # The bond gives itself and both ports eth0's MAC, so the NIC is named by its order: the
        # first --network is eth0 (its permanent address says so).
        nic = "eth0"
        ports = parse_proc_bonding(ch.run("cat /proc/net/bonding/bond0").output).ports
        assert [(p.name, p.permanent_mac) for p in ports] == [("eth0", MAC), ("eth1", MAC2)]
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


@contextlib.contextmanager
def pinging(address: str):
    """A busybox ping every 10 ms from lab host hosta; yields the list of sequence numbers
    that got a reply, growing as replies come (read by a thread)."""
    pid = control.load_state().host("hosta").holder_pid
    proc = subprocess.Popen(["nsenter", "-t", str(pid), "-m", "-u", "-n", "-p", "--wd=/", "--", "busybox", "ping",
                             "-i", str(INTERVAL_MS / 1000), "-W", "1", address],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=HOST_ENV)
    replied: list[int] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := re.search(r"seq=(\d+) ", line):
                replied.append(int(m.group(1)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield replied
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)


def wait_for(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def status() -> dict:
    return vpd_json("vm", "bond", "status", VM, *HOSTA)


def set_link(mac: str, state: str) -> None:
    """What `vpd vm iface link VM MAC STATE --live` does (its CLI is tested above),
    in this process: a vpd process per cut would cost the suite seconds, not the guest."""
    with Connections() as conns:
        host = inventory.resolve().get("hosta")
        set_iface_link(conns.get(host).lookupByName(VM), host, mac, state, live=True, config=False)


def bond_in(ch: GuestChannel) -> BondStatus:
    return parse_proc_bonding(ch.run("cat /proc/net/bonding/bond0").output)


def tx_packets(ch: GuestChannel) -> dict[str, int]:
    return {p: int(ch.run(f"cat /sys/class/net/{p}/statistics/tx_packets").output) for p in ("eth0", "eth1")}


def test_active_backup_fails_over_within_100_ms_and_balance_rr_uses_every_port(guest):
    with guest_channel(VM) as ch:
        # After the test above, eth0 (the primary) takes over again once it is back up.
        st = wait_for(lambda: (b := bond_in(ch)).active_port == "eth0" and b, "eth0 to be the active port")
    assert st.mode == "active-backup" and st.miimon == 100 and st.primary == "eth0" and st.active_port == "eth0"
    assert [p.name for p in st.ports] == ["eth0", "eth1"] and all(p.mii_status == "up" for p in st.ports)

    with pinging(ADDR) as replied:
        wait_for(lambda: len(replied) >= 50, "replies before the cut")
        set_link(MACS[0], "down")
        cut_at = len(replied)
        with guest_channel(VM) as ch:
            wait_for(lambda: bond_in(ch).active_port == "eth1", "the backup port to take over")
        wait_for(lambda: len(replied) >= cut_at + 50, "replies through the backup port")
        replied = list(replied)
    # The longest run of lost packets around the cut, with traffic on the backup after it.
    lost = max(b - a - 1 for a, b in zip(replied, replied[1:], strict=False))
    print(f"active-backup failover: {lost} pings lost at {INTERVAL_MS} ms ({lost * INTERVAL_MS} ms)")
    assert lost * INTERVAL_MS <= 100, f"{lost} pings lost at {INTERVAL_MS} ms"
    after = status()
    assert after["mode"] == "active-backup" and after["miimon"] == 100 and after["primary"] == "eth0"
    assert after["active_port"] == "eth1" and after["via"] == "channel"
    assert [p["name"] for p in after["ports"]] == ["eth0", "eth1"] and after["ports"][1]["mii_status"] == "up"
    # Every port carries the bond's MAC in active-backup: eth0's own is its permanent one.
    assert after["ports"][0]["permanent_mac"] == MACS[0]
    assert after["ports"][0]["mii_status"] == "down" and after["ports"][0]["link_failures"] >= 1
    set_link(MACS[0], "up")

    with guest_channel(VM) as ch:
        wait_for(lambda: all(p.mii_status == "up" for p in bond_in(ch).ports), "eth0 to come back")
        # The same bond as balance-rr, switched inside the guest by the script its init uses.
        switched = ch.run(f"vpd-bond bond0:mode=balance-rr,miimon=100,ports=eth0+eth1,addr={ADDR}/24")
        assert switched.exit_code == 0, switched.output
        assert bond_in(ch).mode == "balance-rr"
        before = tx_packets(ch)
        with pinging(ADDR) as replied:
            wait_for(lambda: len(replied) >= 100, "100 replies over the balance-rr bond")
            count = len(replied)
        rose = {port: n - before[port] for port, n in tx_packets(ch).items()}
    # Round robin: the replies leave by both ports, about half each.
    assert all(n >= count // 4 for n in rose.values()), rose

    # iperf3 into the guest from its host, over the bond (the guest's address on the isolated
    # network is found by itself).
    r = vpd_json("net", "perf", "hosta", VM, "--time", "1")
    assert r["dst_kind"] == "vm" and r["dst_address"] == ADDR and r["gbit_s"] > 0


def test_net_perf_between_two_lab_hosts(lab):
    r = vpd_json("net", "perf", "hosta", "hostb", "--parallel", "2", "--time", "1")
    assert r["streams"] == 2 and r["gbit_s"] > 0 and r["retransmits"] is not None
    assert r["cpu_client_pct"] is not None and r["cpu_server_pct"] is not None
    # The server ran for that one test and is gone.
    pid = control.load_state().host("hostb").holder_pid
    left = subprocess.run(["nsenter", "-t", str(pid), "-p", "-m", "--", "ps", "-eo", "comm="], capture_output=True,
                          text=True, env=HOST_ENV, check=True).stdout.split()
    assert "iperf3" not in left


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
