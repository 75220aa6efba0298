"""`vpd vm create` beyond the lab guest: spec files, disks and NICs, firmware boot, imports,
`vm edit` and the serial-log history, on libvirt's test driver (a real driver, not a mock).
Everything refused is refused before anything is made."""
from __future__ import annotations

import subprocess
from pathlib import Path

import libvirt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpd.connect.inventory import Host
from vpd.core.errors import UsageError, VpdError
from vpd.vm import lifecycle
from vpd.vm.console import serial_log_path
from vpd.vm.create import DiskSpec, NicSpec, VmSpec, create_vm
from vpd.vm.spec import VmRequest, device_defaults, load_request
from vpd.xml.domain import Domain, guest_domain
from vpd.xml.edit import DomainEditor

from .conftest import run_vpd

HOST = Host(name="t1", uri="test:///default")


def snapshot_of(conn) -> tuple:
    pool = conn.storagePoolLookupByName("default-pool")
    return sorted(d.name() for d in conn.listAllDomains()), sorted(pool.listVolumes())


def spec(**kw) -> VmSpec:
    kw.setdefault("accel", "tcg")
    return VmSpec(**kw)


def test_disks_and_nics_from_flags_become_devices(conn):
    s = spec(name="web1", disks=[DiskSpec(size=64 * 2**20, pool="default-pool", bus="virtio"),
                                 DiskSpec(size=32 * 2**20, pool="default-pool", format="raw", bus="virtio")],
             nics=[NicSpec(kind="network", source="default", mac="52:54:00:aa:bb:01")])
    dom, created = create_vm(conn, HOST, s)
    try:
        domain = Domain.from_xml(dom.XMLDesc(0))
        assert [(d.target.dev, d.target.bus, d.driver.type) for d in domain.disks] == [
            ("vda", "virtio", "qcow2"), ("vdb", "virtio", "raw")]
        assert domain.os.kernel is None and [b.dev for b in domain.os.boot] == ["hd"]  # firmware boots the disk
        assert [(i.source.network, i.mac.address) for i in domain.interfaces] == [("default", "52:54:00:aa:bb:01")]
        assert created.disks == ["/default-pool/web1.qcow2", "/default-pool/web1-1.raw"]
        assert DomainEditor.from_xml(dom.XMLDesc(0)).serial_log == serial_log_path("web1")
    finally:
        dom.undefine()
        for path in created.disks:
            conn.storageVolLookupByPath(path).delete(0)


@pytest.mark.parametrize("kw,match", [
    ({"disks": [DiskSpec(size=2**50, pool="default-pool")]}, "cannot hold"),
    ({"disks": [DiskSpec(size=2**20, pool="nosuchpool")]}, "no storage pool"),
    ({"disks": [DiskSpec(size=2**20, pool="default-pool")], "nics": [NicSpec(kind="network", source="nonet")]},
     "no network"),
    ({"disks": [DiskSpec(size=2**20, pool="default-pool")], "nics": [NicSpec(kind="bridge", source="nobr0")]},
     "not a bridge"),
    ({"disks": [DiskSpec(import_image="/nonexistent/vpd-image.qcow2", pool="default-pool")]}, "no image"),
])
def test_refusals_make_nothing(conn, kw, match):
    before = snapshot_of(conn)
    with pytest.raises(UsageError, match=match):
        create_vm(conn, HOST, spec(name="nope", **kw))
    assert snapshot_of(conn) == before


def test_failed_import_copy_is_rolled_back(conn, tmp_path: Path):
    """The test driver's volumes are not real files, so qemu-img fails after the volume was made."""
    image = tmp_path / "disk.vmdk"
    subprocess.run(["qemu-img", "create", "-f", "vmdk", str(image), "16M"], check=True, capture_output=True)
    before = snapshot_of(conn)
    with pytest.raises(VpdError, match="qemu-img convert failed"):
        create_vm(conn, HOST, spec(name="imp", disks=[DiskSpec(import_image=str(image), pool="default-pool")]))
    assert snapshot_of(conn) == before


def test_spec_file_round_trip(tmp_path: Path):
    path = tmp_path / "vm.toml"
    path.write_text('name = "db1"\nhost = "t1"\nmemory = 256\nos_variant = "debian11"\n'
                    '[[disks]]\nsize = "1G"\npool = "default-pool"\n'
                    '[[disks]]\nimport = "/srv/data.qcow2"\n'
                    '[[networks]]\nbridge = "br0"\n')
    request = load_request(path)
    s = request.to_spec("db1")
    assert (s.memory_mib, s.disks[0].size, s.disks[0].bus, s.disks[1].import_image) == (256, 2**30, "virtio",
                                                                                         "/srv/data.qcow2")
    assert (s.nics[0].kind, s.nics[0].source, s.nics[0].model) == ("bridge", "br0", "virtio")


