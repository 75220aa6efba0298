"""vpd.xml.domain against libvirt's real test driver (test:///default), not a mock."""
from __future__ import annotations

import uuid
from pathlib import Path

import libvirt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from vpd.core.errors import UsageError
from vpd.xml import (
    Channel,
    CharSource,
    CharTarget,
    Devices,
    Disk,
    DiskSource,
    DiskTarget,
    Domain,
    Graphics,
    MemorySize,
    lab_guest_domain,
)

DOMAIN_SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")
MAC = "52:54:00:12:34:56"

# Every character XML 1.0 can carry: no C0 controls but tab/newline/CR, no surrogates, no U+FFFE/F.
xml_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters=[chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"] + ["\ufffe", "\uffff"],
    ),
    min_size=1,
)


@pytest.fixture
def conn():
    # Every test:///default connection in a process shares one state, so tests use unique names
    # and remove what they define.
    connection = libvirt.open("test:///default")
    yield connection
    connection.close()


@pytest.fixture
def unique_name():
    return f"vpd-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def define(conn):
    defined = []

    def define_xml(xml: str) -> libvirt.virDomain:
        domain = conn.defineXML(xml)
        defined.append(domain)
        return domain

    yield define_xml
    for domain in defined:
        if domain.isActive():
            domain.destroy()
        domain.undefine()


def full_lab_guest(name: str, **overrides) -> Domain:
    arguments = dict(
        kernel="/lab/vmlinuz",
        initrd="/lab/initrd.img",
        cmdline="console=ttyS0 quiet",
        disk_path="/lab/disks/guest.qcow2",
        memory_mib=256,
        vcpus=2,
        domain_type="test",
        serial_log="/lab/logs/guest.log",
        uuid="0b8a5f3e-6c1d-4a57-9a8e-2f4b1c3d5e6f",
        macs={MAC: "default"},
    )
    return lab_guest_domain(name, **{**arguments, **overrides})


def test_lab_guest_defined_on_test_driver_reads_back_typed(define, unique_name):
    virt_domain = define(full_lab_guest(unique_name).to_xml_string())
    dumped = virt_domain.XMLDesc()

    domain = Domain.from_xml(dumped)

    assert domain.type == "test"
    assert domain.name == unique_name
    assert domain.uuid == "0b8a5f3e-6c1d-4a57-9a8e-2f4b1c3d5e6f"
    assert domain.memory.in_bytes == 256 * 1024**2
    assert domain.vcpu == 2
    assert (domain.os.kernel, domain.os.initrd, domain.os.cmdline) == (
        "/lab/vmlinuz", "/lab/initrd.img", "console=ttyS0 quiet",
    )
    assert domain.features is not None and domain.features.acpi
    [disk] = domain.disks
    assert (disk.type, disk.device) == ("file", "disk")
    assert (disk.target.dev, disk.target.bus) == ("hda", "ide")
    assert disk.driver is not None and (disk.driver.type, disk.driver.cache) == ("qcow2", "none")
    assert domain.disk_paths() == ["/lab/disks/guest.qcow2"]
    serial0, serial1 = domain.devices.serials
    assert (serial0.type, serial0.target.port) == ("pty", 0)
    assert serial0.log is not None and (serial0.log.file, serial0.log.append) == ("/lab/logs/guest.log", "on")
    assert (serial1.type, serial1.target.port, serial1.log) == ("pty", 1, None)
    [console] = domain.devices.consoles
    assert (console.target.type, console.target.port) == ("serial", 0)
    # Every vpd guest has the QEMU guest agent's virtio-serial port; libvirt picks the socket.
    [agent] = domain.devices.channels
    assert (agent.type, agent.target.type, agent.target.name) == ("unix", "virtio", "org.qemu.guest_agent.0")
    [nic] = domain.interfaces
    assert (nic.type, nic.mac.address, nic.source.network, nic.model.type) == ("network", MAC, "default", "virtio")
    assert domain.devices.graphics == []
    # What libvirt added and the models skip: the disk's address, IDE controller; and no <cpu>.
    tree = etree.fromstring(dumped)
    assert tree.find("devices/controller") is not None
    assert tree.find("devices/disk/address") is not None
    assert tree.find("cpu") is None


def test_minimal_lab_guest_has_no_disk_network_or_log(define, unique_name):
    built = lab_guest_domain(unique_name, kernel="/k", initrd="/i", cmdline="", domain_type="test")
    domain = Domain.from_xml(define(built.to_xml_string()).XMLDesc())

    assert domain.disks == [] and domain.interfaces == [] and domain.disk_paths() == []
    assert [serial.log for serial in domain.devices.serials] == [None, None]
    assert domain.memory.in_bytes == 128 * 1024**2 and domain.vcpu == 1


