"""Práctica 3 on the lab: pools, volumes and disks of a real guest, through the CLI.

A guest sees a volume uploaded from a local file (converted to qcow2, not raw bytes in a
qcow2 volume), a disk hot-plugged and unplugged; an fs pool lives on a loop device; pool
types the kernel cannot run are refused before anything is defined."""
from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess

import pytest

from vpd.core import paths
from vpd.lab import control, hostproc, layout
from vpd.vm.console import ConsoleStream
from vpd.vm.guest_channel import GuestChannel

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab

VM = "stor1"
POOL = "st-dir"
MiB = 1024**2


@contextlib.contextmanager
def channel(conns, lab_inventory, host="hosta", vm=VM):
    dom = conns.get(lab_inventory.get(host)).lookupByName(vm)
    with ConsoleStream(dom, "serial1") as stream:
        ch = GuestChannel(stream.send, stream.recv)
        ch.wait_ready(timeout=60)
        yield ch


def guest_sha(ch: GuestChannel, device: str, mib: int) -> str:
    result = ch.run(f"dd if=/dev/{device} bs=1M count={mib} iflag=direct 2>/dev/null | sha256sum", timeout=60)
    assert result.exit_code == 0, result.output
    return result.output.split()[0]


def pool_names(host: str) -> set[str]:
    listing = vpd_json("pool", "list", "--all", "--host", host)
    return {p["name"] for h in listing["hosts"] for p in h["pools"]}


@pytest.fixture
def dir_pool(lab):
    made = vpd_json("pool", "create", POOL, "--host", "hosta", "--type", "dir",
                    "--path", "/var/lib/libvirt/images/st-dir")
    assert made["changed"] and made["state"] == "running"
    try:
        yield POOL
    finally:
        vpd("vm", "destroy", VM, "--host", "hosta")
        vpd("vm", "undefine", VM, "--host", "hosta")
        vpd("pool", "delete", POOL, "--host", "hosta", "--wipe", "--yes")


