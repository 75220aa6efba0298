"""Cloning on libvirt's own test driver: new name, UUID, MACs and disk copies; bad input changes nothing."""
from __future__ import annotations

import libvirt
import pytest
from lxml import etree

from vpd.connect.inventory import Host
from vpd.core.errors import UsageError
from vpd.vm.clone import clone_vm, new_mac
from vpd.xml.domain import lab_guest_domain
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