def test_running_domain_with_unmodelled_elements_parses(define, unique_name):
    # Elements vpd has no model for are added to the tree as objects, then libvirt adds its own.
    domain = full_lab_guest(unique_name, macs=None)
    domain.devices.disks.append(
        Disk(type="volume", source=DiskSource(pool="default-pool", volume="data.img"),
             target=DiskTarget(dev="vda", bus="virtio"))
    )
    domain.devices.disks.append(Disk(device="cdrom", target=DiskTarget(dev="hdc", bus="ide"), readonly=True))
    # The agent channel vpd adds, given a socket path of its own instead of libvirt's.
    domain.devices.channels = [
        Channel(type="unix", source=CharSource(mode="bind", path="/run/vpd/agent.sock"),
                target=CharTarget(type="virtio", name="org.qemu.guest_agent.0"))
    ]
    domain.devices.graphics.append(Graphics(type="vnc", port=-1, autoport="yes"))
    tree = domain.to_xml_tree()
    partition = etree.SubElement(etree.SubElement(tree, "resource"), "partition")
    partition.text = "/machine"
    etree.SubElement(tree, "seclabel", type="none")
    etree.SubElement(tree.find("devices/disk"), "alias", name="ua-disk0")
    etree.SubElement(tree.find("devices"), "memballoon", model="none")
    virt_domain = define(etree.tostring(tree, encoding="unicode"))
    virt_domain.create()

    running = virt_domain.XMLDesc()
    parsed = Domain.from_xml(running)

    assert etree.fromstring(running).get("id") is not None
    for tag in ("resource", "seclabel", "devices/memballoon", "devices/video", "devices/disk/alias"):
        assert etree.fromstring(running).find(tag) is not None, tag
    # libvirt sorts disks by target (hda, hdc, vda); the empty CD-ROM has no path to report.
    assert parsed.disk_paths() == ["/lab/disks/guest.qcow2", "default-pool/data.img"]
    [cdrom] = [disk for disk in parsed.disks if disk.device == "cdrom"]
    assert (cdrom.target.dev, cdrom.source, cdrom.readonly) == ("hdc", None, True)
    [channel] = parsed.devices.channels
    assert (channel.source.path, channel.target.name) == ("/run/vpd/agent.sock", "org.qemu.guest_agent.0")
    [vnc] = parsed.devices.graphics
    assert (vnc.type, vnc.port, vnc.autoport) == ("vnc", -1, "yes")
    assert parsed.name == unique_name and parsed.current_memory.in_bytes == 256 * 1024**2


def test_test_drivers_own_domain_parses(conn):
    domain = Domain.from_xml(conn.lookupByName("test").XMLDesc())

    assert domain.disk_paths() == ["/guest/diskimage1"]
    assert domain.interfaces[0].target.dev == "testnet0"
    assert (domain.on_poweroff, domain.on_reboot, domain.on_crash) == ("destroy", "restart", "destroy")
    assert domain.clock.offset == "utc" and [boot.dev for boot in domain.os.boot] == ["hd"]


def test_round_trip_of_built_and_of_libvirt_reported_domains(define, unique_name):
    built = full_lab_guest(unique_name)
    assert Domain.from_xml(built.to_xml_string()) == built

    reported = Domain.from_xml(define(built.to_xml_string()).XMLDesc())
    assert Domain.from_xml(reported.to_xml_string()) == reported


@pytest.mark.skipif(not DOMAIN_SCHEMA.exists(), reason="libvirt's XML schemas are not installed")
def test_lab_guest_xml_is_valid_by_libvirts_schema():
    schema = etree.RelaxNG(etree.parse(str(DOMAIN_SCHEMA)))
    for domain in (full_lab_guest("guest"), lab_guest_domain("g", kernel="/k", initrd="/i", cmdline="x")):
        tree = etree.fromstring(domain.to_xml_string())
        assert schema.validate(tree), schema.error_log


@settings(max_examples=60, deadline=None)
@given(name=xml_text, path_suffix=xml_text)
def test_special_characters_are_escaped_never_injected(name, path_suffix):
    domain = Domain(
        type="test",
        name=name,
        memory=MemorySize(value=1024, unit="KiB"),
        vcpu=1,
        devices=Devices(disks=[Disk(source=DiskSource(file="/" + path_suffix), target=DiskTarget(dev="hda"))]),
    )
    tree = etree.fromstring(domain.to_xml_string())

    names = tree.findall("name")
    assert len(names) == 1 and names[0].text == name
    assert tree.find("devices/disk/source").get("file") == "/" + path_suffix
    assert Domain.from_xml(domain.to_xml_string()) == domain


@pytest.mark.parametrize("name", ['a"><evil/>', "a&b", "it's <x>"])
def test_markup_in_a_name_stays_text(name):
    domain = Domain(type="test", name=name, memory=MemorySize(value=1024), vcpu=1)
    tree = etree.fromstring(domain.to_xml_string())

    assert [element.text for element in tree.findall("name")] == [name]
    assert tree.find("evil") is None and tree.find("name/evil") is None


def test_markup_in_a_name_survives_libvirt(define):
    # libvirt forbids only '/' in names, so this name really travels through its parser and back.
    name = "q\"><evil>&'"
    domain = Domain(type="test", name=name, memory=MemorySize(value=65536), vcpu=1)

    assert Domain.from_xml(define(domain.to_xml_string()).XMLDesc()).name == name


@pytest.mark.parametrize(
    "overrides",
    [
        {"memory_mib": 0},
        {"memory_mib": -5},
        {"memory_mib": True},
        {"memory_mib": 128.0},
        {"memory_mib": 128 * 1024**3},
        {"vcpus": 0},
        {"vcpus": 5000},
        {"kernel": "vmlinuz"},
        {"disk_path": "disks/guest.qcow2"},
        {"serial_log": "guest.log"},
        {"disk_format": "qcwo2"},
        {"domain_type": "xen"},
        {"uuid": "not-a-uuid"},
        {"macs": {"52:54:00:12:34": "default"}},
        {"macs": {"01:00:5e:00:00:01": "default"}},
        {"macs": {MAC: "bad/network"}},
        {"cmdline": None},
    ],
)
def test_lab_guest_rejects_bad_arguments(overrides):
    with pytest.raises(UsageError):
        full_lab_guest("guest", **overrides)


def test_lab_guest_rejects_unsafe_names():
    with pytest.raises(UsageError):
        full_lab_guest('a"><evil/>')
