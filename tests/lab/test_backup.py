"""Backups of a real lab guest: full and incremental through libvirt's backup API while it runs,
an offline copy when stopped; restores on the other host boot and hold the data of their point
in time; damaged backups and clashes are refused with nothing left behind."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vpd.lab import layout

from .conftest import vpd, vpd_json
from .guest_disk import channel, read_marker, shared_pool_files, write_marker

pytestmark = pytest.mark.lab

VM = "bkg"


@pytest.fixture(scope="module")
def guest(lab, tmp_path_factory):
    root = tmp_path_factory.mktemp("backups")
    vpd_json("vm", "create", VM, "--host", "hosta", "--lab-guest", "--disk", f"size=64M,pool={layout.SHARED_POOL}",
             "--start", "--wait-boot")
    try:
        yield str(root)
    finally:
        for host, name in (("hosta", VM), ("hostb", "bkg-inc"), ("hostb", "bkg-full"), ("hosta", "bkg-off")):
            vpd("vm", "destroy", name, "--host", host)
            vpd("vm", "undefine", name, "--host", host, "--remove-storage")


def test_full_then_incremental_restore_on_the_other_host(guest, lab_inventory, conns):
    root = guest
    with channel(conns, lab_inventory, VM) as ch:
        # 4 MiB of data the full backup must hold and the incremental must not copy again.
        assert ch.run("dd if=/dev/urandom of=/dev/sda bs=1M seek=8 count=4 conv=fsync 2>/dev/null").exit_code == 0
        write_marker(ch, "FIRST")
    full = vpd_json("backup", VM, "--host", "hosta", "--to", root)
    assert (full["kind"], full["method"], full["guest_state"]) == ("full", "backup-api", "running")
    with channel(conns, lab_inventory, VM) as ch:
        write_marker(ch, "SECOND")
    inc = vpd_json("backup", VM, "--host", "hosta", "--to", root, "--incremental")
    assert (inc["kind"], inc["parent"]) == ("incremental", full["id"])
    # Only what changed since the checkpoint (one cluster around the marker), not the 4 MiB again.
    assert full["total_bytes"] >= 4 * 2**20 and inc["total_bytes"] <= 2**20
    print(f"\nbackup of a 64 MiB disk: full {full['total_bytes']} B in {full['seconds']} s, "
          f"incremental {inc['total_bytes']} B in {inc['seconds']} s")

    listed = vpd_json("backup", "list", root, "--host", "hostb")["backups"]
    assert [(b["id"], b["kind"]) for b in listed] == [(full["id"], "full"), (inc["id"], "incremental")]
    assert vpd_json("backup", "verify", inc["path"], "--host", "hostb")["chain"] == [full["id"], inc["id"]]

    for backup, name, marker in ((inc, "bkg-inc", "SECOND"), (full, "bkg-full", "FIRST")):
        restored = vpd_json("restore", backup["path"], "--host", "hostb", "--as", name, "--start", "--wait-boot")
        assert restored["boot_id"] and restored["uuid"] != full["uuid"]
        with channel(conns, lab_inventory, name, host="hostb") as ch:
            assert read_marker(ch) == marker
        vpd_json("vm", "destroy", name, "--host", "hostb")
    # The original keeps running, untouched.
    with channel(conns, lab_inventory, VM) as ch:
        assert read_marker(ch) == "SECOND"


def test_restore_refusals_change_nothing(guest, lab_inventory):
    root = guest
    listed = vpd_json("backup", "list", root, "--host", "hosta")["backups"]
    full, inc = listed[0], listed[-1]
    before = shared_pool_files("bkg")

    clash = vpd("restore", full["path"], "--host", "hosta")
    assert clash.returncode == 2 and "already exists" in clash.stderr
    taken = vpd("restore", full["path"], "--host", "hostb", "--as", "bkg-inc")
    assert taken.returncode == 2 and "already exists" in taken.stderr
    bad_name = vpd("restore", full["path"], "--host", "hostb", "--as", "../x")
    assert bad_name.returncode == 2
    not_a_backup = vpd("restore", root, "--host", "hostb", "--as", "bkg-x")
    assert not_a_backup.returncode == 2 and "not a finished vpd backup" in not_a_backup.stderr

    # One flipped byte in the full copy: the incremental built on it is refused as well.
    disk = Path(full["path"]) / "hda.qcow2"
    with open(disk, "r+b") as f:
        f.seek(os.path.getsize(disk) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    try:
        damaged = vpd("restore", inc["path"], "--host", "hostb", "--as", "bkg-x")
        assert damaged.returncode == 2 and "damaged" in damaged.stderr, damaged.stderr
        verify = vpd("backup", "verify", inc["path"], "--host", "hosta", "--json")
        assert verify.returncode == 1 and not json.loads(verify.stdout)["ok"]
    finally:
        with open(disk, "r+b") as f:
            f.seek(os.path.getsize(disk) // 2)
            f.write(byte)
    assert shared_pool_files("bkg") == before
    assert vpd("vm", "info", "bkg-x", "--host", "hostb").returncode == 2


def test_stopped_guest_offline_backup_and_restore(guest, lab_inventory, conns):
    root = guest
    refused = vpd("backup", "bkg-inc", "--host", "hostb", "--to", root, "--incremental")
    assert refused.returncode == 2 and "not running" in refused.stderr
    vpd_json("vm", "destroy", VM, "--host", "hosta")
    off = vpd_json("backup", VM, "--host", "hosta", "--to", root)
    assert (off["method"], off["guest_state"], off["checkpoint"]) == ("offline-copy", "shutoff", None)
    restored = vpd_json("restore", off["path"], "--host", "hosta", "--as", "bkg-off", "--start", "--wait-boot")
    with channel(conns, lab_inventory, "bkg-off") as ch:
        assert read_marker(ch) == "SECOND"
    assert restored["disks"] == [f"{layout.SHARED_MOUNT}/bkg-off.qcow2"]
