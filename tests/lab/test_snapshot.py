"""Snapshots of a real lab guest: data written through its command channel comes back on
revert (and with memory, its running kernel too); an external overlay is merged back on delete."""
from __future__ import annotations

import time

import pytest

from . import guest_disk
from .conftest import vpd, vpd_json
from .guest_disk import read_marker, write_marker
from .guest_disk import shared_pool_files as files_in_pool

pytestmark = pytest.mark.lab

VM = "snapg"


def channel(conns, lab_inventory):
    return guest_disk.channel(conns, lab_inventory, VM)


@pytest.fixture
def guest(lab):
    vpd_json("vm", "create", VM, "--host", "hosta", "--lab-guest", "--disk", "size=64M,pool=CONT_VOL_COMP",
             "--start", "--wait-boot")
    try:
        yield VM
    finally:
        vpd("vm", "destroy", VM, "--host", "hosta")
        vpd("vm", "undefine", VM, "--host", "hosta", "--remove-storage")


def test_snapshot_revert_and_merge(guest, lab_inventory, conns):
    # The lab guest has the agent's channel (every vpd VM does) but no agent: --quiesce says so, makes nothing.
    quiet = vpd("snapshot", "create", VM, "q1", "--quiesce", "--host", "hosta")
    assert quiet.returncode == 1 and "guest agent not connected" in quiet.stderr, quiet.stderr
    with channel(conns, lab_inventory) as ch:
        write_marker(ch, "ONE")
        boot_id = ch.boot_id()
        taken = vpd_json("snapshot", "create", VM, "s1", "--host", "hosta")
        assert (taken["kind"], taken["memory"]) == ("internal", True)
        time.sleep(2)
        write_marker(ch, "TWO")
        assert read_marker(ch) == "TWO"
        uptime_before_revert = ch.uptime_seconds()
        read_at = time.monotonic()

    reverted = vpd_json("snapshot", "revert", VM, "s1", "--host", "hosta")
    assert reverted["state"] == "running" and reverted["memory"]
    print(f"\ninternal snapshot with memory: create {taken['seconds']} s, revert {reverted['seconds']} s")
    with channel(conns, lab_inventory) as ch:
        assert read_marker(ch) == "ONE"
        assert ch.boot_id() == boot_id  # the same running kernel, not a reboot
        # Without the revert the guest's uptime would have run on with the wall clock since it
        # was read; reverted, it is back at the snapshot's (2 s and more earlier) plus the time
        # since the revert. Compared so, a slow revert on a loaded machine does not matter.
        assert ch.uptime_seconds() < uptime_before_revert + (time.monotonic() - read_at) - 1.0

        external = vpd_json("snapshot", "create", VM, "e1", "--disk-only", "--host", "hosta")
        assert external["kind"] == "external" and not external["memory"]
        overlay = f"{VM}.hda.e1.qcow2"
        assert [o.rsplit("/", 1)[1] for o in external["overlays"]] == [overlay]
        assert files_in_pool(VM) == sorted([f"{VM}.qcow2", overlay])
        write_marker(ch, "THREE")

        # libvirt refuses to delete s1 while an overlay covers the image holding it: vpd says so first.
        proc = vpd("snapshot", "delete", VM, "s1", "--host", "hosta")
        assert proc.returncode == 2 and "now uses" in proc.stderr, proc.stderr
        listing = vpd_json("snapshot", "list", VM, "--host", "hosta")
        assert listing["current"] == "e1"
        assert [(s["name"], s["kind"], s["parent"]) for s in listing["snapshots"]] == [
            ("s1", "internal", None), ("e1", "external", "s1")]

        merged = vpd_json("snapshot", "delete", VM, "e1", "--host", "hosta")
        print(f"external disk-only: create {external['seconds']} s, delete (blockcommit) {merged['seconds']} s")
        assert files_in_pool(VM) == [f"{VM}.qcow2"]
        assert read_marker(ch) == "THREE"  # the overlay's writes are in the base image now

    assert vpd_json("snapshot", "delete", VM, "s1", "--host", "hosta")["kind"] == "internal"
    assert vpd_json("snapshot", "list", VM, "--host", "hosta")["snapshots"] == []

    # Reverting a disk-only snapshot: no memory, so the VM is off and boots from the disk as it was.
    vpd_json("snapshot", "create", VM, "e2", "--disk-only", "--host", "hosta")
    with channel(conns, lab_inventory) as ch:
        write_marker(ch, "FOUR")
    reverted = vpd_json("snapshot", "revert", VM, "e2", "--host", "hosta")
    assert reverted["state"] == "shutoff" and "note" in reverted
    vpd_json("vm", "start", VM, "--host", "hosta", "--wait-boot")
    with channel(conns, lab_inventory) as ch:
        assert read_marker(ch) == "THREE"
    vpd_json("vm", "destroy", VM, "--host", "hosta")
    # Stopped, libvirt merges the overlay itself (the fresh one its revert made) and removes it.
    vpd_json("snapshot", "delete", VM, "e2", "--host", "hosta")
    assert files_in_pool(VM) == [f"{VM}.qcow2"]
