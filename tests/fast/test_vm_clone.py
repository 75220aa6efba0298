"""Cloning on libvirt's own test driver: new name, UUID, MACs, disk copies or overlays; bad input changes nothing."""
from __future__ import annotations

import libvirt
import pytest
from lxml import etree

from vpd.connect.inventory import Host
from vpd.core.errors import UsageError, VpdError
from vpd.vm import lifecycle
from vpd.vm.clone import clone_names, clone_vm, clone_vms, linked_dependents, new_mac
from vpd.xml.domain import lab_guest_domain
from vpd.xml.edit import DomainEditor, nvram_path
from vpd.xml.pool import dir_pool
from vpd.xml.volume import volume

HOST = Host(name="t", uri="test:///default")


@pytest.fixture
def conn():
    c = libvirt.open("test:///default")  # a private in-memory instance per open
    pool = c.storagePoolCreateXML(dir_pool("images", "/images").to_xml_string(), 0)
    vol = pool.createXML(volume("src.qcow2", 64 * 2**20).to_xml_string(), 0)
    xml = lab_guest_domain("src", kernel="/k", initrd="/i", cmdline="x", disk_path=vol.path(), domain_type="test",
                           macs={"52:54:00:00:00:01": "default"}).to_xml_string()
    c.defineXML(xml)
    yield c
    c.close()


def test_full_clone_gets_its_own_identity_and_disk(conn):
    cloned = clone_vm(conn, HOST, "src", "copy1")
    src = etree.fromstring(conn.lookupByName("src").XMLDesc(0).encode())
    new = etree.fromstring(conn.lookupByName("copy1").XMLDesc(0).encode())
    assert new.findtext("uuid") != src.findtext("uuid") == conn.lookupByName("src").UUIDString()
    assert new.xpath("devices/disk/source/@file") == ["/images/copy1.qcow2"] == cloned.disks
    assert new.xpath("devices/interface/mac/@address") != src.xpath("devices/interface/mac/@address")
    assert "copy1.qcow2" in conn.storagePoolLookupByName("images").listVolumes()


def test_running_source_needs_consent_and_changes_nothing(conn):
    conn.lookupByName("src").create()
    before = sorted(conn.listDefinedDomains() + [d.name() for d in conn.listAllDomains()])
    with pytest.raises(UsageError, match="crash-consistent"):
        clone_vm(conn, HOST, "src", "copy2")
    assert sorted(conn.listDefinedDomains() + [d.name() for d in conn.listAllDomains()]) == before
    assert conn.storagePoolLookupByName("images").listVolumes() == ["src.qcow2"]


@pytest.mark.parametrize("new", ["src", "bad name", "../x"])
def test_bad_or_taken_names_change_nothing(conn, new):
    with pytest.raises(UsageError):
        clone_vm(conn, HOST, "src", new)
    assert conn.storagePoolLookupByName("images").listVolumes() == ["src.qcow2"]


def test_new_macs_avoid_the_taken_ones():
    import random

    taken = {new_mac(set(), random.Random(1))}
    assert new_mac(taken, random.Random(1)) not in taken


def _volumes(conn):
    return sorted(conn.storagePoolLookupByName("images").listVolumes())


def test_linked_clone_is_an_overlay_in_the_same_pool(conn):
    cloned = clone_vm(conn, HOST, "src", "lnk", linked=True)
    assert cloned.disks == ["/images/lnk.qcow2"]
    vol = etree.fromstring(conn.storageVolLookupByPath("/images/lnk.qcow2").XMLDesc(0).encode())
    assert vol.findtext("backingStore/path") == "/images/src.qcow2"
    assert vol.find("backingStore/format").get("type") == "qcow2"
    new = etree.fromstring(conn.lookupByName("lnk").XMLDesc(0).encode())
    assert new.find("devices/disk/driver").get("type") == "qcow2"
    assert linked_dependents(conn, conn.lookupByName("src")) == ["/images/lnk.qcow2"]
    assert linked_dependents(conn, conn.lookupByName("lnk")) == []


