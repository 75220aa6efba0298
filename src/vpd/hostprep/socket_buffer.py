"""`host prepare`'s limit on a migration stream's unsent bytes (docs/benchmarks.md, "Migration
downtime parts").

Why: QEMU counts a page as sent once the kernel has taken it into the socket. With Linux's
defaults (`net.ipv4.tcp_notsent_lowat` unlimited, `tcp_wmem` up to 4 MiB) a pass can leave up to
4 MiB queued in the source's socket when QEMU stops the guest, and the destination must read all
of it before the switchover command: about 30 ms of pause at 1 Gbit/s, measured in QEMU's own
trace. A low-water mark of about a millisecond of the link keeps that queue short; the bytes in
flight (the congestion window) are not limited by it, so throughput is not either."""
from __future__ import annotations

from ..connect.inventory import Host
from .remote import Command, run, run_command
from .report import Change

SYSCTL = "net.ipv4.tcp_notsent_lowat"
PROC_PATH = "/proc/sys/net/ipv4/tcp_notsent_lowat"
CONF_PATH = "/etc/sysctl.d/90-vpd-migration.conf"
# The smallest mark worth setting: below it the migration thread wakes for every few packets.
MIN_LOWAT = 128 * 1024
DEFAULT_LINK_MBIT = 1000


def lowat_bytes(link_mbit: int | None) -> int:
    """About 1 ms of the host's link (the inventory's `link_mbit`, else 1 Gbit/s), at least
    MIN_LOWAT: what the socket may hold unsent, so a stopped guest's last pass is not stuck
    behind megabytes of the previous one."""
    mbit = link_mbit if link_mbit and link_mbit > 0 else DEFAULT_LINK_MBIT
    return max(MIN_LOWAT, mbit * 1_000_000 // 8 // 1000)


def conf_text(value: int) -> str:
    return (f"# Written by `vpd host prepare`; `vpd host unprepare` removes it.\n"
            f"# Caps a TCP socket's unsent bytes, so a live migration's pause does not wait for\n"
            f"# megabytes still queued on the source.\n{SYSCTL} = {value}\n")


def _current(host: Host) -> int | None:
    """The host's mark now; None where the kernel has none to read (or it reads oddly)."""
    result = run(host, ["cat", PROC_PATH], check=False, reads=True)
    try:
        return int(result.stdout.strip()) if result.ok else None
    except ValueError:
        return None


def plan(host: Host) -> tuple[Change | None, str]:
    """The change that sets the mark on `host` (now and at boot), or None with a note when the
    host already has one at least as low (an admin's choice, left alone)."""
    wanted = lowat_bytes(host.link_mbit)
    current = _current(host)
    if current is None:
        return None, f"{PROC_PATH} cannot be read on {host.name}: {SYSCTL} left alone"
    if current <= wanted:
        return None, f"{SYSCTL} is already {current} (vpd would set {wanted}): left as it is"
    existing = run(host, ["cat", CONF_PATH], check=False, reads=True)
    commands = [Command(("tee", CONF_PATH), conf_text(wanted)), Command(("sysctl", "-w", f"{SYSCTL}={wanted}"))]
    record = {"kind": "sysctl", "key": SYSCTL, "old": current, "new": wanted, "file": CONF_PATH,
              "file_before": existing.stdout if existing.ok else None}
    return Change(host, "sysctl", f"set {SYSCTL} = {wanted} (was {current}) and keep it in {CONF_PATH}",
                  commands, record), ""


def undo(host: Host, record: dict) -> Change | None:
    """Put the old value back unless someone changed it since, and the file as it was."""
    commands = []
    if _current(host) == record["new"]:
        commands.append(Command(("sysctl", "-w", f"{record['key']}={record['old']}")))
    before = record.get("file_before")
    now = run(host, ["cat", record["file"]], check=False, reads=True)
    if now.ok and now.stdout == conf_text(record["new"]):
        commands.append(Command(("tee", record["file"]), before) if before is not None
                        else Command(("rm", "-f", "--", record["file"])))
    for command in commands:
        run_command(host, command)
    if not commands:
        return None
    return Change(host, "sysctl", f"restore {record['key']} = {record['old']}", commands)