def test_pool_volume_disk_with_a_real_guest(dir_pool, lab_inventory, conns, tmp_path):
    # Idempotent create; other settings: exit 2.
    assert vpd_json("pool", "create", POOL, "--host", "hosta", "--type", "dir",
                    "--path", "/var/lib/libvirt/images/st-dir")["changed"] is False
    clash = vpd("pool", "create", POOL, "--host", "hosta", "--type", "dir", "--path", "/var/lib/libvirt/images/other")
    assert clash.returncode == 2 and "other settings" in clash.stderr

    # A raw file uploaded into a qcow2 volume is converted: the guest reads the file's bytes.
    data = tmp_path / "data.raw"
    data.write_bytes(os.urandom(4 * MiB))
    vpd_json("vol", "create", POOL, "data.qcow2", "--host", "hosta", "--size", "24M", "--format", "qcow2")
    up = vpd_json("vol", "upload", POOL, "data.qcow2", str(data), "--host", "hosta")
    assert (up["file_format"], up["format"], up["converted"], up["capacity"]) == ("raw", "qcow2", True, 24 * MiB)
    vpd_json("vol", "create", POOL, "hot.raw", "--host", "hosta", "--size", "8M", "--format", "raw")

    vpd_json("vm", "create", VM, "--host", "hosta", "--lab-guest")
    attached = vpd_json("vm", "disk", "attach", VM, "--host", "hosta", "--vol", f"{POOL}/data.qcow2", "--target", "vdb")
    assert attached["changed"] and attached["config"] and not attached["live"]
    assert vpd_json("vm", "disk", "attach", VM, "--host", "hosta", "--vol", f"{POOL}/data.qcow2",
                    "--target", "vdb")["changed"] is False
    ide_live = vpd("vm", "disk", "attach", VM, "--host", "hosta", "--vol", f"{POOL}/hot.raw", "--target", "hdb", "--live")
    assert ide_live.returncode == 2
    busy = vpd("vol", "delete", POOL, "data.qcow2", "--host", "hosta")
    assert busy.returncode == 2 and VM in busy.stderr

    vpd_json("vm", "start", VM, "--host", "hosta", "--wait-boot")
    with channel(conns, lab_inventory) as ch:
        assert ch.disks().get("vda") == 24 * MiB  # the guest's first virtio disk
        assert guest_sha(ch, "vda", 4) == hashlib.sha256(data.read_bytes()).hexdigest()
        hot = vpd_json("vm", "disk", "attach", VM, "--host", "hosta", "--vol", f"{POOL}/hot.raw",
                       "--target", "vdc", "--live")
        assert hot["live"] and hot["changed"]
        ch.run("sleep 2")
        assert ch.disks().get("vdb") == 8 * MiB  # hot-plugged
        listed = vpd_json("vm", "disk", "list", VM, "--host", "hosta")["disks"]
        assert [(d["target"], d["type"], d["source"], d["format"]) for d in listed] == [
            ("vdb", "volume", f"{POOL}/data.qcow2", "qcow2"), ("vdc", "volume", f"{POOL}/hot.raw", "raw")]
        assert vpd_json("vm", "disk", "detach", VM, "--host", "hosta", "--target", "vdc", "--live")["changed"]
        for _ in range(20):
            if "vdb" not in ch.disks():
                break
            ch.run("sleep 0.5")
        assert "vdb" not in ch.disks()

    vpd_json("vm", "destroy", VM, "--host", "hosta")
    grown = vpd_json("vol", "resize", POOL, "data.qcow2", "32M", "--host", "hosta")
    assert grown["capacity"] == 32 * MiB
    out = tmp_path / "back.raw"
    down = vpd_json("vol", "download", POOL, "data.qcow2", str(out), "--format", "raw", "--host", "hosta")
    assert down["converted"] and out.stat().st_size == 32 * MiB
    assert out.read_bytes()[:4 * MiB] == data.read_bytes()
    clone = vpd_json("vol", "clone", POOL, "data.qcow2", "copy.qcow2", "--host", "hosta")
    assert clone["capacity"] == 32 * MiB
    vols = vpd_json("vol", "list", POOL, "--host", "hosta")["hosts"][0]["volumes"]
    assert {v["name"] for v in vols} == {"data.qcow2", "hot.raw", "copy.qcow2"}
    assert vpd_json("vm", "disk", "detach", VM, "--host", "hosta", "--target", "vdb")["changed"]
    assert vpd_json("vol", "delete", POOL, "data.qcow2", "--host", "hosta")["deleted"]
    journal = vpd_json("journal")
    assert {"pool.create", "vol.upload", "vm.disk.attach", "vm.disk.detach"} <= {e["operation"] for e in journal}


@pytest.mark.parametrize("args,reason", [
    (("--type", "netfs", "--source-host", "198.18.0.250", "--source-path", "/export", "--path", "/mnt/st-nfs"),
     "NFS client"),
    (("--type", "logical", "--source-dev", "/dev/null"), "device-mapper"),
    (("--type", "iscsi", "--portal", "198.18.0.250", "--target", "iqn.2024-01.org.vpd:none"), "iscsi_tcp"),
])
def test_types_the_kernel_cannot_run_are_refused_first(lab, args, reason):
    proc = vpd("pool", "create", "st-refused", "--host", "hosta", *args)
    assert proc.returncode == 2 and reason in proc.stderr, proc.stderr
    assert "st-refused" not in pool_names("hosta")


@pytest.fixture
def loop_device(lab):
    """A loop device plugged into hosta (lab hosts have a private /dev: the node is made there)."""
    image = paths.lab_dir() / "st-fs.img"
    subprocess.run(["truncate", "-s", "48M", str(image)], check=True)
    device = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True,
                            text=True).stdout.strip()
    holder = control.load_state().host("hosta").holder_pid
    minor = int(device.removeprefix("/dev/loop"))
    # Lab hosts get the first loop nodes when they boot (lab/holder.py); make one only past them.
    made = hostproc.run_in_host(holder, ["test", "-b", device], check=False).returncode != 0
    if made:
        hostproc.run_in_host(holder, ["mknod", device, "b", "7", str(minor)])
    try:
        yield device
    finally:
        vpd("pool", "delete", "st-fs", "--host", "hosta", "--wipe", "--yes")
        if made:
            hostproc.run_in_host(holder, ["rm", "-f", device], check=False)
        subprocess.run(["losetup", "-d", device], check=False)
        image.unlink(missing_ok=True)


