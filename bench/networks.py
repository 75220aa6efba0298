"""On demand: virtual networks on a 2-host lab, vpd beside the virsh commands a learner types.

    .venv/bin/python -m bench.networks [--networks 20] [--runs 5]

(a) `vpd net list` over both hosts with --networks networks on each, beside the loop a learner
    scripts (virsh net-list, then net-info + net-dumpxml per network, per host);
(b) creating a network: `vpd net create` (checks the host's addresses, routes and networks,
    defines, starts, validates) beside `virsh net-define` + `net-start` of a hand-written file;
(c) a NIC hot-plugged into a running lab guest: seconds until its DHCP lease shows in
    `vpd net leases`;
(d) `vpd host bridge create` on a spare NIC (commit-confirmed), and on the management NIC with
    a firewall that drops the bridge's traffic: seconds until the host answers again.
Uses its own lab (VPD_LAB_NET=4 unless set); figures are printed and written to its section of docs/benchmarks.md."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VPD_LAB_NET", "4")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-net-"))

from bench.report import write_section  # noqa: E402
from vpd.connect import inventory  # noqa: E402
from vpd.connect.libvirt_conn import Connections  # noqa: E402
from vpd.core.paths import lab_dir  # noqa: E402
from vpd.lab import control, hostproc, network  # noqa: E402
from vpd.lab.layout import LabHost  # noqa: E402
from vpd.network import networks  # noqa: E402
from vpd.network.hostnet import host_network  # noqa: E402

VPD = [sys.executable, "-m", "vpd"]
NOTES = """Same 2-core machine, shared with other work while measured, TCG guests. vpd's figures are whole CLI
calls (a fresh Python process each, about 0.4 s of it); `net create` also reads the host's
addresses and routes over SSH before defining and checks the bridge after starting. (c) counts from
the `vpd vm iface attach` call until `vpd net leases` lists the MAC (the guest scans for new NICs
every second and retries DHCP every second). (d) is commit-confirmed: the change is kept only once
the host answers over new SSH and libvirt connections."""


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr or proc.stdout}")
    return proc


def vpd(*args: str, check: bool = True) -> dict:
    return json.loads(run([*VPD, *args, "--json"], check=check).stdout)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def virsh_listing(uris: list[str]) -> None:
    for uri in uris:
        names = run(["virsh", "-c", uri, "net-list", "--all", "--name"]).stdout.split()
        for name in names:
            run(["virsh", "-c", uri, "net-info", name])
            run(["virsh", "-c", uri, "net-dumpxml", name])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--networks", type=int, default=20, help="networks per host for the listing")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures: dict[str, str] = {}
    run([*VPD, "lab", "up", "--hosts", "2"])
    try:
        inv = inventory.resolve()
        uris = [h.uri for h in inv.hosts]
        # (a) many networks on both hosts, made in-process (setup, not measured)
        with Connections() as conns:
            for host in inv.hosts:
                hostnet = host_network(host)
                for i in range(args.networks):
                    spec = networks.NetworkSpec(f"bn{i}", "isolated", f"198.19.{100 + i}.0/24")
                    conns.call(host, lambda c, s=spec: networks.create(c, host, s, hostnet=hostnet))
        vpd_list = [timed(lambda: vpd("net", "list")) for _ in range(args.runs)]
        with Connections() as conns:
            networks.list_networks(conns, inv.hosts)  # connections opened: the CLI opens them too
            lib_list = [timed(lambda: networks.list_networks(conns, inv.hosts)) for _ in range(args.runs)]
        virsh_list = [timed(lambda: virsh_listing(uris)) for _ in range(max(1, args.runs // 2))]
        vpd_s, virsh_s = statistics.median(vpd_list), statistics.median(virsh_list)
        figures[f"(a) list 2 hosts x {args.networks} networks"] = (
            f"vpd net list {vpd_s:.2f} s (of which the listing itself, both hosts at once: "
            f"{statistics.median(lib_list) * 1000:.0f} ms; the rest is Python starting), virsh loop "
            f"{virsh_s:.2f} s ({virsh_s / vpd_s:.1f}x)")
        # (b) create one network
        vpd_create, virsh_create = [], []
        xml_file = Path(tempfile.mkstemp(suffix=".xml")[1])
        for i in range(args.runs):
            vpd_create.append(timed(lambda: vpd("net", "create", f"bc{i}", "--host", "hosta", "--mode", "nat",
                                                "--subnet", f"198.19.{200 + i}.0/24",
                                                "--dhcp", f"198.19.{200 + i}.10-198.19.{200 + i}.99")))
            spec = networks.NetworkSpec(f"bv{i}", "nat", f"198.19.{220 + i}.0/24",
                                        f"198.19.{220 + i}.10-198.19.{220 + i}.99")
            xml_file.write_text(spec.to_xml().to_xml_string())
            virsh_create.append(timed(lambda: (run(["virsh", "-c", uris[0], "net-define", str(xml_file)]),
                                               run(["virsh", "-c", uris[0], "net-start", f"bv{i}"]))))
        figures["(b) create a NAT network"] = (
            f"vpd net create {statistics.median(vpd_create):.2f} s (with checks and validation), "
            f"virsh net-define + net-start {statistics.median(virsh_create):.2f} s")
        # (c) hot-plugged NIC -> lease
        vpd("vm", "create", "bnguest", "--host", "hosta", "--lab-guest")
        vpd("vm", "start", "bnguest", "--host", "hosta", "--wait-boot")
        lease_s = []
        for i in range(args.runs):
            mac = f"52:54:00:be:00:{i:02x}"
            started = time.perf_counter()
            vpd("vm", "iface", "attach", "bnguest", "--host", "hosta", "--network", "bc0", "--mac", mac)
            while not any(lease["mac"] == mac for lease in vpd("net", "leases", "bc0")["leases"]):
                if time.perf_counter() - started > 120:
                    raise SystemExit("no lease within 120 s")
                time.sleep(0.2)
            lease_s.append(time.perf_counter() - started)
            vpd("vm", "iface", "detach", "bnguest", "--host", "hosta", "--mac", mac)
        figures["(c) hot-plugged NIC until its lease shows"] = (
            f"median {statistics.median(lease_s):.1f} s, range {min(lease_s):.1f}-{max(lease_s):.1f} s")
        # (d) host bridges
        state = control.load_state().host("hosta")
        network.plug_second_nic(LabHost(state.index, lab_dir()), state.holder_pid)
        spare = timed(lambda: vpd("host", "bridge", "create", "br0", "--iface", "eth1", "--host", "hosta"))
        hostb = control.load_state().host("hostb").holder_pid
        for argv in (["nft", "add", "table", "inet", "bench_drop"],
                     ["nft", "add", "chain", "inet", "bench_drop", "input",
                      "{ type filter hook input priority -10; policy accept; }"],
                     ["nft", "add", "rule", "inet", "bench_drop", "input", "iifname", "brm", "drop"]):
            hostproc.run_in_host(hostb, argv)
        rollback = timed(lambda: run([*VPD, "host", "bridge", "create", "brm", "--iface", "eth0", "--host", "hostb",
                                      "--force-management", "--confirm-timeout", "8"], check=False))
        hostproc.run_in_host(hostb, ["nft", "delete", "table", "inet", "bench_drop"])
        figures["(d) host bridge"] = (f"on a spare NIC, confirmed: {spare:.1f} s; on the management NIC behind a "
                                      f"dropping firewall, rolled back and answering again: {rollback:.1f} s "
                                      "(confirm timeout 8 s)")
    finally:
        run([*VPD, "lab", "down"], check=False)
    report = "\n".join(f"- {k}: {v}" for k, v in figures.items())
    print(report)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    write_section("networks", f"## Virtual networks and host bridges (issue 6, Práctica 5)\n\n"
                              f"Run {stamp} by `python -m bench.networks` on a 2-host lab.\n\n{report}\n\n{NOTES}")


if __name__ == "__main__":
    main()
