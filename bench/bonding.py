"""On demand: Práctica 8's bonding figures, in one run, between two lab guests.

    .venv/bin/python -m bench.bonding [--time 5] [--cuts 10]

Two lab guests (made with `vpd vm create --lab-guest --iperf3`) on lab host hosta are joined by
three point-to-point virtual cables (QEMU UDP sockets, libvirt `<interface type='udp'>`): eth0 and
eth1 are bonded at both ends, eth2 is a single NIC beside them. Cables rather than a libvirt
network because 802.3ad needs LACP from the peer, and a Linux bridge never forwards LACP frames
(01:80:c2:00:00:02 is in the bridge's restricted group_fwd_mask): the peer bond is the other guest.

For balance-rr (0), active-backup (1) and 802.3ad (4), both guests' bonds are switched to the mode
(`vpd-bond` inside them), then:
- iperf3 throughput guest A -> guest B with -P 1 and -P 3 (`vpd net perf`), beside the single NIC;
- failover: a 10 ms ping from A to B runs while the bond's active port (eth0 and eth1 in turn for
  the other modes) is cut --cuts times, at both ends at once as a pulled cable is (libvirt's link state, what
  `vpd vm iface link` sets), and restored once the bond has noticed; lost pings per cut.
The seed's figures (23.7 Gbit/s active-backup, 20.6 balance-rr) are from its own hardware; here the
guests are TCG-emulated on a shared 2-core machine, so only ratios compare.
Uses its own lab (VPD_LAB_NET=4 unless set); written to its section of docs/benchmarks.md."""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import statistics
import sys
import tempfile
import time

os.environ.setdefault("VPD_LAB_NET", "4")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-bond-"))

from lxml import etree  # noqa: E402

from bench.common import vpd  # noqa: E402
from bench.report import write_section  # noqa: E402
from vpd.connect import inventory  # noqa: E402
from vpd.connect.libvirt_conn import Connections  # noqa: E402
from vpd.network.bond import parse_proc_bonding  # noqa: E402
from vpd.network.ifaces import set_link  # noqa: E402
from vpd.vm.console import ConsoleStream  # noqa: E402
from vpd.vm.guest_channel import GuestChannel  # noqa: E402

HOST = ("--host", "hosta")
GUESTS = ("bba", "bbb")
BOND_NET = {"bba": "198.19.51.1/24", "bbb": "198.19.51.2/24"}
SINGLE_NET = {"bba": "198.19.52.1/24", "bbb": "198.19.52.2/24"}
MACS = {g: [f"52:54:00:51:{i:02x}:{n:02x}" for n in range(3)] for i, g in enumerate(GUESTS)}
UDP_BASE = 41000
MODES = {"balance-rr": "", "active-backup": ",primary=eth0", "802.3ad": ",lacp_rate=fast,xmit_hash_policy=layer3+4"}
SEED_GBIT = {"active-backup": 23.7, "balance-rr": 20.6}
INTERVAL_MS = 10


def cables(dom_xml: str, guest: str) -> str:
    """The domain with its NICs replaced by three UDP cables to the other guest (ports by cable)."""
    root = etree.fromstring(dom_xml.encode())
    devices = root.find("devices")
    for old in devices.findall("interface"):
        devices.remove(old)
    me = GUESTS.index(guest)
    for n in range(3):
        nic = etree.SubElement(devices, "interface", type="udp")
        etree.SubElement(nic, "mac", address=MACS[guest][n])
        # Cable n: A sends to B's port and listens on its own, and the other way round.
        source = etree.SubElement(nic, "source", address="127.0.0.1", port=str(UDP_BASE + 2 * n + (1 - me)))
        etree.SubElement(source, "local", address="127.0.0.1", port=str(UDP_BASE + 2 * n + me))
        etree.SubElement(nic, "model", type="virtio")
    # 802.3ad aggregates only full-duplex ports of a known speed; virtio-net reports neither
    # unless QEMU is told (VIRTIO_NET_F_SPEED_DUPLEX), and libvirt's XML has no element for it.
    ns = "http://libvirt.org/schemas/domain/qemu/1.0"
    root = etree.fromstring(etree.tostring(root).replace(b"<domain ", f'<domain xmlns:qemu="{ns}" '.encode(), 1))
    line = etree.SubElement(root, f"{{{ns}}}commandline")
    for arg in ("-global", "virtio-net-device.speed=10000", "-global", "virtio-net-device.duplex=full"):
        etree.SubElement(line, f"{{{ns}}}arg", value=arg)
    return etree.tostring(root).decode()


