"""One real lab for the whole session: brought up through the CLI, always torn
down, and checked to leave nothing behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from vpd.connect import inventory as inv
from vpd.connect.libvirt_conn import Connections
from vpd.lab import network

VPD = [sys.executable, "-m", "vpd"]


def vpd(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*VPD, *args], capture_output=True, text=True, timeout=timeout)


def vpd_json(*args: str, timeout: float = 300):
    proc = vpd(*args, "--json", timeout=timeout)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def vpd_traced(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, str]:
    """`vpd ARGS` under strace: (its result, the trace of vpd's own writes -- e.g. what went to a
    child's stdin -- and of the execve of every process it starts, with its argv). `-b execve`
    lets go of each child once it has exec'd: an SSH connection master it forks lives on for
    ControlPersist, and strace would wait for it."""
    trace = os.path.join(os.environ["VPD_HOME"], f"strace-{os.getpid()}-{len(args)}.txt")
    proc = subprocess.run(["strace", "-f", "-qq", "-b", "execve", "-e", "trace=execve,write", "-e", "signal=none",
                           "-s", "65536", "-o", trace, *VPD, *args], capture_output=True, text=True, timeout=timeout)
    try:
        with open(trace) as f:
            return proc, f.read()
    finally:
        os.unlink(trace)


def started_argvs(trace: str) -> list[str]:
    """The execve lines of a `vpd_traced` trace."""
    return [line for line in trace.splitlines() if " execve(" in line]


def lab_processes() -> list[str]:
    """Processes of this test run's lab: every one names its VPD_HOME (holder spec, daemon configs)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    home = os.environ["VPD_HOME"]
    return [line for line in out.splitlines() if home in line]


@pytest.fixture(scope="session")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    if network.lab_links():
        pytest.exit("a vpd lab is already up on this machine (make demo?): run `vpd lab down` first", returncode=2)
    up = vpd_json("lab", "up", "--hosts", "2")
    try:
        yield up
    finally:
        down = vpd("lab", "down")
        assert down.returncode == 0, down.stderr
        assert not network.lab_links()
        # An ssh client a vpd command left to a host powered off (the quorum test's) ends on its
        # own once ssh's ServerAlive checks give up (5 s x 3): wait for that, not longer.
        deadline = time.monotonic() + 60
        while lab_processes() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not lab_processes()


@pytest.fixture(scope="session")
def lab3(lab):
    """The session's lab swapped for one of three hosts, once: the tests that use it run last
    (pytest_collection_modifyitems below), so nothing needs the two-host lab back after them."""
    if len(inv.resolve().hosts) != 3:
        assert vpd("lab", "down").returncode == 0
        return vpd_json("lab", "up", "--hosts", "3")
    return lab


def pytest_collection_modifyitems(config, items):
    """Tests on the three-host lab after all others, and the slow ones among them last: a swap
    back to two hosts (~15 s) is never needed, and a slow test's leftovers (hosts powered off)
    meet no other test."""
    def order(item) -> tuple[bool, bool]:
        three = "lab3" in getattr(item, "fixturenames", ())
        return three, three and item.get_closest_marker("slow") is not None

    items.sort(key=order)  # stable: every other test keeps its place


@pytest.fixture(scope="session")
def lab_inventory(lab) -> inv.Inventory:
    return inv.resolve()


@pytest.fixture
def conns():
    with Connections() as c:
        yield c


@pytest.fixture(autouse=True)
def no_grant_left_open(request):
    """Every lab test leaves no temporary-access grant open, even when it fails: what it left is
    revoked here (so the next test starts clean) and the test errors naming it. Reads the grant
    store in-process: no vpd subprocess per test."""
    if "lab" not in request.fixturenames:
        yield
        return
    from vpd import access

    def open_ids() -> set[str]:
        return {g.id for g in access.list_grants() if g.state in ("active", "revoke-pending")}

    before = open_ids()
    yield
    left = open_ids() - before
    for grant_id in sorted(left):
        try:
            access.revoke(grant_id)
        except Exception as exc:  # noqa: BLE001 - still report the leak below
            print(f"could not revoke {grant_id}: {exc}")
    assert not left, f"the test left grant(s) {sorted(left)} open (now revoked)"


# The Debian test guest (vm/debian_image.py), booted once for the tests that need a real
# distribution: cloud-init, sshd, the guest agent. Under TCG it takes ~20-40 s to reach SSH.
DEBIAN_NET = "dgnet"
DEBIAN_SUBNET = "198.19.60.0/24"
DEBIAN_USER = "vpd"
DEBIAN_HOSTNAME = "deb1.lab.example"


@dataclass(frozen=True)
class DebianGuest:
    name: str
    host: str
    user: str
    hostname: str
    key: str
    """Private key file; its .pub went into the guest through cloud-init."""
    ip: str

    def ssh(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """`ssh USER@IP COMMAND` run from inside the guest's lab host (the guest's network is
        the host's private one)."""
        return ssh_from_host(self.host, self.key, f"{self.user}@{self.ip}", list(command), timeout=timeout)


def ssh_from_host(host: str, key: str, target: str, command: list[str], timeout: float = 60):
    from vpd.lab import control, hostproc

    holder = control.load_state().host(host).holder_pid
    argv = ["ssh", "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
            target, "--", *command]
    return hostproc.run_in_host(holder, argv, check=False, timeout=timeout)


def wait_for_ssh(guest: DebianGuest, deadline_s: float = 600) -> float:
    """Seconds until `ssh … true` succeeds (the key is accepted: cloud-init has run)."""
    start = time.monotonic()
    while True:
        proc = guest.ssh("true", timeout=30)
        if proc.returncode == 0:
            return time.monotonic() - start
        assert time.monotonic() - start < deadline_s, f"no SSH into {guest.name} after {deadline_s} s: {proc.stderr}"
        time.sleep(1)


def wait_for_lease(net: str, mac: str, deadline_s: float = 600) -> str:
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        for lease in vpd_json("net", "leases", net)["leases"]:
            if lease["mac"] == mac:
                return lease["ip"]
        time.sleep(1)
    raise AssertionError(f"no DHCP lease for {mac} on {net} after {deadline_s} s")


@pytest.fixture(scope="module")
def debian_net(lab):
    vpd_json("net", "create", DEBIAN_NET, "--host", "hosta", "--mode", "isolated", "--subnet", DEBIAN_SUBNET,
             "--dhcp", "198.19.60.10-198.19.60.99")
    yield DEBIAN_NET
    vpd("net", "delete", DEBIAN_NET, "--host", "hosta")


@pytest.fixture(scope="session")
def debian_key():
    key = os.path.join(os.environ["VPD_HOME"], "debian-guest-key")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vpd-tests", "-f", key], check=True)
    return key


@pytest.fixture(scope="module")
def debian_guest(lab, debian_net, debian_key):
    """A started Debian guest on hosta, reachable by SSH with `debian_key` as user `vpd`. Its
    tests share one module (test_debian_guest.py): a guest left running through other modules
    would change what they see on hosta (VM lists, memory, libvirt's counters)."""
    from vpd.lab import layout

    name, mac = "deb1", "52:54:00:60:00:11"
    created = vpd_json("vm", "create", name, "--host", "hosta", "--debian-guest",
                       "--disk", f"size=64M,pool={layout.SHARED_POOL}",
                       "--network", f"network={debian_net},mac={mac}",
                       "--cloud-init", f"user={DEBIAN_USER},ssh-key={debian_key}.pub,hostname={DEBIAN_HOSTNAME}",
                       "--start", timeout=600)
    try:
        ip = wait_for_lease(debian_net, mac)
        guest = DebianGuest(name, "hosta", DEBIAN_USER, DEBIAN_HOSTNAME, debian_key, ip)
        wait_for_ssh(guest)
        yield guest
    finally:
        vpd("vm", "destroy", name, "--host", "hosta")
        vpd("vm", "undefine", name, "--host", "hosta", "--remove-storage")
        assert created["started"]
