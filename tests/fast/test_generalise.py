"""Sealing by mount, for real, on a small ext4 image (qemu-storage-daemon's FUSE export, a loop device):
what identifies a guest goes, a guest's symbolic links never lead the host's files to be removed,
and a failure leaves the disk byte for byte as it was. The VM around it is on libvirt's test
driver, whose pool points at the test's directory."""
from __future__ import annotations

import gc
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import libvirt
import pytest

from vpd.connect.hostfiles import HostFiles
from vpd.connect.inventory import Host
from vpd.core.errors import UsageError, VpdError
from vpd.vm import generalise as gen
from vpd.vm.clone import clone_vm
from vpd.xml.domain import lab_guest_domain
from vpd.xml.pool import dir_pool

LOCAL = Host(name="t", uri="test:///default")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("qemu-storage-daemon") is None
                                or not Path("/dev/fuse").exists(), reason="needs root, FUSE and qemu-storage-daemon")


def guest_image(path: Path, host_victim: Path, with_fstab: bool = True) -> None:
    """A qcow2 holding an ext4 root filesystem (no partition table, as vpd's Debian image) with
    the identity a booted guest has, and links that point out of the guest at `host_victim`."""
    root = path.parent / "rootfs"
    for d in ("etc/ssh", "var/lib/cloud/instances/i-1", "var/lib/dbus", "var/lib/systemd", "var/log/journal/abc",
              "etc/udev/rules.d", "root", "usr/bin"):
        (root / d).mkdir(parents=True)
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "var/lib/dbus/machine-id").symlink_to("/etc/machine-id")
    for f in ("etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "var/log/syslog",
              "var/log/journal/abc/system.journal", "var/lib/cloud/instances/i-1/obj.pkl",
              "var/lib/systemd/random-seed",
              "etc/udev/rules.d/70-persistent-net.rules", "etc/ssh/sshd_config", "usr/bin/keep"):
        (root / f).write_text("x\n")
    if with_fstab:
        (root / "etc/fstab").write_text("LABEL=root / ext4 defaults 0 1\n")
    (root / "var/lib/cloud/escape").symlink_to("/")
    (root / "root/.bash_history").symlink_to(host_victim)
    raw = path.with_suffix(".raw")
    subprocess.run(["truncate", "-s", "32M", str(raw)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-L", "root", "-d", str(root), str(raw)], check=True)
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()
    shutil.rmtree(root)


def listing(files: HostFiles, image: Path, tmp: Path) -> dict[str, str]:
    """Path -> content ('->target' for links) of every file in the image, read through the same mount."""
    tmp.mkdir()
    m = gen._Mounted(files, str(tmp), str(image), "qcow2")
    try:
        m.open()
        out = {}
        for p in Path(m.mnt).rglob("*"):
            rel = "/" + str(p.relative_to(m.mnt))
            out[rel] = f"->{os.readlink(p)}" if p.is_symlink() else (p.read_text() if p.is_file() else "dir")
        return out
    finally:
        m.close()


@pytest.fixture
def vm(tmp_path: Path):
    gc.collect()
    conn = libvirt.open("test:///default")
    disks = tmp_path / "pool"
    disks.mkdir()
    victim = tmp_path / "host-file"
    victim.write_text("the host's\n")
    guest_image(disks / "g.qcow2", victim)
    pool = conn.storagePoolCreateXML(dir_pool("p", str(disks)).to_xml_string(), 0)
    pool.createXML("<volume><name>g.qcow2</name><capacity>33554432</capacity><target><format type='qcow2'/>"
                   "</target></volume>", 0)
    conn.defineXML(lab_guest_domain("g", kernel="/k", initrd="/i", cmdline="x", disk_path=str(disks / "g.qcow2"),
                                    domain_type="test", macs={"52:54:00:00:00:01": "default"}).to_xml_string())
    yield conn, disks / "g.qcow2", victim
    conn.close()


def test_mount_removes_the_guests_identity_and_nothing_of_the_hosts(vm, tmp_path: Path):
    conn, disk, victim = vm
    files = HostFiles(Host(name="local", uri="qemu:///system"))
    result = gen.generalise(conn, LOCAL, conn.lookupByName("g"), "mount", files=files)
    assert result.method == "mount" and result.emptied == ["/etc/machine-id"]
    assert {"/etc/ssh/ssh_host_ed25519_key", "/var/lib/cloud/instances", "/var/lib/cloud/escape", "/var/log/syslog",
            "/var/lib/dbus/machine-id", "/root/.bash_history"} <= set(result.removed)
    after = listing(files, disk, tmp_path / "look")
    assert after["/etc/machine-id"] == ""
    gone = ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub", "/var/lib/dbus/machine-id",
            "/var/lib/cloud/instances", "/var/lib/cloud/escape", "/var/log/syslog",
            "/var/log/journal/abc/system.journal", "/var/lib/systemd/random-seed",
            "/etc/udev/rules.d/70-persistent-net.rules", "/root/.bash_history"]
    assert [p for p in gone if p in after] == []
    assert after["/etc/ssh/sshd_config"] == after["/usr/bin/keep"] == "x\n" and after["/var/log/journal/abc"] == "dir"
    assert victim.read_text() == "the host's\n" and Path("/etc/hostname").exists()
    assert sorted(p.name for p in disk.parent.iterdir()) == ["g.qcow2"]  # the copy was renamed over the disk
    assert not subprocess.run(["losetup", "--associated", str(tmp_path / "look/export")], capture_output=True,
                              text=True).stdout


def test_a_failure_leaves_the_disk_as_it_was(vm, tmp_path: Path):
    conn, disk, victim = vm
    # No /etc/fstab: not a root filesystem, found only after the copy was made and mounted.
    disk.unlink()
    guest_image(disk, victim, with_fstab=False)
    before = hashlib.sha256(disk.read_bytes()).hexdigest()
    with pytest.raises(VpdError, match="no Linux root filesystem"):
        gen.generalise(conn, LOCAL, conn.lookupByName("g"), "mount",
                       files=HostFiles(Host(name="l", uri="qemu:///system")))
    assert hashlib.sha256(disk.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in disk.parent.iterdir()) == ["g.qcow2"]


def test_running_guests_and_bases_of_linked_clones_are_refused_untouched(vm):
    conn, disk, _victim = vm
    before = hashlib.sha256(disk.read_bytes()).hexdigest()
    dom = conn.lookupByName("g")
    dom.create()
    with pytest.raises(UsageError, match="not shut off"):
        gen.generalise(conn, LOCAL, dom, "mount")
    dom.destroy()
    clone_vm(conn, LOCAL, "g", "lnk", linked=True)
    with pytest.raises(UsageError, match="linked clones are based on g"):
        gen.generalise(conn, LOCAL, dom, "mount")
    with pytest.raises(UsageError, match="seal method"):
        gen.generalise(conn, LOCAL, dom, "scrub")
    if shutil.which("virt-sysprep") is None:
        conn.lookupByName("lnk").undefine()
        conn.storageVolLookupByPath(str(disk.parent / "lnk.qcow2")).delete(0)
        with pytest.raises(UsageError, match="virt-sysprep is not installed"):
            gen.generalise(conn, LOCAL, dom, "virt-sysprep", files=HostFiles(Host(name="l", uri="qemu:///system")))
    assert hashlib.sha256(disk.read_bytes()).hexdigest() == before