def test_source_of_linked_clones_is_protected_until_they_are_gone(conn):
    clone_vm(conn, HOST, "src", "lnk", linked=True)
    src = conn.lookupByName("src")
    with pytest.raises(UsageError, match="linked clones"):
        lifecycle.start(src)
    with pytest.raises(UsageError, match="linked clones"):
        lifecycle.undefine(src, remove_storage=True)
    assert not src.isActive() and "src" in conn.listDefinedDomains() and "src.qcow2" in _volumes(conn)
    conn.lookupByName("lnk").undefine()
    conn.storageVolLookupByPath("/images/lnk.qcow2").delete(0)
    lifecycle.start(src)
    assert src.isActive()


def test_linked_clone_needs_a_shut_off_source_and_its_own_pool(conn):
    conn.lookupByName("src").create()
    conn.lookupByName("src").suspend()
    with pytest.raises(UsageError, match="not shut off"):
        clone_vm(conn, HOST, "src", "lnk", linked=True, allow_running=True)
    conn.lookupByName("src").destroy()
    with pytest.raises(UsageError, match="--pool"):
        clone_vm(conn, HOST, "src", "lnk", pool_name="images", linked=True)
    assert _volumes(conn) == ["src.qcow2"] and "lnk" not in conn.listDefinedDomains()


def test_count_makes_numbered_clones_all_or_nothing(conn):
    made = clone_vms(conn, HOST, "src", clone_names("web", 3), linked=True)
    assert [c.name for c in made] == ["web-1", "web-2", "web-3"]
    assert len({c.macs[0] for c in made}) == 3
    # web-2 exists now: a second batch overlapping it makes nothing at all.
    conn.lookupByName("web-1").undefine()
    conn.storageVolLookupByPath("/images/web-1.qcow2").delete(0)
    before = _volumes(conn)
    with pytest.raises(UsageError, match="web-2"):
        clone_vms(conn, HOST, "src", clone_names("web", 2), linked=True)
    assert _volumes(conn) == before and "web-1" not in conn.listDefinedDomains()


def test_failure_part_way_removes_the_clones_already_made(conn):
    # A leftover volume named like the second clone's disk makes the second clone fail.
    conn.storagePoolLookupByName("images").createXML(volume("b-2.qcow2", 2**20).to_xml_string(), 0)
    with pytest.raises(UsageError, match="b-2.qcow2"):
        clone_vms(conn, HOST, "src", clone_names("b", 2))
    assert "b-1" not in conn.listDefinedDomains() and _volumes(conn) == ["b-2.qcow2", "src.qcow2"]


@pytest.mark.parametrize("count", [0, 101])
def test_count_out_of_range(count):
    with pytest.raises(UsageError, match="out of range"):
        clone_names("web", count)


def test_mac_goes_to_the_first_nic(conn):
    cloned = clone_vm(conn, HOST, "src", "m", mac="52:54:00:AA:BB:CC")
    assert cloned.macs == ["52:54:00:aa:bb:cc"]
    assert etree.fromstring(conn.lookupByName("m").XMLDesc(0).encode()).xpath(
        "devices/interface/mac/@address") == ["52:54:00:aa:bb:cc"]


@pytest.mark.parametrize("mac,match", [("01:00:5e:00:00:01", "multicast"), ("52:54:00:zz:00:01", "invalid"),
                                       ("52:54:00:00:00:01", "already in use")])
def test_bad_or_taken_mac_changes_nothing(conn, mac, match):
    with pytest.raises(UsageError, match=match):
        clone_vm(conn, HOST, "src", "m", mac=mac)
    assert _volumes(conn) == ["src.qcow2"] and "m" not in conn.listDefinedDomains()


def test_mac_cannot_go_with_count(conn):
    with pytest.raises(UsageError, match="--count"):
        clone_vms(conn, HOST, "src", clone_names("m", 2), mac="52:54:00:00:00:09")
    assert _volumes(conn) == ["src.qcow2"]


def thin_source(conn, gib: int) -> None:
    """A VM 'thin' whose qcow2 disk has `gib` GiB of capacity and nothing allocated yet
    (the test driver's pool holds 100 GiB)."""
    pool = conn.storagePoolLookupByName("images")
    vol = pool.createXML(f"<volume><name>thin.qcow2</name><capacity>{gib * 2**30}</capacity>"
                         "<allocation>0</allocation><target><format type='qcow2'/></target></volume>", 0)
    conn.defineXML(lab_guest_domain("thin", kernel="/k", initrd="/i", cmdline="x", disk_path=vol.path(),
                                    domain_type="test", macs={"52:54:00:00:00:02": "default"}).to_xml_string())


