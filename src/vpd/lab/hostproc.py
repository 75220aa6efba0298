"""Processes of lab hosts: the holder that embodies a host, and commands run inside it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..core.errors import VpdError
from .layout import LabHost, subnet

# Inside a lab host, daemons get a clean, predictable environment.
HOST_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def spawn_holder(host: LabHost, hide_kvm: bool) -> subprocess.Popen:
    """Start the host's PID 1 in fresh net/mount/UTS/PID namespaces.

    setsid keeps Ctrl-C at the user's terminal from powering the lab off."""
    spec = {"fqdn": host.fqdn, "binds": [[str(src), dst] for src, dst in host.binds()], "hide_kvm": hide_kvm,
            "overlays": [[str(upper), str(work), target] for upper, work, target in host.overlays()]}
    argv = [
        "unshare", "--net", "--mount", "--uts", "--pid", "--fork", "--kill-child",
        "--propagation", "private", "--mount-proc",
        sys.executable, "-m", "vpd.lab.holder", json.dumps(spec),
    ]
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True, env={**os.environ, **HOST_ENV, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def holder_pid(unshare: subprocess.Popen, timeout: float = 5.0) -> int:
    """The holder's PID as the root namespace sees it: unshare's only child."""
    deadline = time.monotonic() + timeout
    path = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")
    while time.monotonic() < deadline:
        try:
            kids = path.read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.01)
    raise VpdError("lab host did not start (unshare produced no child)")


def expect_line(proc: subprocess.Popen, wanted: str, host: LabHost, timeout: float = 20.0) -> None:
    import select

    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().strip() if ready else ""
    if line != wanted:
        err = ""
        if proc.poll() is not None:
            err = proc.stderr.read().strip()
        raise VpdError(f"lab host {host.name} failed to start: {line or err or 'no answer'}")


def configure(proc: subprocess.Popen, host: LabHost) -> None:
    proc.stdin.write(f"configure {host.address}/{subnet().prefixlen}\n")
    proc.stdin.flush()


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # it exited between the two looks (ESRCH)
        return False


def power_off(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL the holder: the kernel then kills every process in the host's PID namespace."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        raise VpdError(f"lab host process {pid} did not stop within {timeout:g} s")


def run_in_host(pid: int, argv: list[str], *, check: bool = True, timeout: float = 60.0,
                input: str | None = None) -> subprocess.CompletedProcess:
    """Run argv inside the lab host whose holder is `pid` (all its namespaces)."""
    full = ["nsenter", "-t", str(pid), "-m", "-u", "-n", "-p", "--wd=/", "--", *argv]
    proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input, env=HOST_ENV)
    if check and proc.returncode != 0:
        raise VpdError(f"{' '.join(argv)} failed in lab host (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc


def host_path(pid: int, path: str) -> Path:
    """A path as seen inside the host's mount namespace, reachable from the root namespace."""
    return Path(f"/proc/{pid}/root") / path.lstrip("/")
