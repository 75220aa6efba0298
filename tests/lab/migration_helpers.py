"""What the migration fault and cold-migration tests share: lab guests with a
marked disk, `vpd migrate` run as a subprocess, and the checks that a failed
migration left everything where it was."""
from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import libvirt

from vpd.connect import inventory as inv
from vpd.connect.libvirt_conn import open_connection
from vpd.core.errors import VpdError
from vpd.hostprep.ports import port_range_text
from vpd.lab import control, hostproc
from vpd.migration.validate import guest_probe
from vpd.vm.console import ConsoleStream
from vpd.vm.guest_channel import GuestChannel

from .conftest import VPD, vpd, vpd_json

SHARED_POOL = "CONT_VOL_COMP"
# Random bytes over the first MiB of the guest's disk: what guest_probe checksums.
MARK_DISK = "dd if=/dev/urandom of=/dev/sda bs=64k count=16 conv=fsync 2>&1"


def holder(host: str) -> int:
    return control.load_state().host(host).holder_pid


def connect(host: str) -> libvirt.virConnect:
    return open_connection(inv.resolve().get(host))


def wait_for_libvirt(host: str, timeout: float = 120) -> None:
    """Until the host's libvirtd answers (a restarted one reconnects to its QEMUs first, slower
    under load: the deadline is generous, the wait ends as soon as it answers)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connect(host).close()
            return
        except VpdError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def kill_libvirtd(host: str) -> None:
    """SIGKILL the host's libvirtd (its QEMUs and their jobs live on without it)."""
    daemon = hostproc.host_path(holder(host), "/run/libvirtd.pid").read_text().split()[0]
    hostproc.run_in_host(holder(host), ["kill", "-9", daemon])


def start_libvirtd(host: str) -> None:
    """Start the host's libvirtd as `vpd lab up` does (lab/control.py, _start_daemons); wait until it answers."""
    hostproc.run_in_host(holder(host), ["libvirtd", "-d", "--listen", "-p", "/run/libvirtd.pid"])
    wait_for_libvirt(host)


@contextmanager
def migration_ports_open(src: str = "hosta", dst: str = "hostb") -> Iterator[None]:
    """Open DST's migration range to SRC for the body, then close it again (by rule handle,
    so a rule someone else added stays)."""
    address = control.load_state().host(src).address
    added = hostproc.run_in_host(holder(dst), ["nft", "-e", "-a", "insert", "rule", "inet", "vpd_lab_host", "input",
                                               "ip", "saddr", address, "tcp", "dport", port_range_text(), "accept"])
    handle = added.stdout.split("# handle ")[1].split()[0]
    try:
        yield
    finally:
        hostproc.run_in_host(holder(dst), ["nft", "delete", "rule", "inet", "vpd_lab_host", "input",
                                           "handle", handle])


def create_guest(name: str, host: str = "hosta", *, pool: str = SHARED_POOL, memory_mib: int | None = None,
                 dirty: str | None = None) -> dict:
    """A running lab guest with a 16 MiB disk in `pool`."""
    argv = ["vm", "create", name, "--host", host, "--lab-guest", "--disk", f"size=16M,pool={pool}",
            "--start", "--wait-boot"]
    if memory_mib:
        argv += ["--memory", str(memory_mib)]
    if dirty:
        argv += ["--dirty", dirty]
    return vpd_json(*argv)


def remove_guest(name: str, hosts: tuple[str, ...] = ("hosta", "hostb")) -> None:
    for host in hosts:
        vpd("vm", "destroy", name, "--host", host)
        vpd("vm", "undefine", name, "--host", host, "--remove-storage")


def mark_disk(dom: libvirt.virDomain) -> dict:
    """Fill the first MiB of the guest's disk with random bytes; the guest's own view after it."""
    with ConsoleStream(dom, "serial1") as stream:
        channel = GuestChannel(stream.send, stream.recv)
        channel.wait_ready(timeout=120)  # as soon as it answers; slow under load
        result = channel.run(MARK_DISK, timeout=120)
        assert result.exit_code == 0, result.output
    return guest_probe(dom)


def where(name: str) -> dict[str, str]:
    """host -> state of every domain by that name, from `vpd vm list --all`."""
    hosts = vpd_json("vm", "list", "--all")["hosts"]
    assert all(h["error"] is None for h in hosts), hosts
    return {h["host"]: v["state"] for h in hosts for v in h["vms"] if v["name"] == name}


def open_grants() -> list[dict]:
    return [g for g in vpd_json("access", "list")["grants"] if g["state"] in ("active", "revoke-pending")]


def qemu_processes(host: str, uuid: str) -> list[str]:
    """QEMU processes of that guest inside a lab host, whatever its libvirtd knows."""
    ps = hostproc.run_in_host(holder(host), ["ps", "-eo", "pid,args"]).stdout.splitlines()
    return [line for line in ps if f"-uuid {uuid}" in line]


class Migration:
    """`vpd migrate NAME --json` in the background, as a user would run it."""

    def __init__(self, name: str, *args: str):
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*VPD, "migrate", name, "--json", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def wait_for_job(self, dom: libvirt.virDomain, min_bytes: int = 2 * 2**20, timeout: float = 180) -> None:
        """Until libvirt's job on the source runs and has sent min_bytes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"vpd migrate ended before its job ran: {self.finish()}"
            stats = dom.jobStats(0)
            if stats.get("type") == libvirt.VIR_DOMAIN_JOB_UNBOUNDED and stats.get("data_processed", 0) >= min_bytes:
                return
            time.sleep(0.1)
        raise AssertionError(f"no migration job on the source within {timeout} s")

    def finish(self, timeout: float = 180) -> tuple[int, dict | None, str]:
        """(exit code, the JSON report if one was printed, stderr)."""
        out, err = self.proc.communicate(timeout=timeout)
        report = json.loads(out) if out.strip() else None
        return self.proc.returncode, report, err


def assert_only_on_source(name: str, uuid: str, before: dict, dom: libvirt.virDomain,
                          src: str = "hosta", dst: str = "hostb", dst_state: str | None = None) -> None:
    """After a failed migration: the guest runs on the source only, the same boot, with
    its disk as it was; the destination holds what it held before (`dst_state`, or
    nothing) and no QEMU of the guest; no grant is left open."""
    expected = {src: "running", **({dst: dst_state} if dst_state else {})}
    assert where(name) == expected
    assert qemu_processes(dst, uuid) == []
    assert open_grants() == []
    after = guest_probe(dom)
    assert after["boot_id"] == before["boot_id"], "the guest rebooted"
    assert after["uptime"] > before["uptime"]
    assert after["disk_sha256"] == before["disk_sha256"], "the guest's disk changed"
    if before["dirty"] is not None:
        assert after["dirty"].errors == 0 and after["dirty"].generation > before["dirty"].generation
