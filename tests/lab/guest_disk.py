"""Talking to a lab guest about its disk: write and read a marker through its command channel."""
from __future__ import annotations

import contextlib

from vpd.lab import control, hostproc, layout
from vpd.vm.console import ConsoleStream
from vpd.vm.guest_channel import GuestChannel

# A sector well past the first MiB: sector 0 holds the disk's MBR (docs/lab.md, "The lab guest's disk").
SECTOR = 2048


@contextlib.contextmanager
def channel(conns, lab_inventory, vm: str, host: str = "hosta"):
    dom = conns.get(lab_inventory.get(host)).lookupByName(vm)
    with ConsoleStream(dom, "serial1") as stream:
        ch = GuestChannel(stream.send, stream.recv)
        ch.wait_ready(timeout=120)  # returns as soon as the guest answers; slow under load
        yield ch


def write_marker(ch: GuestChannel, text: str, sector: int = SECTOR) -> None:
    # fsync: snapshots and backups see only what reached the disk, not the guest's page cache.
    result = ch.run(f"echo {text} | dd of=/dev/sda bs=512 seek={sector} conv=notrunc,fsync")
    assert result.exit_code == 0, result.output


def read_marker(ch: GuestChannel, sector: int = SECTOR) -> str:
    # iflag=direct reads the disk itself, not what the guest cached before.
    result = ch.run(f"dd if=/dev/sda bs=512 skip={sector} count=1 iflag=direct 2>/dev/null | head -n1")
    assert result.exit_code == 0, result.output
    return result.output.strip()


def shared_pool_files(prefix: str) -> list[str]:
    """Files in the lab's shared pool as hosta sees them (the pool's path exists only inside hosts)."""
    hosta = control.load_state().hosts[0]
    out = hostproc.run_in_host(hosta.holder_pid, ["ls", layout.SHARED_MOUNT]).stdout
    return sorted(f for f in out.split() if f.startswith(prefix))