def test_full_clone_of_a_disk_its_pool_can_never_hold_is_refused_up_front(conn):
    thin_source(conn, 150)
    with pytest.raises(UsageError, match="does not fit: pool images on t cannot hold 153600 MiB more") as refused:
        clone_vms(conn, HOST, "thin", ["big1"])
    hint, refused = refused.value.hint, None  # its traceback's frames would keep the test driver's pool alive
    assert "--linked" in (hint or "")
    assert sorted(conn.storagePoolLookupByName("images").listVolumes()) == ["src.qcow2", "thin.qcow2"]
    assert "big1" not in conn.listDefinedDomains()


def test_clones_of_one_batch_are_counted_together(conn):
    thin_source(conn, 60)  # one copy fits in 100 GiB, two do not
    with pytest.raises(UsageError, match="does not fit"):
        clone_vms(conn, HOST, "thin", clone_names("many", 2))
    assert sorted(conn.storagePoolLookupByName("images").listVolumes()) == ["src.qcow2", "thin.qcow2"]
    assert [c.name for c in clone_vms(conn, HOST, "thin", clone_names("one", None))] == ["one"]


def test_a_paused_source_needs_consent_too_and_the_hint_does_not_say_pause(conn):
    dom = conn.lookupByName("src")
    dom.create()
    dom.suspend()
    with pytest.raises(UsageError, match="src is paused: .*crash-consistent") as refused:
        clone_vm(conn, HOST, "src", "copy3")
    hint, refused = refused.value.hint, None
    assert "--allow-running" in hint and "pause" not in hint
    assert conn.storagePoolLookupByName("images").listVolumes() == ["src.qcow2"]


def test_a_running_clone_that_libvirt_cannot_copy_leaves_nothing(conn):
    # The test driver has no backup job: the copy fails after the new volume was made.
    conn.lookupByName("src").create()
    with pytest.raises(VpdError, match="libvirt refused the backup"):
        clone_vms(conn, HOST, "src", ["copy4"], allow_running=True)
    assert conn.storagePoolLookupByName("images").listVolumes() == ["src.qcow2"]
    assert "copy4" not in conn.listDefinedDomains()


def test_a_single_full_clone_checks_room_too(conn):
    """clone_vm alone (as `vm create --template` calls it) checks like a batch does."""
    thin_source(conn, 150)
    with pytest.raises(UsageError, match="does not fit"):
        clone_vm(conn, HOST, "thin", "big2")
    assert sorted(conn.storagePoolLookupByName("images").listVolumes()) == ["src.qcow2", "thin.qcow2"]


def _uefi_source(conn) -> None:
    ed = DomainEditor.from_xml(conn.lookupByName("src").XMLDesc(0))
    os_el = ed.element.find("os")
    etree.SubElement(os_el, "loader", readonly="yes", type="pflash").text = "/usr/share/OVMF/OVMF_CODE_4M.fd"
    etree.SubElement(os_el, "nvram").text = "/var/lib/libvirt/qemu/nvram/src_VARS.fd"
    conn.defineXML(ed.to_xml())


def test_a_uefi_clone_gets_its_own_nvram(conn):
    _uefi_source(conn)
    cloned = clone_vm(conn, HOST, "src", "ucopy")
    assert cloned.nvram == "/var/lib/libvirt/qemu/nvram/ucopy_VARS.fd"
    assert nvram_path(conn.lookupByName("ucopy").XMLDesc(0)) == cloned.nvram
    assert nvram_path(conn.lookupByName("src").XMLDesc(0)) == "/var/lib/libvirt/qemu/nvram/src_VARS.fd"


def test_a_uefi_clone_whose_nvram_file_another_vm_uses_is_refused_first(conn):
    _uefi_source(conn)
    ed = DomainEditor.from_xml(conn.lookupByName("src").XMLDesc(0))
    ed.reset_identity("other", taken_macs=set(), serial_log=None)
    ed.element.find("os/nvram").text = "/var/lib/libvirt/qemu/nvram/ucopy_VARS.fd"
    conn.defineXML(ed.to_xml())
    with pytest.raises(UsageError, match="belongs to VM other"):
        clone_vm(conn, HOST, "src", "ucopy")
    assert conn.storagePoolLookupByName("images").listVolumes() == ["src.qcow2"]
