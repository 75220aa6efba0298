"""Cold migration: a stopped guest's definition moves, its disk stays on the
shared pool, and it boots on the destination. Without shared storage a disk
can only be copied live: libvirt copies disks through the running QEMUs (an NBD
server on the destination, a block mirror on the source), so vpd refuses
--copy-storage for a stopped guest instead of moving a definition whose disk
stays behind."""
from __future__ import annotations

import json
import time

import pytest

from vpd.migration.validate import guest_probe
from vpd.xml.pool import dir_pool

from .conftest import vpd, vpd_json
from .migration_helpers import connect, create_guest, mark_disk, migration_ports_open, open_grants, remove_guest, where

pytestmark = pytest.mark.lab

VM = "cold1"
LOCAL_POOL = "local"
# Under each host's own /var/lib/libvirt: the same path on both, not the same storage.
LOCAL_DIR = "/var/lib/libvirt/images/local"


@pytest.fixture(scope="module")
def guest(lab):
    created = create_guest(VM)
    try:
        yield created
    finally:
        remove_guest(VM)


def test_offline_migration_of_a_running_guest_is_refused(guest):
    proc = vpd("migrate", VM, "--to", "hostb", "--offline", "--persistent", "--undefinesource", "--json")
    assert proc.returncode == 2, proc.stderr
    error = json.loads(proc.stdout)
    assert error["kind"] == "UsageError" and "an offline migration moves only a stopped guest" in error["error"]
    assert where(VM) == {"hosta": "running"}


def test_stopped_guest_moves_its_definition_and_boots_on_the_destination(guest):
    dom = connect("hosta").lookupByName(VM)
    before = mark_disk(dom)
    dom.shutdown()  # ACPI: the guest powers itself off
    deadline = time.monotonic() + 30
    while dom.isActive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert where(VM) == {"hosta": "shut off"}

    report = vpd_json("migrate", VM, "--to", "hostb", "--persistent", "--undefinesource")
    print(f"\ncold migration: total {report['total_seconds']} s, job {report['job_seconds']} s")
    assert report["ok"] and report["mode"] == "offline", report
    assert "OFFLINE" in report["flags"] and "LIVE" not in report["flags"]
    assert all(c["ok"] for c in report["validation"]), report["validation"]
    assert where(VM) == {"hostb": "shut off"}
    assert open_grants() == []
    moved = connect("hostb").lookupByName(VM)
    assert moved.UUIDString() == guest["uuid"]
    assert guest["disk"] in moved.XMLDesc(0)  # the same file on the shared pool, not a copy

    started = vpd_json("vm", "start", VM, "--host", "hostb", "--wait-boot")["result"]
    assert started["boot_id"] != before["boot_id"]  # a fresh boot, seen by its marker
    after = guest_probe(moved)
    assert after["disk_sha256"] == before["disk_sha256"]
    assert where(VM) == {"hostb": "running"}


@pytest.fixture(scope="module")
def local_pools(lab):
    """A dir pool at the same path on each host, each on the host's own disk."""
    pools = []
    for host in ("hosta", "hostb"):
        pool = connect(host).storagePoolDefineXML(dir_pool(LOCAL_POOL, LOCAL_DIR).to_xml_string())
        pool.build(0)
        pool.create(0)
        pools.append(pool)
    try:
        yield
    finally:
        for pool in pools:
            pool.refresh(0)
            for vol in pool.listAllVolumes(0):
                vol.delete(0)
            pool.destroy()
            pool.undefine()


@pytest.fixture
def local_guest(local_pools):
    name = "cold-local"
    create_guest(name, pool=LOCAL_POOL)
    try:
        yield name
    finally:
        remove_guest(name)


def test_offline_copy_storage_is_refused_and_says_why(local_guest):
    vpd("vm", "destroy", local_guest, "--host", "hosta")
    proc = vpd("migrate", local_guest, "--to", "hostb", "--copy-storage", "--persistent", "--undefinesource",
               "--json")
    assert proc.returncode == 2, proc.stderr
    error = json.loads(proc.stdout)
    assert error["kind"] == "UsageError" and error["error"].startswith("--copy-storage needs a live migration")
    assert where(local_guest) == {"hosta": "shut off"}
    assert open_grants() == []


def test_live_copy_storage_without_shared_storage(local_guest):
    """libvirt creates the destination volume itself (same size and format) when the
    destination has a pool at the disk's directory."""
    dom = connect("hosta").lookupByName(local_guest)
    mark_disk(dom)
    capacity = connect("hosta").storageVolLookupByPath(f"{LOCAL_DIR}/{local_guest}.qcow2").info()[1]
    # Without an active pool at the disk's directory on hostb libvirt would fail mid-job:
    # vpd refuses first, naming the path and the fix, and starts nothing.
    dst_pool = connect("hostb").storagePoolLookupByName(LOCAL_POOL)
    dst_pool.destroy()
    try:
        refused = vpd("migrate", local_guest, "--to", "hostb", "--copy-storage", "--persistent", "--json")
    finally:
        dst_pool.create(0)
    assert refused.returncode == 2, refused.stderr
    error = json.loads(refused.stdout)
    assert f"hostb has no active pool at {LOCAL_DIR}" in error["error"], error
    assert f"vpd pool create NAME --host hostb --type dir --path {LOCAL_DIR}" in error["hint"]
    assert where(local_guest) == {"hosta": "running"} and open_grants() == []
    with migration_ports_open():
        report = vpd_json("migrate", local_guest, "--to", "hostb", "--copy-storage", "--persistent",
                          "--undefinesource")
    print(f"\nlive copy-storage: total {report['total_seconds']} s, job {report['job_seconds']} s, "
          f"downtime {report['downtime_ms']} ms")
    assert report["ok"], report
    assert "NON_SHARED_DISK" in report["flags"] and "UNSAFE" not in report["flags"]
    # vpd's own check from inside the guest: the first MiB it marked arrived intact.
    assert {c["name"] for c in report["validation"] if c["ok"]} >= {"disk readable and unchanged",
                                                                     "guest did not reboot"}
    assert where(local_guest) == {"hostb": "running"}
    assert open_grants() == []
    copied = connect("hostb").storageVolLookupByPath(f"{LOCAL_DIR}/{local_guest}.qcow2")
    assert copied.info()[1] == capacity
    assert "<format type='qcow2'/>" in copied.XMLDesc(0)
    # libvirt leaves the source's copy behind: deleting it is the user's call.
    assert connect("hosta").storageVolLookupByPath(f"{LOCAL_DIR}/{local_guest}.qcow2").info()[1] == capacity