@pytest.mark.parametrize("text,match", [
    ('memroy = 3\n', "Extra inputs"),
    ('[[disks]]\npool = "p"\n', "exactly one of size or import"),
    ('[[networks]]\nnetwork = "a"\nbridge = "b"\n', "exactly one of network or bridge"),
    ('name = \n', "not valid TOML"),
])
def test_bad_spec_files_are_usage_errors(tmp_path: Path, text, match):
    path = tmp_path / "vm.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=match):
        load_request(path)


def test_os_variant_picks_device_defaults():
    assert device_defaults(None) == ("ide", "virtio")
    assert device_defaults("debian11") == ("virtio", "virtio")
    assert device_defaults("win11") == ("sata", "e1000e")
    with pytest.raises(UsageError, match="unknown OS variant"):
        device_defaults("debianish")
    with pytest.raises(UsageError):
        VmRequest(os_variant="nosuchos9", disks=[{"size": "1G"}]).to_spec("x")


@given(st.builds(lambda a, bad, b: a + bad + b, st.text(max_size=8), st.sampled_from(["'", '"', " ", "/", "../", "\n", ";"]),
                 st.text(max_size=8)))
def test_nic_and_pool_names_are_checked(name):
    with pytest.raises(UsageError):
        NicSpec(kind="network", source=name)
    with pytest.raises(UsageError):
        DiskSpec(size=1, pool=name)


def test_firmware_boot_needs_a_disk():
    with pytest.raises(UsageError, match="nothing to boot"):
        guest_domain("x")
    with pytest.raises(UsageError, match="share a target"):
        from vpd.xml.domain import file_disk
        guest_domain("x", disks=[file_disk("/a.qcow2"), file_disk("/b.qcow2")])


def test_edit_is_validated_before_it_applies(conn):
    dom, created = create_vm(conn, HOST, spec(name="ed1", kernel="/k", initrd="/i"))
    try:
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        with pytest.raises(UsageError, match="renames"):
            lifecycle.apply_edit(dom, HOST, xml.replace("<name>ed1</name>", "<name>ed2</name>"))
        with pytest.raises(UsageError, match="not valid"):
            lifecycle.apply_edit(dom, HOST, xml.replace("</domain>", ""))
        with pytest.raises(UsageError, match="libvirt rejects"):
            lifecycle.apply_edit(dom, HOST, xml.replace("placement='static'", "placement='bogus'"))
        assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == xml
        lifecycle.apply_edit(dom, HOST, xml.replace("<vcpu placement='static'>1</vcpu>",
                                                    "<vcpu placement='static'>2</vcpu>"))
        assert dom.info()[3] == 2
    finally:
        dom.undefine()


def test_console_log_reads_the_history_of_a_stopped_vm(conn, tmp_path: Path):
    log = tmp_path / "con.log"
    log.write_text("VPD-BOOT-MARKER bootid=1\nline 2\nline 3\n")
    dom, _ = create_vm(conn, HOST, spec(name="con1", kernel="/k", initrd="/i", serial_log=str(log)))
    try:
        assert lifecycle.console_log(dom, HOST) == {"source": str(log), "output": log.read_text()}
        assert lifecycle.console_log(dom, HOST, lines=1)["output"] == "line 3\n"
    finally:
        dom.undefine()


def test_clones_get_their_own_serial_log():
    ed = DomainEditor.from_xml(guest_domain("a", kernel="/k", serial_log=serial_log_path("a")).to_xml_string())
    ed.give_own_serial_log(serial_log_path("b"))
    assert ed.serial_log == serial_log_path("b")


@pytest.mark.parametrize("args", [
    ("vm", "create", "x", "--host", "t1", "--spec", "/nonexistent.toml"),
    ("vm", "create", "x", "--host", "t1", "--disk", "pool=default-pool"),
    ("vm", "create", "x", "--host", "t1", "--disk", "size=1M,import=/a"),
    ("vm", "create", "x", "--host", "t1", "--network", "network=a,bridge=b", "--disk", "size=1M"),
    ("vm", "create", "x", "--host", "t1", "--network", "net=a", "--disk", "size=1M"),
    ("vm", "create", "x", "--host", "t1", "--import", "relative.img"),
    ("vm", "create", "x", "--host", "t1", "--os-variant", "nosuchos", "--disk", "size=1M"),
    ("vm", "create", "x", "--host", "t1"),
    ("vm", "create", "--host", "t1", "--disk", "size=1M"),
    ("vm", "console", "test", "--host", "t1", "--json"),
])
def test_cli_refusals(test_inventory, args):
    proc = run_vpd(*args, inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
