"""What the HA lab tests look at, from outside the cluster: where a VM runs
according to each host's own libvirt (entered through the host's namespaces, so
a host cut off the network is still seen), and the guest's own word."""
from __future__ import annotations

import contextlib
import time

import libvirt

from vpd.connect import inventory as inv
from vpd.connect.libvirt_conn import open_connection
from vpd.core.errors import VpdError
from vpd.lab import control, hostproc
from vpd.vm.console import ConsoleStream
from vpd.vm.guest_channel import GuestChannel

# A sector well past the first MiB: sector 0 holds the disk's MBR (docs/lab.md, "The lab guest's disk").
SECTOR = 4096


def running_on(vm: str) -> list[str]:
    """Every powered lab host whose libvirt runs `vm` (asked inside the host)."""
    out = []
    for hs in control.load_state().hosts:
        if not (hs.powered and hostproc.alive(hs.holder_pid)):
            continue
        try:
            names = hostproc.run_in_host(hs.holder_pid, ["virsh", "-c", "qemu:///system", "list", "--name"],
                                         check=False, timeout=20).stdout.split()
        except Exception:  # the host died between the two calls
            continue
        if vm in names:
            out.append(hs.name)
    return out


def wait_running_on(vm: str, host: str, timeout: float = 120.0, samples: list | None = None) -> float:
    """Seconds until `vm` runs on `host` (and only there); every sample is kept."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        where = running_on(vm)
        if samples is not None:
            samples.append(where)
        if where == [host]:
            return time.monotonic() - start
        time.sleep(0.3)
    raise AssertionError(f"{vm} not running on {host} within {timeout} s (last seen on {running_on(vm)})")


def _console(dom, deadline: float) -> ConsoleStream:
    """A guest that pacemaker just started may not have its PTY yet."""
    while True:
        try:
            return ConsoleStream(dom, "serial1")
        except VpdError as exc:
            if "not yet assigned" not in exc.message or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def channel(vm: str, host: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    conn = open_connection(inv.resolve().get(host))
    try:
        dom = conn.lookupByName(vm)
        with _console(dom, deadline) as stream:
            ch = GuestChannel(stream.send, stream.recv)
            ch.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
            yield ch
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def boot_id(vm: str, host: str) -> str:
    with channel(vm, host) as ch:
        return ch.boot_id()


def write_disk_marker(vm: str, host: str, text: str) -> None:
    with channel(vm, host) as ch:
        result = ch.run(f"echo {text} | dd of=/dev/sda bs=512 seek={SECTOR} conv=notrunc,fsync")
        assert result.exit_code == 0, result.output


def read_disk_marker(vm: str, host: str) -> str:
    with channel(vm, host) as ch:
        result = ch.run(f"dd if=/dev/sda bs=512 skip={SECTOR} count=1 iflag=direct 2>/dev/null | head -n1")
        assert result.exit_code == 0, result.output
        return result.output.strip()


def in_host(name: str, argv: list[str]):
    hs = control.load_state().host(name)
    return hostproc.run_in_host(hs.holder_pid, argv, check=False, timeout=30)


def cluster_processes(name: str) -> list[str]:
    out = in_host(name, ["ps", "-eo", "comm="]).stdout.split()
    return [p for p in out if p in ("corosync", "pacemakerd", "pacemaker-based", "pacemaker-controld")]