def test_fs_pool_on_a_loop_device(loop_device):
    args = ("--type", "fs", "--source-dev", loop_device, "--path", "/var/lib/libvirt/images/st-fs")
    made = vpd_json("pool", "create", "st-fs", "--host", "hosta", *args, "--build")
    assert made["steps"] == ["define", "build", "start"] and 30 * MiB < made["capacity"] < 48 * MiB
    assert vpd_json("pool", "create", "st-fs", "--host", "hosta", *args, "--build")["changed"] is False
    vpd_json("vol", "create", "st-fs", "v.raw", "--host", "hosta", "--size", "8M", "--format", "raw")
    too_big = vpd("vol", "create", "st-fs", "big.raw", "--host", "hosta", "--size", "200M", "--format", "raw")
    assert too_big.returncode == 2 and "does not fit" in too_big.stderr
    info = vpd_json("pool", "info", "st-fs", "--host", "hosta")
    assert info["type"] == "fs" and info["source"] == loop_device
    # The same kind of device straight into a VM's definition (attach-disk --source /dev/...).
    vpd_json("vm", "create", "stdev", "--host", "hosta", "--lab-guest")
    try:
        vpd_json("vm", "disk", "attach", "stdev", "--host", "hosta", "--device", loop_device, "--target", "vdb")
        [disk] = vpd_json("vm", "disk", "list", "stdev", "--host", "hosta")["disks"]
        assert (disk["type"], disk["source"], disk["format"]) == ("block", loop_device, "raw")
        absent = vpd("vm", "disk", "attach", "stdev", "--host", "hosta", "--device", "/dev/loop250", "--target", "vdc")
        assert absent.returncode == 2 and "not a block device" in absent.stderr
    finally:
        vpd("vm", "undefine", "stdev", "--host", "hosta")
    missing = vpd("pool", "create", "st-fs2", "--host", "hosta", "--type", "fs", "--source-dev", "/dev/loop250",
                  "--path", "/var/lib/libvirt/images/st-fs2")
    assert missing.returncode == 2 and "not a block device" in missing.stderr
    gone = vpd_json("pool", "delete", "st-fs", "--host", "hosta", "--wipe", "--yes")
    assert "v.raw" in gone["volumes_deleted"]
    assert "st-fs" not in pool_names("hosta")


def test_a_volume_written_on_one_host_is_listed_and_found_on_the_other(lab):
    """CONT_VOL_COMP is one directory on both hosts: hostb's libvirt lists only what it saw at
    its last scan, so vpd re-scans before listing and when a lookup misses."""
    pool, vol = layout.SHARED_POOL, "st-seen-by-b.qcow2"
    before = {p["name"]: p["volumes"] for p in vpd_json("pool", "list", "--host", "hostb")["hosts"][0]["pools"]}
    vpd_json("vol", "create", pool, vol, "--host", "hosta", "--size", "1M", "--format", "qcow2")
    try:
        listed = vpd_json("vol", "list", pool, "--host", "hostb")["hosts"][0]
        assert vol in {v["name"] for v in listed["volumes"]} and listed["stale"] == []
        after = {p["name"]: p["volumes"] for p in vpd_json("pool", "list", "--host", "hostb")["hosts"][0]["pools"]}
        assert after[pool] == before[pool] + 1
        assert vpd_json("vol", "info", pool, vol, "--host", "hostb")["name"] == vol
    finally:
        vpd("vol", "delete", pool, vol, "--host", "hosta")
    assert vol not in {v["name"] for v in vpd_json("vol", "list", pool, "--host", "hostb")["hosts"][0]["volumes"]}