@contextlib.contextmanager
def channel(conn, guest: str):
    with ConsoleStream(conn.lookupByName(guest), "serial1") as stream:
        ch = GuestChannel(stream.send, stream.recv)
        ch.wait_ready(timeout=60)
        yield ch


def wait_for(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def configure(conn, mode: str) -> None:
    for g in GUESTS:
        with channel(conn, g) as ch:
            spec = f"bond0:mode={mode},miimon=100{MODES[mode]},ports=eth0+eth1,addr={BOND_NET[g]}"
            out = ch.run(f"vpd-bond {spec}")
            if out.exit_code != 0:
                raise SystemExit(f"{g}: vpd-bond failed: {out.output}")
    with channel(conn, "bba") as ch:
        wait_for(lambda: ch.run(f"ping -c 1 -W 1 {BOND_NET['bbb'].split('/')[0]}").exit_code == 0,
                 f"{mode} bond to carry pings", timeout=90)


def throughput(address: str, parallel: int, seconds: int) -> float:
    """Mbit/s received."""
    return 1000 * vpd("net", "perf", "bba", "bbb", "--parallel", str(parallel), "--time", str(seconds),
               "--address", address)["gbit_s"]


GAP_AWK = ("sed -n 's/.*seq=\\([0-9]*\\) .*/\\1/p' /tmp/ping.log | "
           "awk 'NR > 1 && $1 - p - 1 > m { m = $1 - p - 1 } { p = $1 } END { print m + 0, NR }'")


def failover(conn, host, mode: str, cuts: int) -> list[int]:
    """Pings lost at each cut: the longest run of missing replies in A's ping log, which is
    emptied before each cut (ping appends to it), so the serial line never carries the whole log."""
    doms = {g: conn.lookupByName(g) for g in GUESTS}
    target = BOND_NET["bbb"].split("/")[0]
    lost = []
    with channel(conn, "bba") as ch:
        def gap_and_count() -> tuple[int, int]:
            gap, count = ch.run(GAP_AWK).output.split()
            return int(gap), int(count)

        def bond():
            return parse_proc_bonding(ch.run("cat /proc/net/bonding/bond0").output)

        ch.run(f"rm -f /tmp/ping.log; ping -i {INTERVAL_MS / 1000} {target} >>/tmp/ping.log 2>&1 & "
               "echo $! >/tmp/ping.pid")
        try:
            for i in range(cuts):
                ch.run(": >/tmp/ping.log")
                wait_for(lambda: gap_and_count()[1] >= 30, "pings before a cut")
                # Hashing and round robin use both ports: the cuts alternate between them.
                port = bond().active_port if mode == "active-backup" else f"eth{i % 2}"
                n = int(port.removeprefix("eth"))
                for g in GUESTS:
                    set_link(doms[g], host, MACS[g][n], "down", live=True, config=False)
                wait_for(lambda: next(p for p in bond().ports if p.name == port).mii_status == "down",
                         "the bond to see the cut")
                wait_for(lambda: gap_and_count()[1] >= 80, "pings after the cut")
                lost.append(gap_and_count()[0])
                for g in GUESTS:
                    set_link(doms[g], host, MACS[g][n], "up", live=True, config=False)
                wait_for(lambda: all(p.mii_status == "up" for p in bond().ports), "the port to come back")
                if mode == "802.3ad":
                    # The port rejoins the aggregator only after a LACP exchange (1 s at rate fast).
                    wait_for(lambda: len(set(re.findall(r"Aggregator ID: (\d+)",
                                                        ch.run("cat /proc/net/bonding/bond0").output))) == 1,
                             "the port to rejoin the aggregator")
        finally:
            ch.run("kill $(cat /tmp/ping.pid)")
    return lost


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time", type=int, default=5, help="seconds per iperf3 run")
    parser.add_argument("--cuts", type=int, default=10)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, of " + ", ".join(MODES))
    args = parser.parse_args()
    rows: list[tuple[str, float, float, str]] = []
    load_before = os.getloadavg()[0]
    vpd("lab", "up", "--hosts", "2")
    try:
        vpd("net", "create", "bbnet", *HOST, "--mode", "isolated", "--subnet", "198.19.53.0/24")
        inv = inventory.resolve()
        host = inv.get("hosta")
        with Connections() as conns:
            conn = conns.get(host)
            for g in GUESTS:
                first = BOND_NET[g]
                vpd("vm", "create", g, *HOST, "--lab-guest", "--iperf3", "--memory", "192",
                    *[a for m in MACS[g] for a in ("--network", f"network=bbnet,mac={m}")],
                    "--bond", f"bond0:mode=active-backup,miimon=100,primary=eth0,ports=eth0+eth1,addr={first}")
                conn.defineXML(cables(conn.lookupByName(g).XMLDesc(0), g))
                vpd("vm", "start", g, *HOST, "--wait-boot", timeout=300)
                with channel(conn, g) as ch:
                    ch.run(f"touch /run/vpd/no-dhcp-eth2; ip addr add {SINGLE_NET[g]} dev eth2; ip link set eth2 up")
            single = SINGLE_NET["bbb"].split("/")[0]
            with channel(conn, "bba") as ch:
                wait_for(lambda: ch.run(f"ping -c 1 -W 1 {single}").exit_code == 0, "the single NIC")
            s1, s3 = throughput(single, 1, args.time), throughput(single, 3, args.time)
            rows.append(("single NIC (eth2)", s1, s3, "(a cut is an outage)"))
            print(rows[-1], file=sys.stderr)
            for mode in args.modes.split(","):
                configure(conn, mode)
                bonded = BOND_NET["bbb"].split("/")[0]
                p1, p3 = throughput(bonded, 1, args.time), throughput(bonded, 3, args.time)
                lost = failover(conn, host, mode, args.cuts)
                ms = [n * INTERVAL_MS for n in lost]
                rows.append((mode, p1, p3, f"median {statistics.median(ms):.0f} ms, max {max(ms)} ms "
                                           f"({sum(lost)} pings lost over {len(lost)} cuts)"))
                print(rows[-1], file=sys.stderr)
    finally:
        vpd("lab", "down", check=False)
    table = ["| link | iperf3 -P 1 (Mbit/s) | -P 3 (Mbit/s) | failover at a cut (10 ms pings lost) |",
             "|---|---|---|---|"]
    table += [f"| {name} | {p1:.1f} | {p3:.1f} | {fail} |" for name, p1, p3, fail in rows]
    by_mode = {name: p3 for name, _, p3, _ in rows}
    seed_ratio = SEED_GBIT["active-backup"] / SEED_GBIT["balance-rr"]
    ours = (by_mode["active-backup"] / by_mode["balance-rr"] if by_mode.get("balance-rr") and "active-backup" in by_mode
            else float("nan"))
    ratios = (f"Active-backup / balance-rr with -P 3: {ours:.2f} here, {seed_ratio:.2f} in the seed "
              f"({SEED_GBIT['active-backup']} vs {SEED_GBIT['balance-rr']} Gbit/s on its own machine). "
              f"Bond / single NIC (-P 3): " + ", ".join(
                  f"{m} {by_mode[m] / rows[0][2]:.2f}" for m in MODES if m in by_mode and rows[0][2]))
    load = (f"Load average of the 2-core machine (shared with other work): {load_before:.1f} before the run, "
            f"{os.getloadavg()[0]:.1f} after it.")
    report = "\n".join(table) + "\n\n" + ratios + "\n\n" + load
    print(report)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    write_section("bonding", f"## Bonding: throughput and failover (issue 16, Práctica 8)\n\n"
                             f"Run {stamp} by `python -m bench.bonding --time {args.time} --cuts {args.cuts}` on a "
                             f"2-host lab.\n\n{report}\n\n{NOTES}")


NOTES = """Two lab guests (TCG, 1 vCPU, 192 MiB each) on one lab host, joined by three point-to-point
QEMU UDP cables: eth0+eth1 bonded at both ends (miimon 100 ms; 802.3ad with lacp_rate fast and
layer3+4 hashing, so -P 3 can spread), eth2 alone. Throughput is `vpd net perf` (iperf3, received
rate), so it is bound by the emulated CPUs, not by the cables: a bond cannot beat one NIC here the way
it can on hardware, and the seed's absolute Gbit/s do not compare. On a loaded machine one
iperf3 run of a few seconds varies by more than the modes differ (compare -P 1 with -P 3 of the
same link), so the throughput ratios here do not rank the modes; the failover figures do, being
counted in pings, not in CPU time. A cut sets the port's
link down at both guests at once (as a pulled cable), and the lost pings are the longest run of
missing replies from A's 10 ms ping around that cut (miimon 100 ms bounds the detection). In
balance-rr and 802.3ad the cuts alternate between eth0 and eth1; 802.3ad hashes each direction of
the ping onto one port, so a cut of a port that carries neither loses nothing."""


if __name__ == "__main__":
    main()
