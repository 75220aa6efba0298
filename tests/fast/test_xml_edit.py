"""xml/edit.py against golden files: every edit vpd makes to a domain definition, input and
expected output side by side in xml_cases/, and what vpd does not model left untouched.

A case NAME is xml_cases/NAME.in.xml, the edit CASES[NAME] and xml_cases/NAME.out.xml. To
write the outputs after a deliberate change: VPD_XML_GOLDEN=update pytest tests/fast/test_xml_edit.py,
then read the diff of every .out.xml before committing it.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import libvirt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from vpd.core.errors import VpdError
from vpd.xml.devices import Channel, CharTarget
from vpd.xml.domain import file_disk, guest_domain, nic
from vpd.xml.edit import TEMPLATE_MARKER, TEMPLATE_NS, VPD_NS_PREFIX, DomainEditor, disk_files, macs_of

CASES_DIR = Path(__file__).parent / "xml_cases"
IMAGES = "/var/lib/libvirt/images"


def fixed_uuids() -> Callable[[], str]:
    """UUIDs as a generator would hand them out, but the same on every run."""
    counter = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(counter):012x}"


def fixed_macs(taken: set[str]) -> str:
    """The lowest 52:54:00:10:00:NN not taken: deterministic, and still shows `taken` is honoured."""
    return next(m for n in itertools.count(1) if (m := f"52:54:00:10:00:{n:02x}") not in taken)


def clone_identity(ed: DomainEditor, first_mac: str | None = None) -> None:
    # As vm/clone.py: the source's first MAC is on the host, so the clone must not get it again.
    ed.reset_identity("web2", taken_macs={"52:54:00:0a:0b:0c", "52:54:00:10:00:01"}, first_mac=first_mac,
                      serial_log="/var/log/libvirt/qemu/web2-serial0.log",
                      uuid_factory=fixed_uuids(), mac_factory=fixed_macs)


def clone_full_repoint(ed: DomainEditor) -> None:
    # As vm/clone.py for a full copy: same format, the copy keeps its own backing chain.
    ed.disk(target="vda").repoint(f"{IMAGES}/web2.qcow2", keep_backing_store=True)
    ed.disk(target="vdb").repoint(f"{IMAGES}/web2-1.raw", keep_backing_store=True)


def clone_linked_repoint(ed: DomainEditor) -> None:
    # As vm/clone.py --linked: each disk becomes a qcow2 overlay (vdb had no <driver>).
    for n, disk in enumerate(ed.disks(device="disk")):
        disk.repoint(f"{IMAGES}/web2{f'-{n}' if n else ''}.qcow2", fmt="qcow2")


def restore_repoint(ed: DomainEditor) -> None:
    # As backup/restore.py: each disk flattened into a new qcow2 file, whatever it was before.
    ed.disk(target="sda").repoint(f"{IMAGES}/db1.qcow2", fmt="qcow2")
    ed.disk(target="sdb").repoint(f"{IMAGES}/db1-1.qcow2", fmt="qcow2")


def restore_as_copy(ed: DomainEditor) -> None:
    restore_repoint(ed)
    ed.reset_identity("db1-copy", taken_macs={"52:54:00:1a:1b:1c"}, drop_vpd_metadata=False,
                      serial_log="/var/log/libvirt/qemu/db1-copy-serial0.log",
                      uuid_factory=fixed_uuids(), mac_factory=fixed_macs)


def set_attr(**values: object) -> Callable[[DomainEditor], None]:
    def edit(ed: DomainEditor) -> None:
        for name, value in values.items():
            setattr(ed, name, value)
    return edit


CASES: dict[str, Callable[[DomainEditor], object]] = {
    "clone_identity": clone_identity,
    "clone_identity_given_mac": lambda ed: clone_identity(ed, first_mac="52:54:00:aa:bb:cc"),
    "clone_full_repoint": clone_full_repoint,
    "clone_linked_repoint": clone_linked_repoint,
    "restore_repoint": restore_repoint,
    "restore_as_copy": restore_as_copy,
    "repoint_to_pool_volume": lambda ed: ed.disk(path=f"{IMAGES}/web1-data.raw").repoint(
        pool="default", volume="web2-data.raw", fmt="raw"),
    "rename": set_attr(name="web1-renamed"),
    # As vm/lifecycle.define --replace: a file without <uuid> gets the existing VM's.
    "define_adds_uuid": set_attr(uuid="8f1c2a3b-0d4e-4f56-8a9b-0c1d2e3f4a5b"),
    "new_uuid": lambda ed: ed.new_uuid(fixed_uuids()),
    # vm/template.py marks with libvirt's setMetadata; the editor makes the same edit
    # (test_seal_matches_libvirts_own_metadata_edit proves it).
    "template_seal": lambda ed: ed.set_metadata(TEMPLATE_NS, "vpd", TEMPLATE_MARKER),
    "template_seal_again": lambda ed: ed.set_metadata(TEMPLATE_NS, "vpd", TEMPLATE_MARKER),
    "template_unseal": lambda ed: ed.remove_metadata(TEMPLATE_NS),
    "serial_log": lambda ed: ed.give_own_serial_log("/var/log/libvirt/qemu/web2-serial0.log"),
    "add_disk": lambda ed: ed.add_device(file_disk(f"{IMAGES}/web1-1.qcow2", bus="virtio", index=1)),
    "add_interface": lambda ed: ed.add_device(nic("bridge", "br0", "52:54:00:00:00:99", model="e1000")),
    "add_channel": lambda ed: ed.add_device(Channel(type="unix", target=CharTarget(type="virtio", name="org.vpd.0"))),
    "remove_disk": lambda ed: ed.remove_disk("vdb"),
    "remove_interface": lambda ed: ed.remove_interface("52:54:00:0A:0B:0D"),
}


def canonical(xml: str | bytes) -> str:
    """The document as C14N 2.0 sees it (attribute order, quoting and indentation do not count),
    pretty printed so a failing comparison shows a readable diff."""
    text = etree.canonicalize(xml.decode() if isinstance(xml, bytes) else xml, strip_text=True)
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(text.encode(), parser), pretty_print=True, encoding="unicode")


def apply(name: str, xml: str | bytes) -> DomainEditor:
    ed = DomainEditor.from_xml(xml)
    CASES[name](ed)
    return ed


def test_every_case_has_its_files_and_every_file_its_case():
    found = {p.name.removesuffix(".in.xml") for p in CASES_DIR.glob("*.in.xml")}
    assert found == set(CASES)
    assert {p.name.removesuffix(".out.xml") for p in CASES_DIR.glob("*.out.xml")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str):
    source = (CASES_DIR / f"{name}.in.xml").read_bytes()
    out = apply(name, source).to_xml()
    expected_file = CASES_DIR / f"{name}.out.xml"
    if os.environ.get("VPD_XML_GOLDEN") == "update":
        expected_file.write_text(canonical(out))
    assert canonical(out) == canonical(expected_file.read_bytes())


UNMODELLED = [
    "memtune", "cputune", "cpu", "seclabel", "{http://libvirt.org/schemas/domain/qemu/1.0}commandline",
    "devices/channel", "devices/controller", "devices/memballoon", "devices/rng", "devices/disk/address",
    "devices/disk/iotune", "devices/interface/bandwidth",
]


@pytest.mark.parametrize("name", sorted(CASES))
def test_what_vpd_does_not_model_survives(name: str):
    """The point of the editor: pydantic-xml would drop all of these on a round trip."""
    source = etree.fromstring((CASES_DIR / f"{name}.in.xml").read_bytes())
    after = etree.fromstring(apply(name, etree.tostring(source)).to_xml().encode())
    for path in UNMODELLED:
        if name == "remove_disk" and path.startswith("devices/disk/"):
            continue  # removed with the disk
        kept = [etree.tostring(e) for e in source.findall(path)]
        # Added devices come after those of their kind, so the first ones are the input's.
        assert [etree.tostring(e) for e in after.findall(path)][:len(kept)] == kept, path
    for attr in ("x-vendor-flag", "x-disk-note", "x-vendor-note"):
        if name == "remove_disk" and attr == "x-disk-note":
            continue  # on the removed disk
        assert [e.get(attr) for e in source.iter() if e.get(attr)] == \
               [e.get(attr) for e in after.iter() if e.get(attr)], attr


# --- any unmodelled element or attribute, anywhere, survives every edit ----------------------

_NAME = st.from_regex(r"\Azz[a-z0-9]{0,6}\Z")  # 'zz': never a tag or attribute vpd edits
_VALUE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(sorted(CASES)), where=st.integers(min_value=0), tag=_NAME,
       namespaced=st.booleans(), attr=_NAME, value=_VALUE, on=st.integers(min_value=0))
def test_any_unmodelled_element_and_attribute_survive(case, where, tag, namespaced, attr, value, on):
    root = etree.fromstring((CASES_DIR / f"{case}.in.xml").read_bytes())
    elements = list(root.iter(etree.Element))
    parent = elements[where % len(elements)]
    qname = f"{{https://example.org/other}}{tag}" if namespaced else tag
    extra = etree.SubElement(parent, qname, {"zzid": "inserted"})
    extra.text = value
    holder = elements[on % len(elements)]
    holder.set(attr, value)
    ed = DomainEditor(root)
    CASES[case](ed)
    after = etree.fromstring(ed.to_xml().encode())

    def alive(el: etree._Element) -> bool:  # an edit may remove a whole element (a disk, a log)
        return el is root or root in el.iterancestors()

    if alive(parent):
        assert extra.getparent() is parent
        [found] = after.iter(qname)
        assert (found.get("zzid"), found.text or "") == ("inserted", value)
    if alive(holder):
        assert holder.get(attr) == value


# --- the editor's own rules ------------------------------------------------------------------

def test_reading_helpers():
    xml = (CASES_DIR / "clone_identity.in.xml").read_text()
    ed = DomainEditor.from_xml(xml)
    assert (ed.name, ed.uuid) == ("web1", "8f1c2a3b-0d4e-4f56-8a9b-0c1d2e3f4a5b")
    assert macs_of(xml) == ["52:54:00:0a:0b:0c", "52:54:00:0a:0b:0d"]
    assert disk_files(xml) == [f"{IMAGES}/web1.qcow2", f"{IMAGES}/web1-data.raw"]
    assert [d.target for d in ed.disks(device="cdrom")] == ["sda"]
    assert ed.serial_log == "/var/log/libvirt/qemu/web1-serial0.log"
    assert ed.metadata(TEMPLATE_NS) is not None and ed.cpu_xml.startswith("<cpu ")
    assert DomainEditor.from_xml((CASES_DIR / "rename.in.xml").read_text()).cpu_xml is None


def test_missing_targets_are_errors_not_silent():
    ed = DomainEditor.from_xml((CASES_DIR / "rename.in.xml").read_text())
    with pytest.raises(VpdError, match="no disk vdz"):
        ed.disk(target="vdz")
    with pytest.raises(VpdError, match="no interface"):
        ed.remove_interface("52:54:00:ff:ff:ff")
    with pytest.raises(ValueError):
        ed.disk(target="vda").repoint("/a", pool="p", volume="v")
    with pytest.raises(VpdError, match="not a domain"):
        DomainEditor.from_xml("<network><name>x</name></network>")


def test_entities_are_not_expanded():
    """A backup's domain.xml is read from disk: it must not pull in the host's files."""
    evil = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/hostname">]><domain><name>&x;</name></domain>'
    assert DomainEditor.from_xml(evil).name in (None, "")


def test_reset_macs_honours_taken_and_grows_it():
    ed = DomainEditor.from_xml((CASES_DIR / "clone_identity.in.xml").read_text())
    taken = {"52:54:00:10:00:01"}
    assert ed.reset_macs(taken, factory=fixed_macs) == ["52:54:00:10:00:02", "52:54:00:10:00:03"]
    assert taken == {"52:54:00:10:00:01", "52:54:00:10:00:02", "52:54:00:10:00:03"}


def test_drop_vpd_metadata_drops_only_vpds():
    ed = DomainEditor.from_xml((CASES_DIR / "clone_identity.in.xml").read_text())
    ed.remove_metadata_under(VPD_NS_PREFIX)
    assert ed.metadata(TEMPLATE_NS) is None and ed.metadata("https://example.org/app") is not None


# --- the editor agrees with libvirt ----------------------------------------------------------

@pytest.fixture
def conn():
    c = libvirt.open("test:///default")  # a private in-memory instance per open
    yield c
    c.close()


def _metadata(xml: str) -> str:
    node = etree.fromstring(xml.encode()).find("metadata")
    return "" if node is None else canonical(etree.tostring(node))


def test_seal_matches_libvirts_own_metadata_edit(conn):
    """vm/template.py marks a template through virDomainSetMetadata: the editor's marker is the same XML."""
    dom = conn.defineXML(guest_domain("tpl", kernel="/k", domain_type="test").to_xml_string())
    ed = DomainEditor.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, TEMPLATE_MARKER, "vpd", TEMPLATE_NS,
                    libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    ed.set_metadata(TEMPLATE_NS, "vpd", TEMPLATE_MARKER)
    assert _metadata(ed.to_xml()) == _metadata(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) != ""
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, TEMPLATE_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    ed.remove_metadata(TEMPLATE_NS)
    assert ed.metadata(TEMPLATE_NS) is None
    assert etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode()).find("metadata/*") is None


