"""Installing from a bootable ISO on a lab host (issue 14 §1): an isolinux ISO made with xorriso
from the lab guest's kernel and initramfs. `--cdrom` boots it through SeaBIOS and isolinux with a
blank disk and a VNC display (reached by `vm display --open` through its SSH tunnel);
`--location` on the same ISO boots its kernel directly with `--extra-args`, which the guest sees
(it answers the bad `vpd.dirty=x` it is given on its console). Both boot at once, and the rest
runs in this process, to keep the test short. `--boot uefi` is covered by the fast
tests only: under TCG OVMF roughly doubles the boot (docs/guests.md)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import libvirt
import pytest

from vpd.connect import inventory as inv
from vpd.core import paths
from vpd.lab import layout
from vpd.ops import Session
from vpd.vm import lifecycle, viewer
from vpd.vm.guest_image import build_guest_image
from vpd.xml.domain import Domain

from .conftest import vpd_json

pytestmark = pytest.mark.lab

MADE = ("gisocd", "gisoloc")
BOOT_DEADLINE_S = 180.0
PROBE = """#!/usr/bin/env python3
import configparser, socket, sys
c = configparser.ConfigParser(); c.read(sys.argv[1]); v = c["virt-viewer"]
s = socket.create_connection((v["host"], int(v["port"])), timeout=20)
print(v["type"], "password" in v, s.recv(12).decode().strip())
"""


def bootable_iso(out: Path, work: Path) -> None:
    """isolinux/ holding isolinux.bin (Debian's isolinux), ldlinux.c32 (syslinux-common), the lab
    guest's kernel and initramfs, and a config that boots them on the serial console."""
    image = build_guest_image(paths.cache_dir() / "guest")
    tree = work / "tree" / "isolinux"
    tree.mkdir(parents=True)
    shutil.copy(image.kernel, tree / "vmlinuz")
    shutil.copy(image.initrd, tree / "initrd.img")
    shutil.copy("/usr/lib/ISOLINUX/isolinux.bin", tree)
    shutil.copy("/usr/lib/syslinux/modules/bios/ldlinux.c32", tree)
    (tree / "isolinux.cfg").write_text(f"default lab\nprompt 0\ntimeout 1\nlabel lab\n  kernel vmlinuz\n"
                                       f"  append initrd=initrd.img {image.cmdline}\n")
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "VPDLAB", "-b", "isolinux/isolinux.bin",
                    "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
                    "-o", str(out), str(tree.parent)], check=True, capture_output=True)


@pytest.fixture
def made(lab, conns):
    """Removes the test's VMs with their storage, in this process (a vpd command each would cost
    more than the rest of the test's commands together)."""
    yield
    conn = conns.get(inv.resolve().get("hosta"))
    for name in MADE:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            continue
        if dom.isActive():
            dom.destroy()
        lifecycle.undefine(dom, remove_storage=True)


def serial_log(name: str) -> Path:
    return layout.LabHost(0, paths.lab_dir()).dir / "log-libvirt" / "qemu" / f"{name}-serial0.log"


def wait_for(name: str, text: str) -> str:
    deadline = time.monotonic() + BOOT_DEADLINE_S
    while time.monotonic() < deadline:
        log = serial_log(name).read_text(errors="replace") if serial_log(name).exists() else ""
        if text in log:
            return log
        time.sleep(0.3)
    raise AssertionError(f"{name} did not print {text!r} within {BOOT_DEADLINE_S:g} s:\n{log[-2000:]}")


def test_iso_boots_from_cdrom_with_vnc_and_by_location_with_extra_args(made, conns, tmp_path, monkeypatch):
    shared = paths.lab_dir() / "shared"
    bootable_iso(shared / "gst-boot.iso", tmp_path)
    iso = f"{layout.SHARED_MOUNT}/gst-boot.iso"
    disk = f"size=16M,pool={layout.SHARED_POOL}"
    # One after the other: two creates refreshing and building in one pool at once can trip over
    # libvirt's "asynchronous jobs running". The first guest boots while the second is made.
    cd = vpd_json("vm", "create", "gisocd", "--host", "hosta", "--cdrom", iso, "--graphics", "vnc", "--video", "vga",
                  "--disk", disk, "--memory", "128", "--start")
    loc = vpd_json("vm", "create", "gisoloc", "--host", "hosta", "--location", iso,
                   "--extra-args", "console=ttyS0 quiet vpd.dirty=x", "--disk", disk, "--memory", "128", "--start")
    assert cd["started"] and cd["cdroms"] == [iso] and len(cd["graphics"]["password"]) == 8
    assert loc["started"] and loc["cdroms"] == [iso]
    assert loc["install"] == {"layout": "isolinux", "kernel": f"{layout.SHARED_MOUNT}/gisoloc-vmlinuz",
                              "initrd": f"{layout.SHARED_MOUNT}/gisoloc-initrd",
                              "cmdline": "console=ttyS0 quiet vpd.dirty=x"}
    host = inv.resolve().get("hosta")
    conn = conns.get(host)
    domain = Domain.from_xml(conn.lookupByName("gisocd").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert [b.dev for b in domain.os.boot] == ["cdrom", "hd"]
    assert [(d.device, d.readonly) for d in domain.disks] == [("disk", False), ("cdrom", True)]

    # `vm display --open` with a stand-in viewer: the RFB handshake on the advertised port,
    # through the SSH tunnel to the host's loopback, the password handed over in the file.
    probe = tmp_path / "probe"
    probe.write_text(PROBE)
    probe.chmod(0o755)
    monkeypatch.setenv(viewer.VIEWER_ENV, str(probe))
    with Session() as session:
        shown = viewer.open_display(session, "gisocd", "hosta")
    assert shown["opened"] and shown["viewer_output"] == "vnc True RFB 003.008", shown
    assert shown["listen"] == "127.0.0.1" and f":127.0.0.1:{shown['port']} " in shown["tunnel"]
    with pytest.raises(OSError):  # loopback only: the host's address does not answer
        socket.create_connection((host.address, shown["port"]), timeout=3).close()

    assert "VPD-BOOT-MARKER" in wait_for("gisocd", "VPD-BOOT-MARKER")  # SeaBIOS -> isolinux -> the kernel
    log = wait_for("gisoloc", "VPD-BOOT-MARKER")
    assert "ignoring vpd.dirty=x" in log  # the --extra-args reached the installer's kernel

    for name in MADE:
        conn.lookupByName(name).destroy()
        lifecycle.undefine(conn.lookupByName(name), remove_storage=True)  # what `vm undefine --remove-storage` does
    assert not (shared / "gisoloc-vmlinuz").exists() and not (shared / "gisoloc-initrd").exists()
    assert (shared / "gst-boot.iso").exists()  # the ISO is the user's: it stays
    (shared / "gst-boot.iso").unlink()
