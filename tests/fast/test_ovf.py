"""OVF/OVA: the typed envelope, foreign descriptors, manifests, refusals of bad packages, and
import/export against libvirt's own test driver (whose storage has no upload/download streams,
which makes it a real failure point for the rollback checks)."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import libvirt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ovf_fixtures import as_ova, virtualbox_package, vmware_package

from vpd.connect.inventory import Host
from vpd.core.errors import UsageError, VpdError
from vpd.ovf import envelope as ovf
from vpd.ovf.export import PackagedDisk, build_envelope, export_vm
from vpd.ovf.images import check_standalone
from vpd.ovf.import_ import build_domain, import_package, plan_import
from vpd.ovf.package import manifest_bytes, parse_manifest, read_package
from vpd.xml.domain import Domain, lab_guest_domain

from .conftest import run_vpd

HOST = Host(name="t", uri="test:///default")


@pytest.fixture
def conn():
    c = libvirt.open("test:///default")
    yield c
    c.close()


def snapshot(c: libvirt.virConnect) -> tuple:
    """Everything an import could leave behind on the test driver."""
    pools = c.listAllStoragePools()
    for p in pools:
        p.refresh(0)
    return (sorted(d.name() for d in c.listAllDomains()),
            sorted((p.name(), tuple(sorted(p.listVolumes()))) for p in pools))


# --- The envelope -------------------------------------------------------------------------

def lab_domain() -> Domain:
    xml = lab_guest_domain("og", kernel="/boot/vmlinuz", initrd="/cache/initrd.img", cmdline="console=ttyS0 quiet",
                           disk_path="/pool/og.qcow2", memory_mib=192, vcpus=2,
                           macs={"52:54:00:00:00:01": "default"}).to_xml_string()
    return Domain.from_xml(xml.encode())


def test_vpd_envelope_round_trips_and_maps_back_to_the_same_hardware():
    disks = [PackagedDisk("og-disk1.vmdk", 4096, 64 * 2**20, "vmdk", "ide", "hda")]
    envelope = build_envelope(lab_domain(), disks, {"kernel": ("og-kernel", 10), "initrd": ("og-initrd", 5)}, "og")
    data = envelope.to_bytes()
    assert data.startswith(b"<?xml") and b'ovf:version="2.0"' in data
    parsed = ovf.parse_envelope(data)
    assert parsed == envelope
    assert parsed.disk("vmdisk1").capacity_bytes() == 64 * 2**20
    plan = plan_import(parsed, "og2")
    assert (plan.vcpus, plan.memory_mib) == (2, 192)
    assert [(d.device, d.bus, d.dev, d.format, d.capacity) for d in plan.disks] == [
        ("disk", "ide", "hda", "vmdk", 64 * 2**20)]
    assert [(n.network, n.model) for n in plan.nics] == [("default", "virtio")]
    assert plan.serial_ports == [0, 1]
    assert (plan.kernel.href, plan.initrd.href, plan.cmdline) == ("og-kernel", "og-initrd", "console=ttyS0 quiet")
    domain = build_domain(plan, "test", {0: "/pool/og2-disk1.qcow2"}, ["52:54:00:aa:bb:cc"], ["default"],
                          "/pool/og2-kernel", "/pool/og2-initrd")
    assert domain.os.kernel == "/pool/og2-kernel" and domain.os.cmdline == "console=ttyS0 quiet"
    assert [(d.target.dev, d.target.bus, d.driver.type) for d in domain.disks] == [("hda", "ide", "qcow2")]


def test_rasd_properties_are_written_in_schema_order():
    disks = [PackagedDisk("og-disk1.vmdk", 4096, 64 * 2**20, "vmdk", "ide", "hda")]
    root = build_envelope(lab_domain(), disks, {}, "og").to_xml_tree()
    for item in root.iter(f"{{{ovf.OVF_NS}}}Item"):
        names = [child.tag.split("}")[1] for child in item]
        assert names == sorted(names), names  # CIM RASD properties are an alphabetical xs:sequence


def test_vmware_style_ova_is_understood(tmp_path):
    package = read_package(as_ova(tmp_path / "a.ova", vmware_package(tmp_path)))
    try:
        assert package.kind == "ova" and set(package.manifest) == {"appliance.ovf", "appliance-disk1.vmdk"}
        plan = plan_import(package.envelope, "appliance")
    finally:
        package.close()
    assert (plan.vcpus, plan.memory_mib, plan.graphics) == (2, 256, True)
    # The disk sits on the SCSI controller, the CD on IDE 1 (secondary master: hdc).
    assert [(d.device, d.bus, d.dev) for d in plan.disks] == [("disk", "scsi", "sda"), ("cdrom", "ide", "hdc")]
    assert plan.disks[0].capacity == 64 * 2**20 and plan.disks[0].format == "vmdk"
    assert [(n.network, n.model) for n in plan.nics] == [("VM Network", "e1000")]
    assert any("VMCI" in note for note in plan.notes)


def test_virtualbox_style_ova_with_storage_and_ethernet_port_items(tmp_path):
    package = read_package(as_ova(tmp_path / "v.ova", virtualbox_package(tmp_path)))
    try:
        plan = plan_import(package.envelope, "vboxvm")
        assert package.manifest["vboxvm.ovf"].algorithm == "SHA256"
    finally:
        package.close()
    assert (plan.vcpus, plan.memory_mib) == (1, 512)  # 'MegaBytes', VirtualBox's older unit name
    assert [(d.bus, d.dev, d.capacity) for d in plan.disks] == [("sata", "sda", 32 * 2**20)]
    assert [(n.network, n.model) for n in plan.nics] == [("NAT", "virtio")]


@pytest.mark.parametrize("units,scale", [("byte", 1), ("byte * 2^20", 2**20), ("byte*2^30", 2**30),
                                         ("byte * 10^6", 10**6), ("MegaBytes", 2**20), ("GigaBytes", 2**30)])
def test_allocation_units(units, scale):
    assert ovf.units_to_bytes(units) == scale


@pytest.mark.parametrize("units", ["", "bit", "byte * 3^4", "byte * 2^99", "KB; rm -rf /", "pages"])
def test_unknown_allocation_units_are_refused(units):
    with pytest.raises(UsageError):
        ovf.units_to_bytes(units)


@given(st.integers(min_value=1, max_value=2**50))
def test_capacity_units_round_trip(value):
    quantity, units = ovf.bytes_to_units(value)
    assert quantity * ovf.units_to_bytes(units) == value


# --- Manifests ----------------------------------------------------------------------------

def test_manifest_layouts_of_vmware_and_virtualbox():
    sha1 = hashlib.sha1(b"x").hexdigest()
    sha256 = hashlib.sha256(b"x").hexdigest()
    parsed = parse_manifest(f"SHA1(a.ovf)= {sha1}\nSHA256 (b.vmdk) = {sha256.upper()}\n".encode())
    assert parsed["a.ovf"].algorithm == "SHA1" and parsed["b.vmdk"].hexdigest == sha256
    assert parse_manifest(manifest_bytes({"c.ovf": sha256}))["c.ovf"].hexdigest == sha256


@pytest.mark.parametrize("text", ["MD5(a.ovf)= 00", "SHA256(a.ovf)= abc", "garbage",
                                  f"SHA1(../x)= {'0' * 40}", f"SHA1(a)= {'0' * 40}\nSHA1(a)= {'0' * 40}"])
def test_bad_manifests_are_refused(text):
    with pytest.raises(UsageError):
        parse_manifest(text.encode())


# --- Refusing bad packages ----------------------------------------------------------------

def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.fixture
def members(tmp_path) -> dict[str, bytes]:
    return vmware_package(tmp_path)


def refused(path: Path, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        package = read_package(path)
        try:
            plan_import(package.envelope, "x")
            for f in package.envelope.references.files:
                package.stage(f, path.parent)
        finally:
            package.close()


def test_corrupt_ova_is_refused(tmp_path, members):
    good = as_ova(tmp_path / "good.ova", members).read_bytes()
    (tmp_path / "cut.ova").write_bytes(good[:1500])
    refused(tmp_path / "cut.ova", "corrupt|not a readable|missing|bytes")
    (tmp_path / "noise.ova").write_bytes(b"\x00\x01garbage" * 100)
    refused(tmp_path / "noise.ova", "not a readable OVA|corrupt|first member")


@pytest.mark.parametrize("bad", [
    member("../../etc/evil"), member("/etc/evil"), member("sub/evil"),
    member("link.vmdk", tarfile.SYMTYPE, "/etc/shadow"), member("hard", tarfile.LNKTYPE, "appliance.ovf"),
    member("dir", tarfile.DIRTYPE), member("dev", tarfile.CHRTYPE),
])
def test_unsafe_tar_members_are_refused_before_anything_is_written(tmp_path, members, bad):
    items = [(member(n), d) for n, d in members.items()] + [(bad, b"boom")]
    path = tmp_path / "bad.ova"
    path.write_bytes(tar_bytes(items))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    refused(path, "unsafe|not a regular file")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not Path("/etc/evil").exists()


def test_descriptor_must_come_first_and_members_be_unique(tmp_path, members):
    names = list(members)
    refused(as_ova(tmp_path / "order.ova", {n: members[n] for n in reversed(names)}), "first member")
    items = [(member(n), d) for n, d in members.items()] + [(member(names[2]), members[names[2]])]
    (tmp_path / "dup.ova").write_bytes(tar_bytes(items))
    refused(tmp_path / "dup.ova", "twice")


def test_wrong_checksums_are_refused(tmp_path, members):
    disk = next(n for n in members if n.endswith(".vmdk"))
    tampered = dict(members)
    tampered[disk] = members[disk][:-1] + bytes([members[disk][-1] ^ 1])
    refused(as_ova(tmp_path / "disk.ova", tampered), "digest does not match")
    tampered = dict(members)
    tampered["appliance.ovf"] = members["appliance.ovf"].replace(b"256MB", b"257MB")
    refused(as_ova(tmp_path / "ovf.ova", tampered), "digest does not match")


def test_missing_files_and_sizes_are_checked(tmp_path, members):
    disk = next(n for n in members if n.endswith(".vmdk"))
    refused(as_ova(tmp_path / "nodisk.ova", {n: d for n, d in members.items() if n != disk}), "missing")
    lying = dict(members)
    lying["appliance.ovf"] = members["appliance.ovf"].replace(b'ovf:size="', b'ovf:size="1')
    lying.pop("appliance.mf")
    refused(as_ova(tmp_path / "size.ova", lying), "descriptor says")


def test_ovf_directory_package_and_missing_source(tmp_path, members):
    directory = tmp_path / "pkg"
    directory.mkdir()
    for n, d in members.items():
        (directory / n).write_bytes(d)
    package = read_package(directory)
    assert package.kind == "ovf" and package.envelope.virtual_system.name == "appliance"
    package.close()
    with pytest.raises(UsageError, match="does not exist"):
        read_package(tmp_path / "nowhere.ova")
    (directory / "appliance-disk1.vmdk").unlink()
    (directory / "appliance-disk1.vmdk").symlink_to("/etc/passwd")
    refused(directory / "appliance.ovf", "not a regular file")


@pytest.mark.parametrize("change,match", [
    (lambda x: x.replace(b'ovf:href="appliance-disk1.vmdk"', b'ovf:href="../appliance-disk1.vmdk"'), "unsafe"),
    (lambda x: x.replace(b"<AnnotationSection ovf:required=\"false\">", b"<vmw:Mystery><Info>x</Info></vmw:Mystery>"
                                                                       b"<AnnotationSection>"), "does not understand"),
    (lambda x: x.replace(b"VirtualSystem ", b"VirtualSystemCollection ").replace(b"</VirtualSystem>",
                                                                                 b"</VirtualSystemCollection>"),
     "one virtual machine"),
    (lambda x: b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><e>&x;</e>', "not an OVF"),
    (lambda x: x[:200], "not well-formed"),
    (lambda x: x.replace(b'ovf:capacity="64"', b'ovf:capacity="${disk.size}"'), "not a whole number"),
])
def test_bad_descriptors_are_refused(tmp_path, members, change, match):
    changed = dict(members)
    changed["appliance.ovf"] = change(members["appliance.ovf"])
    changed.pop("appliance.mf")
    refused(as_ova(tmp_path / "bad.ova", changed), match)


def test_images_reading_other_files_are_refused(tmp_path):
    base = tmp_path / "secret.raw"
    base.write_bytes(b"secret" * 1000)
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw", str(overlay)], check=True)
    with pytest.raises(UsageError, match="backing file"):
        check_standalone(overlay, "qcow2")
    with pytest.raises(UsageError, match="declared vmdk"):
        check_standalone(overlay, "vmdk")


# --- Import and export on the test driver -------------------------------------------------

def test_refusals_on_the_host_change_nothing(conn, tmp_path, members):
    ova = as_ova(tmp_path / "a.ova", members)
    before = snapshot(conn)
    conn.defineXML(lab_guest_domain("taken", kernel="/k", initrd="/i", cmdline="", domain_type="test").to_xml_string())
    before = snapshot(conn)
    cases = [
        (dict(name="taken", networks={"*": "default"}), "already exists"),
        (dict(name="new", pool_name="nopool", networks={"*": "default"}), "no storage pool"),
        (dict(name="new"), "network 'VM Network' does not exist"),
        (dict(name="new", networks={"VM Network": "missing"}), "does not exist"),
        (dict(name="bad name", networks={"*": "default"}), "invalid VM name"),
        (dict(name="../x", networks={"*": "default"}), "invalid VM name"),
    ]
    for kwargs, match in cases:
        with pytest.raises(UsageError, match=match):
            import_package(conn, HOST, ova, **kwargs)
        assert snapshot(conn) == before


def test_a_disk_larger_than_the_pool_is_refused(conn, tmp_path):
    ova = as_ova(tmp_path / "big.ova", vmware_package(tmp_path, capacity="2", capacity_units="byte * 2^40"))
    before = snapshot(conn)
    with pytest.raises(UsageError, match="larger than the whole pool"):
        import_package(conn, HOST, ova, name="big", networks={"*": "default"})
    assert snapshot(conn) == before


def test_volume_name_clash_is_refused(conn, tmp_path, members):
    pool = conn.storagePoolLookupByName("default-pool")
    pool.createXML("<volume><name>clash-disk1.qcow2</name><capacity>1</capacity></volume>", 0)
    before = snapshot(conn)
    with pytest.raises(UsageError, match="already has clash-disk1.qcow2"):
        import_package(conn, HOST, as_ova(tmp_path / "a.ova", members), name="clash", networks={"*": "default"})
    assert snapshot(conn) == before


def test_a_failure_after_volumes_were_made_leaves_nothing(conn, tmp_path, members):
    """The test driver cannot upload into volumes: the import fails after creating one, and undoes it."""
    before = snapshot(conn)
    with pytest.raises(libvirt.libvirtError, match="not supported"):
        import_package(conn, HOST, as_ova(tmp_path / "a.ova", members), name="half", networks={"*": "default"})
    assert snapshot(conn) == before


def test_blank_disk_package_is_defined(conn, tmp_path, members):
    """A DiskSection entry without a file is a blank disk: no upload, so the test driver runs it all."""
    descriptor = members["appliance.ovf"].replace(b' ovf:fileRef="file1"', b"").replace(
        b'<File ovf:href="appliance-disk1.vmdk" ovf:id="file1" ovf:size="65536"/>', b"")
    directory = tmp_path / "blank"
    directory.mkdir()
    (directory / "blank.ovf").write_bytes(descriptor)
    dom, imported = import_package(conn, HOST, directory / "blank.ovf", name="blank", networks={"*": "default"})
    xml = Domain.from_xml(dom.XMLDesc(0).encode())
    assert (xml.vcpu, xml.memory.in_bytes) == (2, 256 * 2**20)
    assert [(d.device, d.target.dev, d.target.bus) for d in xml.disks] == [("disk", "sda", "scsi"),
                                                                            ("cdrom", "hdc", "ide")]
    assert [i.source.network for i in xml.interfaces] == ["default"] and imported.macs[0].startswith("52:54:00:")
    assert imported.volumes == ["/default-pool/blank-disk1.qcow2"]
    assert any("no manifest" in note for note in imported.notes)


@given(st.text(min_size=1, max_size=20))
def test_any_name_is_either_valid_or_refused_without_change(name):
    c = libvirt.open("test:///default")
    try:
        before = snapshot(c)
        try:
            import_package(c, HOST, Path("/nonexistent/package.ova"), name=name)
        except UsageError:
            pass
        assert snapshot(c) == before
    finally:
        c.close()


def test_export_failure_leaves_no_package_behind(conn, tmp_path):
    pool = conn.storagePoolLookupByName("default-pool")
    vol = pool.createXML("<volume><name>src.img</name><capacity>1048576</capacity></volume>", 0)
    conn.defineXML(lab_guest_domain("src", kernel="/k", initrd="/i", cmdline="", disk_path=vol.path(),
                                    disk_format="raw", domain_type="test").to_xml_string())
    with pytest.raises((libvirt.libvirtError, VpdError)):
        export_vm(conn, HOST, "src", ova_file=tmp_path / "src.ova")
    assert list(tmp_path.iterdir()) == []
    for kwargs, match in [(dict(ova_file=tmp_path / "x.tar"), "ends in .ova"),
                          (dict(), "exactly one"),
                          (dict(ovf_dir=tmp_path / "d", ova_file=tmp_path / "x.ova"), "exactly one"),
                          (dict(ovf_dir=tmp_path / "no" / "d"), "does not exist")]:
        with pytest.raises(UsageError, match=match):
            export_vm(conn, HOST, "src", **kwargs)
    with pytest.raises(UsageError, match="no VM"):
        export_vm(conn, HOST, "nosuch", ova_file=tmp_path / "n.ova")
    assert list(tmp_path.iterdir()) == []


# --- CLI ----------------------------------------------------------------------------------

def test_cli_bad_input_exits_2_with_json(tmp_path, test_inventory):
    (tmp_path / "junk.ova").write_bytes(b"not a tar at all" * 64)
    proc = run_vpd("import", str(tmp_path / "junk.ova"), "--host", "t1", "--json", inventory=test_inventory,
                   check_rc=2)
    assert "OVA" in json.loads(proc.stdout)["error"]
    run_vpd("import", str(tmp_path / "a.ova"), "--host", "t1", "--network", "=x", inventory=test_inventory, check_rc=2)
    run_vpd("import", str(tmp_path / "a.ova"), "--host", "nohost", inventory=test_inventory, check_rc=2)
    run_vpd("export", "a'b", "--host", "t1", "--ova", str(tmp_path / "x.ova"), inventory=test_inventory, check_rc=2)
    proc = run_vpd("export", "test", "--host", "t1", "--ova", str(tmp_path / "x.ova"), inventory=test_inventory,
                   check_rc=2)
    assert "running" in proc.stderr
    run_vpd("export", "test", "--host", "t1", "--ova", str(tmp_path / "x.ova"), "--disk-format", "vdi",
            inventory=test_inventory, check_rc=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.toml", "junk.ova"]


def test_a_package_name_vpd_cannot_use_needs_name(conn, tmp_path):
    members = vmware_package(tmp_path, name="appliance")
    descriptor = members["appliance.ovf"].replace(b"<Name>appliance</Name>", b"<Name>Ubuntu 22.04 'LTS'</Name>")
    members = {"appliance.ovf": descriptor, "appliance-disk1.vmdk": members["appliance-disk1.vmdk"]}
    before = snapshot(conn)
    with pytest.raises(UsageError, match="--name") as caught:
        import_package(conn, HOST, as_ova(tmp_path / "n.ova", members), networks={"*": "default"})
    assert "Ubuntu 22.04" in str(caught.value)
    assert snapshot(conn) == before
