"""`vm create --location/--extra-args/--arch/--cpu/--boot uefi` and `vm display --open`: the checks
over a lab host's real capabilities and domain capabilities (captured under TCG, libvirt 11,
QEMU 10: tests/fast/data/capabilities), install trees as ISOs made with pycdlib and as
directories, and VMs defined on libvirt's test driver. Everything refused changes nothing."""
from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import libvirt
import pycdlib
import pytest

from vpd.connect.hostfiles import HostFiles
from vpd.connect.inventory import Host
from vpd.core.errors import UsageError, VpdError
from vpd.ops import Session
from vpd.vm import install_tree, lifecycle, platform, viewer
from vpd.vm.create import DiskSpec, VmSpec, create_vm
from vpd.vm.spec import VmRequest
from vpd.xml.capabilities import (
    Capabilities,
    DomainCapabilities,
    EnumValue,
    Guest,
    GuestArch,
    GuestDomainType,
    LoaderCaps,
    OsCaps,
)
from vpd.xml.domain import Domain, cpu_element, file_disk, graphics_device, guest_domain

from .conftest import run_vpd

DATA = Path(__file__).parent / "data" / "capabilities"
HOST = Host(name="t1", uri="test:///default")


@pytest.fixture(scope="module")
def caps() -> Capabilities:
    return Capabilities.from_xml((DATA / "caps_x86_64_tcg.xml").read_bytes())


@pytest.fixture(scope="module")
def domcaps() -> DomainCapabilities:
    return DomainCapabilities.from_xml((DATA / "domcaps_x86_64_tcg.xml").read_bytes())


def state_of(conn) -> tuple:
    pool = conn.storagePoolLookupByName("default-pool")
    pool.refresh(0)
    return sorted(d.name() for d in conn.listAllDomains()), sorted(pool.listVolumes())


# --arch ------------------------------------------------------------------------------------------

def test_arch_is_checked_against_the_host_capabilities(caps):
    assert caps.hvm_arches() == ["i686", "x86_64"]
    assert platform.domain_type_for(caps, "i686", "qemu", "auto", "h") == "qemu"
    with pytest.raises(UsageError, match="cannot run aarch64 guests: its libvirt offers i686, x86_64"):
        platform.domain_type_for(caps, "aarch64", "qemu", "auto", "h")
    with pytest.raises(UsageError, match="no KVM for x86_64"):
        platform.domain_type_for(caps, "x86_64", "kvm", "kvm", "h")
    # A KVM host whose i686 guests also get KVM keeps it; asked for auto, a TCG-only arch falls back.
    kvm = caps.model_copy(deep=True)
    kvm.guests.append(Guest(os_type="hvm", arch=GuestArch(name="ppc64", domains=[GuestDomainType(type="qemu")])))
    for g in kvm.guests:
        if g.arch.name == "i686":
            g.arch.domains.append(GuestDomainType(type="kvm"))
    assert platform.domain_type_for(kvm, "i686", "kvm", "auto", "h") == "kvm"
    assert platform.domain_type_for(kvm, "ppc64", "kvm", "auto", "h") == "qemu"


# --cpu -------------------------------------------------------------------------------------------

def test_cpu_modes_and_models_are_checked_against_domain_capabilities(domcaps):
    assert domcaps.domain == "qemu" and domcaps.cpu.mode("host-passthrough").supported == "no"
    assert platform.cpu_choice(domcaps, "host-model", "h").mode == "host-model"
    with pytest.raises(UsageError, match="host-passthrough needs KVM: h runs this guest under TCG"):
        platform.cpu_choice(domcaps, "host-passthrough", "h")
    qemu64 = platform.cpu_choice(domcaps, "qemu64", "h")
    assert (qemu64.mode, qemu64.match, qemu64.model.name, qemu64.model.fallback) == ("custom", "exact", "qemu64",
                                                                                      "forbid")
    with pytest.raises(UsageError, match="cannot give a guest that model: it lacks .*hle") as refused:
        platform.cpu_choice(domcaps, "Broadwell", "h")
    assert "qemu64" in refused.value.hint
    with pytest.raises(UsageError, match="no such CPU model") as unknown:
        platform.cpu_choice(domcaps, "Brodwell", "h")
    assert "Broadwell" in unknown.value.hint
    for bad in ("", "a b", "<x>"):
        with pytest.raises(UsageError):
            platform.check_cpu_syntax(bad)