def test_libvirt_accepts_the_edited_definition(conn):
    """An identity reset, a repoint and added devices give a definition libvirt defines as it is."""
    ed = DomainEditor.from_xml(guest_domain("src", kernel="/k", domain_type="test",
                                            disks=[file_disk("/images/src.qcow2")],
                                            serial_log="/var/log/libvirt/qemu/src-serial0.log").to_xml_string())
    ed.add_device(nic("network", "default", "52:54:00:00:00:01"))
    ed.disk(target="hda").repoint("/images/copy.qcow2", fmt="qcow2")
    macs = ed.reset_identity("copy", taken_macs=set(), serial_log="/var/log/libvirt/qemu/copy-serial0.log")
    dom = conn.defineXML(ed.to_xml())
    back = DomainEditor.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert (back.name, back.uuid, back.macs) == ("copy", ed.uuid, macs)
    assert back.disk(target="hda").path == "/images/copy.qcow2"
    assert back.serial_log == "/var/log/libvirt/qemu/copy-serial0.log"


def test_migration_cpu_check_reads_cpu_through_the_editor(conn):
    """migration.preflight hands the guest's <cpu>, which vpd does not model, to libvirt as written."""
    from vpd.migration.preflight import arch_cpu_check
    from vpd.xml.domain import Domain

    plain = guest_domain("g", kernel="/k", domain_type="test").to_xml_string()
    assert arch_cpu_check(conn, conn, Domain.from_xml(plain), plain).ok
    with_cpu = plain.replace("</domain>", '<cpu mode="custom"><model>qemu64</model></cpu></domain>')
    assert DomainEditor.from_xml(with_cpu).cpu_xml == '<cpu mode="custom"><model>qemu64</model></cpu>'
    # The test driver has no virConnectCompareCPU: reaching it proves the <cpu> text went to libvirt.
    with pytest.raises(libvirt.libvirtError, match="CompareCPU"):
        arch_cpu_check(conn, conn, Domain.from_xml(with_cpu), with_cpu)


def test_remove_device_takes_the_typed_model():
    from vpd.xml.devices import Disk, Interface

    source = (CASES_DIR / "remove_disk.in.xml").read_text()
    ed = DomainEditor.from_xml(source)
    [vdb] = [d for d in ed.disks() if d.target == "vdb"]
    ed.remove_device(Disk.from_xml(etree.tostring(vdb.element)))
    assert canonical(ed.to_xml()) == canonical((CASES_DIR / "remove_disk.out.xml").read_text())
    ed = DomainEditor.from_xml((CASES_DIR / "remove_interface.in.xml").read_text())
    ed.remove_device(Interface.from_xml(etree.tostring(ed.interfaces()[1].element)))
    assert canonical(ed.to_xml()) == canonical((CASES_DIR / "remove_interface.out.xml").read_text())
