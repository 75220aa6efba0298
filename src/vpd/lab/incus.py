"""Each lab host's own incusd (containers, issue 15), when Incus is installed.

A lab host has no cgroup file system of its own (the holder mounts a fresh /sys), and LXC
takes the cgroup of PID 1 (`/proc/1/cgroup`, the holder) as the base for its containers.
So incusd is started by a script (`boot_script`, run inside the host) that:

1. binds the host's state directory (HOSTDIR/incus) over /var/lib/incus, in the host's
   mount namespace: incusd's default INCUS_DIR, so `incus` in a shell on the host finds it,
   and vpd on the machine reaches the same socket as HOSTDIR/incus/unix.socket;
2. in a private mount namespace, mounts the machine's cgroup hierarchies afresh, creates
   `vpdlabN-HOST` in each as a child of the holder's own cgroup (never at the top: the lab
   stays in the machine's memory cgroup), moves the holder and itself into it and gives a
   cpuset its parent's CPUs and memory nodes; the paths go to HOSTDIR/incus-cgroups;
3. enters a new cgroup namespace (rooted at that group) with a new mount namespace,
   remounts the hierarchies there, and execs incusd.

Then `finish` waits for the API and applies the preseed through vpd's product code
(vpd.ct.engine): a `dir` pool, a bridge without NAT on 198.18.(128+8*NET+INDEX).0/24, the
default profile, and core.https_address on the host's lab address. `cleanup` removes the
cgroup directories once the host is off (the kernel leaves empty ones behind)."""
from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import time
from pathlib import Path

from ..core.errors import VpdError
from ..ct import engine
from ..ct.client import Endpoint, IncusClient, IncusUnreachable
from . import hostproc, layout
from .layout import LabHost

INCUSD = "/usr/libexec/incus/incusd"
PORT = 8443
CGROUP_ROOT = Path("/sys/fs/cgroup")


def installed() -> bool:
    return os.access(INCUSD, os.X_OK) and shutil.which("unshare") is not None


def state_dir(host: LabHost) -> Path:
    return host.dir / "incus"


def socket_path(host: LabHost) -> Path:
    return state_dir(host) / "unix.socket"


def endpoint(host: LabHost) -> str:
    """The inventory's `incus` value for a lab host: its socket, seen from the machine."""
    return f"unix:{socket_path(host)}"


def cgroup_name(host: LabHost) -> str:
    return f"vpdlab{layout.lab_net()}-{host.name}"


def bridge_subnet(host: LabHost) -> ipaddress.IPv4Network:
    """Inside 198.18.0.0/15, apart from every lab network (198.18.0-7.x) and from each other."""
    return ipaddress.ip_network(f"198.18.{128 + 8 * layout.lab_net() + host.index}.0/24")


def boot_script(group: str, state: Path, incusd: str = INCUSD) -> str:
    """The script above, for `sh -s STAGE`; pure, so it is unit-tested."""
    q = shlex.quote
    return f"""set -eu
GROUP={q(group)}
STATE={q(str(state))}
CG=/sys/fs/cgroup
dir_of() {{ case "$1" in "") echo unified ;; name=*) echo "${{1#name=}}" ;; *) echo "$1" ;; esac; }}
mount_hierarchies() {{
  mount -t tmpfs -o mode=755 cgroup "$CG"
  while IFS=: read -r id ctrl path; do
    d=$(dir_of "$ctrl"); mkdir -p "$CG/$d"
    case "$ctrl" in
      "") mount -t cgroup2 cgroup2 "$CG/$d" ;;
      name=*) mount -t cgroup -o "none,$ctrl" cgroup "$CG/$d" ;;
      *) mount -t cgroup -o "$ctrl" cgroup "$CG/$d" ;;
    esac
  done < /proc/1/cgroup
}}
case "${{1:-}}" in
"")
  mkdir -p "$STATE" /var/lib/incus
  mountpoint -q /var/lib/incus || mount --bind "$STATE" /var/lib/incus
  exec unshare -m --propagation private sh -c "$SCRIPT" sh group ;;
group)
  mount_hierarchies
  : > "$STATE/../incus-cgroups"
  while IFS=: read -r id ctrl path; do
    d=$(dir_of "$ctrl"); parent="$CG/$d${{path%/}}"; g="$parent/$GROUP"
    mkdir -p "$g"
    if [ -f "$g/cpuset.cpus" ]; then
      cat "$parent/cpuset.cpus" > "$g/cpuset.cpus"; cat "$parent/cpuset.mems" > "$g/cpuset.mems"
    fi
    echo 1 > "$g/cgroup.procs"
    echo $$ > "$g/cgroup.procs"
    echo "$d${{path%/}}/$GROUP" >> "$STATE/../incus-cgroups"
  done < /proc/1/cgroup
  exec unshare -C -m --propagation private sh -c "$SCRIPT" sh daemon ;;
daemon)
  umount -R "$CG"
  mount_hierarchies
  exec {q(incusd)} --group root --logfile "$STATE/../incusd.log" ;;
esac
"""


def spawn(host: LabHost, pid: int) -> None:
    """Start the host's incusd in the background (see the module docstring)."""
    state_dir(host).mkdir(parents=True, exist_ok=True)
    _remove_cgroups(host)  # a host powered off and on again starts from clean groups
    script = boot_script(cgroup_name(host), state_dir(host))
    log = host.dir / "incusd.boot.log"
    hostproc.run_in_host(pid, ["sh", "-c", f"SCRIPT={shlex.quote(script)}; export SCRIPT; "
                                           f'setsid sh -c "$SCRIPT" sh </dev/null >>{shlex.quote(str(log))} 2>&1 &'],
                         timeout=30)


def finish(host: LabHost, pid: int, firewall: str, timeout: float = 60.0) -> dict:
    """Wait for the API, apply the preseed, open Incus's port in the host's firewall."""
    deadline = time.monotonic() + timeout
    with IncusClient(Endpoint("unix", str(socket_path(host))), name=host.name) as client:
        while True:
            try:
                client.get("/1.0")
                break
            except IncusUnreachable as exc:
                if time.monotonic() > deadline:
                    raise VpdError(f"incusd on lab host {host.name} did not start within {timeout:g} s: {exc.message}",
                                   hint=f"see {host.dir / 'incusd.log'} and {host.dir / 'incusd.boot.log'}") from None
                time.sleep(0.05)
        report = engine.initialise(client, engine.Preseed(bridge_subnet(host), https_address=f"{host.address}:{PORT}"),
                                   host.name)
    if firewall == "nftables":
        hostproc.run_in_host(pid, ["nft", "add", "rule", "inet", "vpd_lab_host", "input", "tcp", "dport",
                                   str(PORT), "accept"])
    else:
        hostproc.run_in_host(pid, ["firewall-cmd", "--zone", "vpd-lab", f"--add-port={PORT}/tcp"])
    return report.to_dict()


def _remove_cgroups(host: LabHost) -> None:
    """rmdir the host's cgroup directories, deepest first (containers' lxc.* groups inside);
    a group still in use stays (its processes are still dying) and is tried again next time."""
    listing = host.dir / "incus-cgroups"
    try:
        groups = listing.read_text().split()
    except FileNotFoundError:
        return
    for rel in groups:
        top = CGROUP_ROOT / rel
        if not top.is_dir() or ".." in rel.split("/"):
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _rmdir(d)
        _rmdir(top)
    listing.unlink(missing_ok=True)


def _rmdir(d: Path) -> None:
    for _ in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)  # the last process of the group is still being reaped


def cleanup(host: LabHost) -> None:
    """After the host's holder is gone: its cgroup directories."""
    _remove_cgroups(host)