# --boot uefi -------------------------------------------------------------------------------------

def test_uefi_loader_comes_from_domain_capabilities(domcaps):
    assert platform.uefi_loader(domcaps, "h") == "/usr/share/OVMF/OVMF_CODE_4M.fd"
    secure_first = domcaps.model_copy(deep=True)
    secure_first.os.loader.values = [EnumValue(text="/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"),
                                     EnumValue(text="/usr/share/OVMF/OVMF_CODE_4M.ms.fd"),
                                     EnumValue(text="/usr/share/OVMF/OVMF_CODE_4M.fd")]
    assert platform.uefi_loader(secure_first, "h") == "/usr/share/OVMF/OVMF_CODE_4M.fd"
    without = domcaps.model_copy(update={"os": OsCaps(supported="yes", loader=LoaderCaps(supported="yes"))})
    with pytest.raises(UsageError, match="no UEFI firmware") as refused:
        platform.uefi_loader(without, "h")
    assert "ovmf" in refused.value.hint


def test_domain_xml_with_arch_cpu_and_uefi_round_trips():
    xml = guest_domain("u1", disks=[file_disk("/v/u1.qcow2")], arch="x86_64", cpu=cpu_element("host-model"),
                       uefi_loader="/usr/share/OVMF/OVMF_CODE_4M.fd").to_xml_string()
    back = Domain.from_xml(xml)
    assert (back.os.firmware, back.os.type.arch, back.cpu.mode) == ("efi", "x86_64", "host-model")
    assert (back.os.loader.path, back.os.loader.readonly, back.os.loader.type) == (
        "/usr/share/OVMF/OVMF_CODE_4M.fd", "yes", "pflash")
    assert back.os.nvram is None  # libvirt fills in the per-VM NVRAM from the firmware descriptor
    with pytest.raises(UsageError):
        guest_domain("u2", disks=[file_disk("/v/u2.qcow2")], uefi_loader="relative.fd")


def test_the_test_driver_refuses_what_it_cannot_do_and_nothing_is_made(conn):
    """libvirt's test driver offers no CPU mode and no firmware: the real refusals, before anything."""
    before = state_of(conn)
    for kw, match in (({"cpu": "host-model"}, "does not support it"), ({"firmware": "uefi"}, "no UEFI firmware"),
                      ({"arch": "aarch64"}, "cannot run aarch64 guests")):
        with pytest.raises(UsageError, match=match):
            create_vm(conn, HOST, VmSpec(name="p1", accel="tcg",
                                         disks=[DiskSpec(size=2**20, pool="default-pool")], **kw))
        assert state_of(conn) == before


# --location --------------------------------------------------------------------------------------

