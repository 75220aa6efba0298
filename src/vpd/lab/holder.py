"""PID 1 of a lab host: run inside `unshare --net --mount --uts --pid`.

It builds the host's private view of the machine (sysfs for its own network
namespace, overlays on /etc, /usr and the cluster's state directories, a tmpfs
/run, per-host directories bound over /etc/libvirt, /var/lib/libvirt, ...),
sets the hostname, configures eth0 once the lab has plugged the veth in, then
reaps orphans for as long as the host is "powered".
Killing it powers the host off: the kernel kills every process of its PID
namespace, and its mounts and network namespace go with them.

Protocol with the parent on stdin/stdout, one line each:
  holder -> "mounted"          parent plugs the veth in as eth0
  parent -> "configure ADDR/P"  holder -> "ready" (or "error: ...")
"""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# The device nodes a lab host needs (name, major, minor), like a minimal container /dev.
DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
           ("tty", 5, 0), ("net/tun", 10, 200), ("fuse", 10, 229), ("loop-control", 10, 237)]
KVM = ("kvm", 10, 232)
# Loop block devices (major 7): `template create --seal` mounts a guest's filesystem through
# qemu-storage-daemon's FUSE export and a loop device, on the host as a real host would. The
# kernel's loop devices are the machine's; these nodes only let a host name the first ones.
LOOPS = 16


def build_dev(with_kvm: bool) -> None:
    """A private /dev. KVM that is offered but hangs guests (nested: docs/lab.md, "KVM inside the lab") must be
    absent, not merely unusable: libvirt re-probes QEMU (seconds) on every guest start
    while /dev/kvm exists but its probe found KVM disabled."""
    _run("mount", "-t", "tmpfs", "-o", "mode=755,nosuid", "tmpfs", "/dev")
    for name, major, minor in DEVICES + ([KVM] if with_kvm and os.path.exists("/sys/class/misc/kvm") else []):
        path = f"/dev/{name}"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(path, 0o666)
    for i in range(LOOPS):
        os.mknod(f"/dev/loop{i}", 0o660 | stat.S_IFBLK, os.makedev(7, i))
    os.makedirs("/dev/pts")
    # Its own pty instance: guests' serial consoles of one host are not seen by another.
    _run("mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620", "devpts", "/dev/pts")
    os.symlink("pts/ptmx", "/dev/ptmx")
    os.makedirs("/dev/shm")
    _run("mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", "/dev/shm")
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{link}")


def build_mounts(spec: dict) -> None:
    _run("mount", "--make-rprivate", "/")
    _run("mount", "-t", "sysfs", "sysfs", "/sys")  # else /sys/class/net shows the root namespace
    # Overlays first: the binds below (/etc/libvirt, /etc/hosts, ...) go on top of them.
    for upper, work, target in spec.get("overlays", []):
        if os.path.isdir(target):
            _run("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={target},upperdir={upper},workdir={work}",
                 target)
    _run("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    for sub in ("libvirt", "sshd", "lock"):
        os.makedirs(f"/run/{sub}", exist_ok=True)
    for source, target in spec["binds"]:
        if target.startswith("/run/"):
            os.makedirs(target, exist_ok=True)  # the host's own tmpfs: creating it touches nothing else
        # A fresh machine may lack a mount point (e.g. root never used SSH: no /root/.ssh).
        if os.path.isdir(source) and not os.path.exists(target):
            os.makedirs(target, mode=0o700)
        if os.path.isfile(source) and not os.path.exists(target):
            continue  # a file to shadow that the machine does not have (e.g. no ~/.bashrc)
        _run("mount", "--bind", source, target)
    build_dev(with_kvm=not spec.get("hide_kvm"))
    os.makedirs("/var/log/libvirt/qemu", exist_ok=True)


def configure_network(address_prefix: str) -> None:
    from pyroute2 import IPRoute

    address, prefix = address_prefix.split("/")
    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        ipr.link("set", index=lo, state="up")
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("add", index=eth0, address=address, prefixlen=int(prefix))
        ipr.link("set", index=eth0, state="up")
    # No default route on purpose: lab traffic never leaves 198.18.0.0/24.


def reap_forever() -> None:
    """Reap every orphan of the host (daemonized libvirtd, QEMU, sshd children).

    Unreaped zombies look alive to libvirt, which then waits 40 s per probe
    process it thinks it failed to kill."""

    def power_off(_signum, _frame):
        os.kill(-1, signal.SIGKILL)  # as PID 1: every other process of this host
        os._exit(0)

    signal.signal(signal.SIGTERM, power_off)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGCHLD stays blocked and is taken synchronously: no wake-up can be lost
    # between reaping and waiting.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    while True:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        signal.sigtimedwait({signal.SIGCHLD}, 5.0)


def main() -> None:
    spec = json.loads(sys.argv[1])
    out = sys.stdout
    try:
        build_mounts(spec)
        socket.sethostname(spec["fqdn"])
        out.write("mounted\n")
        out.flush()
        command = sys.stdin.readline().split()
        if command[:1] != ["configure"]:
            raise RuntimeError(f"unexpected command {command!r}")
        configure_network(command[1])
    except Exception as exc:  # reported to the parent, which tears the host down
        detail = exc.stderr.decode().strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        out.write(f"error: {detail}\n")
        out.flush()
        sys.exit(1)
    out.write("ready\n")
    out.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    reap_forever()


if __name__ == "__main__":
    main()
