"""`vpd migrate` when things go wrong mid-way: a cut link, a dead destination
libvirtd, too little memory there, a name clash, Ctrl-C. Each must end with the
guest running on the source only, its disk intact, nothing of it on the
destination, the temporary grant revoked, a clear error and a non-zero exit.
(A closed destination firewall is in test_migrate.py.)"""
from __future__ import annotations

import signal
import time

import libvirt
import pytest
from pyroute2 import IPRoute

from vpd.core import paths
from vpd.lab.layout import LabHost

from .migration_helpers import (
    Migration,
    assert_only_on_source,
    connect,
    create_guest,
    kill_libvirtd,
    mark_disk,
    migration_ports_open,
    remove_guest,
    start_libvirtd,
)

pytestmark = pytest.mark.lab

VM = "fault1"
STALL_S = 5
# The guest rewrites 32 MiB at 8 MiB/s and the job may send only 4 MiB/s: it
# never converges, so every fault lands on a running job. --timeout is the
# safety net should a fault not happen.
MIGRATE = ("--from", "hosta", "--to", "hostb", "--stall", str(STALL_S), "--bandwidth", "4", "--timeout", "90")


@pytest.fixture(scope="module")
def ports(lab):
    with migration_ports_open():
        yield


@pytest.fixture(scope="module")
def guest(ports):
    created = create_guest(VM, dirty="32,8")
    try:
        dom = connect("hosta").lookupByName(VM)
        yield created["uuid"], dom, mark_disk(dom)
    finally:
        remove_guest(VM)


def _set_link(host: LabHost, up: bool) -> None:
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=host.veth)[0], state="up" if up else "down")


def _source_job(dom: libvirt.virDomain) -> int:
    return dom.jobStats(0).get("type", libvirt.VIR_DOMAIN_JOB_NONE)


def test_link_cut_mid_migration_is_aborted_by_the_stall_watchdog(guest):
    uuid, dom, before = guest
    hostb = LabHost(1, paths.lab_dir())
    job = Migration(VM, *MIGRATE)
    job.wait_for_job(dom)
    _set_link(hostb, up=False)
    cut = time.monotonic()
    try:
        # libvirt never gives up on a silent peer by itself; vpd's watchdog must.
        while _source_job(dom) == libvirt.VIR_DOMAIN_JOB_UNBOUNDED and time.monotonic() - cut < 30:
            time.sleep(0.1)
        aborted_after = time.monotonic() - cut
    finally:
        _set_link(hostb, up=True)
    code, report, err = job.finish()
    print(f"\nlink cut: aborted {aborted_after:.1f} s after the cut, vpd exited "
          f"{time.monotonic() - cut:.1f} s after it (code {code}): {report and report['error']}")
    assert code == 1, err
    # The watchdog counts from the last byte that moved, a little before the cut.
    assert STALL_S - 1 <= aborted_after < STALL_S + 5
    assert report["error"].startswith("migration failed (no progress for "), report["error"]
    assert {c["name"]: c["ok"] for c in report["validation"]} == {"still on source": True,
                                                                  "destination as before": True}
    assert_only_on_source(VM, uuid, before, dom)


def test_destination_libvirtd_killed_mid_migration(guest):
    uuid, dom, before = guest
    job = Migration(VM, *MIGRATE)
    job.wait_for_job(dom)
    kill_libvirtd("hostb")
    killed = time.monotonic()
    try:
        code, report, err = job.finish()
        print(f"\nlibvirtd killed: vpd exited {time.monotonic() - killed:.1f} s later (code {code}): "
              f"{report and report['error']}")
        assert code == 1, err
        dest = next(c for c in report["validation"] if c["name"] == "destination as before")
        # Its libvirtd is down, so the destination is not as before; but the paused
        # QEMU that daemon left for the guest is gone: vpd ended it over SSH.
        assert not dest["ok"] and dest["fix"] == "start libvirtd on hostb again"
        assert "libvirtd on hostb does not answer" in dest["detail"]
        assert "killed the paused QEMU (pid " in dest["detail"]
        assert dest["detail"] in report["error"]
    finally:
        start_libvirtd("hostb")
    # The restarted daemon finds nothing of the guest to resume or reap.
    assert_only_on_source(VM, uuid, before, dom)


# Under load (a CPU hog, a second lab) QEMU's migration thread can be starved for seconds: the
# stall watchdog of MIGRATE would then abort the job itself (exit 1) before or as Ctrl-C lands.
# Here only Ctrl-C may end it.
MIGRATE_NO_WATCHDOG = ("--from", "hosta", "--to", "hostb", "--stall", "600", "--bandwidth", "4", "--timeout", "600")


def test_ctrl_c_aborts_the_job_and_exits_130(guest):
    uuid, dom, before = guest
    job = Migration(VM, *MIGRATE_NO_WATCHDOG)
    job.wait_for_job(dom)
    job.proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    code, report, err = job.finish()
    print(f"\nCtrl-C: vpd exited {time.monotonic() - sent:.1f} s later (code {code}): {report['error']}")
    assert code == 130, err
    assert "interrupted" in err
    assert report["interrupted"] and report["error"].startswith("migration failed (interrupted by the user)")
    assert all(c["ok"] for c in report["validation"]), report["validation"]
    assert_only_on_source(VM, uuid, before, dom)


def test_name_clash_on_destination_is_refused_in_preflight(guest):
    uuid, dom, before = guest
    # vpd refuses a second VM of the same name anywhere in the inventory, so the clash a
    # migration must still detect (made by hand or by another tool) is defined through libvirt.
    clash = connect("hostb").defineXML(
        f"<domain type='qemu'><name>{VM}</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>")
    other = {"uuid": clash.UUIDString()}  # same name, its own UUID
    try:
        started = time.monotonic()
        code, report, err = Migration(VM, *MIGRATE).finish()
        print(f"\nname clash: refused in {time.monotonic() - started:.1f} s (code {code}): {report['error']}")
        assert code == 1, err
        assert [c["name"] for c in report["preflight"] if not c["ok"] and c["blocking"]] == [
            "no name/UUID clash on destination"]
        assert f"another domain {VM} ({other['uuid']})" in report["error"]
        assert report["grant"] is None  # refused before any access was granted
        assert connect("hostb").lookupByName(VM).UUIDString() == other["uuid"]
        assert_only_on_source(VM, uuid, before, dom, dst_state="shut off")
    finally:
        remove_guest(VM, ("hostb",))


def test_too_little_memory_on_destination_is_refused_in_preflight(ports):
    """A guest bigger than the destination's free memory still runs here: QEMU
    allocates guest RAM lazily, so it only takes what the guest touches."""
    name = "fault-big"
    memory_mib = connect("hostb").getFreeMemory() // 2**20 + 1024
    create_guest(name, memory_mib=memory_mib)
    try:
        dom = connect("hosta").lookupByName(name)
        before = mark_disk(dom)
        started = time.monotonic()
        code, report, err = Migration(name, "--to", "hostb").finish()
        print(f"\nmemory: a {memory_mib} MiB guest refused in {time.monotonic() - started:.1f} s "
              f"(code {code}): {report['error']}")
        assert code == 1, err
        assert [c["name"] for c in report["preflight"] if not c["ok"] and c["blocking"]] == [
            "free memory on destination"]
        assert report["error"].startswith("preflight failed: free memory on destination: hostb has ")
        assert report["grant"] is None
        assert_only_on_source(name, dom.UUIDString(), before, dom)
    finally:
        remove_guest(name, ("hosta",))