@pytest.mark.parametrize("listing,expected", [
    ({"install.amd": ["vmlinuz", "initrd.gz"], "install.amd/gtk": ["vmlinuz", "initrd.gz"]},
     ("debian", "install.amd/vmlinuz", "install.amd/initrd.gz")),
    ({"images/pxeboot": ["vmlinuz", "initrd.img"], "isolinux": ["vmlinuz", "initrd.img"]},
     ("fedora", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img")),
    ({"isolinux": ["ISOLINUX.BIN;1", "VMLINUZ.;1", "INITRD.IMG;1"]},
     ("isolinux", "isolinux/VMLINUZ.;1", "isolinux/INITRD.IMG;1")),
    ({"casper": ["vmlinuz", "initrd"]}, ("ubuntu", "casper/vmlinuz", "casper/initrd")),
])
def test_layouts(listing, expected):
    found = install_tree.find_boot_files(listing, "x.iso")
    assert (found.layout, found.kernel, found.initrd) == expected


def test_a_tree_without_kernel_and_initrd_is_refused():
    with pytest.raises(UsageError, match="no installer kernel and initrd") as refused:
        install_tree.find_boot_files({"isolinux": ["vmlinuz"], "install.amd": ["initrd.gz"]}, "x.iso")
    assert "install.amd/" in refused.value.hint and "images/pxeboot/" in refused.value.hint


def make_iso(path: Path, files: dict[str, bytes], rock_ridge: bool) -> None:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09" if rock_ridge else None)
    made = set()
    for name, data in files.items():
        directory, leaf = name.rsplit("/", 1)
        parts = directory.split("/")
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            if sub not in made:
                made.add(sub)
                iso_dir = "/" + sub.upper().replace(".", "_")
                iso.add_directory(iso_dir, rr_name=parts[depth - 1] if rock_ridge else None)
        iso_name = "/" + directory.upper().replace(".", "_") + "/" + leaf.upper() + ";1"
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=leaf if rock_ridge else None)
    iso.write(str(path))
    iso.close()


@pytest.mark.parametrize("rock_ridge", [True, False])
def test_kernel_and_initrd_are_read_from_an_iso(tmp_path, rock_ridge):
    iso = tmp_path / "inst.iso"
    initrd = os.urandom((3 << 20) + 123)
    make_iso(iso, {"isolinux/vmlinuz": b"KERNEL" * 1000, "isolinux/initrd.img": initrd,
                   "isolinux/isolinux.cfg": b"default x\n"}, rock_ridge)
    files = HostFiles(HOST)
    location = install_tree.locate(files, str(iso), "t1")  # its directories read in 1 MiB blocks with `dd`
    assert location.is_iso and location.boot.layout == "isolinux"
    for extent, content in zip(location.extents, (b"KERNEL" * 1000, initrd), strict=True):
        target = tmp_path / "copied"
        target.write_bytes(b"")
        install_tree.copy_out(files, str(iso), extent, str(target))
        assert target.read_bytes() == content
    not_iso = tmp_path / "notes.txt"
    not_iso.write_text("hello\n" * 10000)
    with pytest.raises(UsageError, match="not an ISO 9660 image"):
        install_tree.locate(files, str(not_iso), "t1")


def test_location_directory_boots_its_kernel_with_extra_args(conn, tmp_path):
    (tmp_path / "install.amd").mkdir()
    for name in ("vmlinuz", "initrd.gz"):
        (tmp_path / "install.amd" / name).write_bytes(b"x")
    request = VmRequest(accel="tcg", disks=[{"size": "8M", "pool": "default-pool"}], location=str(tmp_path),
                        extra_args="console=ttyS0 priority=critical")
    dom, created = create_vm(conn, HOST, request.to_spec("inst1"))
    try:
        os_el = Domain.from_xml(dom.XMLDesc(0)).os
        assert (os_el.kernel, os_el.initrd, os_el.cmdline) == (f"{tmp_path}/install.amd/vmlinuz",
                                                               f"{tmp_path}/install.amd/initrd.gz",
                                                               "console=ttyS0 priority=critical")
        assert created.install["layout"] == "debian" and not created.cdroms  # a directory is no CD-ROM
        # `undefine --remove-storage` would delete what is a pool volume: the disk, not the user's tree
        assert lifecycle.owned_storage(Domain.from_xml(dom.XMLDesc(0)))[0] == created.disks[0]
    finally:
        dom.undefine()
        conn.storageVolLookupByPath(created.disks[0]).delete(0)


def test_a_failed_copy_out_of_the_iso_removes_what_was_made(conn, tmp_path):
    """The test driver cannot upload into volumes: the disk and the planned kernel volume both go."""
    iso = tmp_path / "inst.iso"
    make_iso(iso, {"images/pxeboot/vmlinuz": b"k", "images/pxeboot/initrd.img": b"i"}, True)
    before = state_of(conn)
    request = VmRequest(accel="tcg", disks=[{"size": "8M", "pool": "default-pool"}], location=str(iso))
    with pytest.raises((libvirt.libvirtError, VpdError)):
        create_vm(conn, HOST, request.to_spec("inst2"))
    assert state_of(conn) == before


@pytest.mark.parametrize("kw,match", [
    ({"location": "/srv/x.iso", "cdrom": "/srv/y.iso"}, "leave out --cdrom"),
    ({"location": "/srv/x.iso", "boot": {"kernel": "/k"}}, "cannot go with --boot kernel"),
    ({"extra_args": "console=ttyS0"}, "needs --location"),
    ({"location": "relative/dir"}, "absolute path"),
    ({"firmware": "coreboot"}, "use bios or uefi"),
    ({"arch": "x86 64"}, "architecture"),
])
def test_request_refusals(kw, match):
    kw.setdefault("disks", [{"size": "8M", "pool": "default-pool"}])
    with pytest.raises(UsageError, match=match):
        VmRequest(**kw).to_spec("r1")


def test_boot_option_takes_uefi_alone_or_before_a_kernel():
    from vpd.cli.commands_vm import _boot_request

    assert _boot_request("uefi") == (None, "uefi")
    boot, firmware = _boot_request("uefi,kernel=/k,cmdline=console=ttyS0")
    assert (boot.kernel, boot.cmdline, firmware) == ("/k", "console=ttyS0", "uefi")
    assert _boot_request("kernel=/k")[1] is None
    with pytest.raises(UsageError, match="needs kernel=PATH"):
        _boot_request("uefi,initrd=/i")


@pytest.mark.parametrize("args", [
    ("--location", "/nonexistent/debian.iso", "--disk", "size=1M,pool=default-pool"),
    ("--arch", "aarch64", "--boot", "uefi", "--disk", "size=1M,pool=default-pool"),
])
def test_cli_refusals_make_nothing(test_inventory, args):
    proc = run_vpd("vm", "create", "r2", "--host", "t1", "--accel", "tcg", *args, inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


# vm display --open -------------------------------------------------------------------------------

def test_connection_file_carries_the_password_for_the_viewer():
    text = viewer.connection_file("vnc", "127.0.0.1", 5901, "pw123456", "web on h")
    assert text.splitlines() == ["[virt-viewer]", "type=vnc", "host=127.0.0.1", "port=5901", "title=web on h",
                                 "delete-this-file=1", "password=pw123456"]


def test_display_open_starts_the_viewer_or_says_how_to_get_one(test_inventory, conn, tmp_path, monkeypatch):
    g = graphics_device("vnc", "pw123456")
    g.port, g.autoport = 5907, "no"  # the test driver keeps a fixed port as given
    dom = conn.defineXML(guest_domain("dsp1", disks=[file_disk("/v/dsp1.qcow2")], graphics=[g]).to_xml_string())
    dom.create()
    try:
        probe = tmp_path / "probe"
        probe.write_text("#!/bin/sh\nstat -c %a \"$1\"\ncat \"$1\"\n")
        probe.chmod(probe.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv(viewer.VIEWER_ENV, str(probe))
        with Session(test_inventory) as session:
            opened = viewer.open_display(session, "dsp1", "t1")
        assert opened["opened"] and opened["viewer_exit"] == 0
        mode, *vv = opened["viewer_output"].splitlines()
        assert mode == "600" and "port=5907" in vv and "password=pw123456" in vv  # a local host: no tunnel
        monkeypatch.delenv(viewer.VIEWER_ENV)
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        with Session(test_inventory) as session:
            shown = viewer.open_display(session, "dsp1", "t1")
        assert not shown["opened"] and shown["reason"] == "remote-viewer is not installed here"
        assert "apt install virt-viewer" in shown["hint"] and shown["uri"].endswith(":5907")
    finally:
        dom.destroy()
        dom.undefine()


def test_spec_file_takes_the_install_keys(tmp_path):
    from vpd.vm.spec import load_request

    spec = tmp_path / "vm.toml"
    spec.write_text('location = "/srv/iso/debian.iso"\nextra_args = "console=ttyS0"\narch = "x86_64"\n'
                    'cpu = "host-model"\nfirmware = "uefi"\n[[disks]]\nsize = "8G"\n')
    vm = load_request(spec).to_spec("s1")
    assert (vm.location, vm.extra_args, vm.arch, vm.cpu, vm.firmware) == (
        "/srv/iso/debian.iso", "console=ttyS0", "x86_64", "host-model", "uefi")
