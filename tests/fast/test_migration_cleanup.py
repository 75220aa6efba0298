"""After a failed migration vpd cleans the destination (libvirt's test driver, one
private instance per host): its copy of the guest is ended only while the source
still holds the guest, and only a definition the destination did not have goes."""
from __future__ import annotations

import libvirt
import pytest

from vpd.connect.inventory import Host
from vpd.connect.libvirt_conn import Connections
from vpd.migration.cleanup import clean_destination

GUEST = ("<domain type='test'><name>g</name><uuid>6e2b4c1a-8a0e-4f4e-9a51-3c1d2b7f0a11</uuid>"
         "<memory>1024</memory><os><type>hvm</type></os></domain>")


@pytest.fixture
def lab(tmp_path):
    node = tmp_path / "node.xml"
    node.write_text("<node/>")
    with Connections() as conns:
        src, dst = Host(name="a", uri=f"test://{node}"), Host(name="b", uri=f"test://{node}")
        yield conns, conns.get(src), dst, conns.get(dst)


def _names(conn: libvirt.virConnect) -> dict[str, bool]:
    return {d.name(): bool(d.isActive()) for d in conn.listAllDomains()}


def test_a_copy_left_running_there_is_ended_while_the_source_runs_the_guest(lab):
    conns, src_conn, dst, dst_conn = lab
    src_dom = src_conn.createXML(GUEST, 0)
    dst_conn.createXML(GUEST, 0)  # transient, as an incoming migration makes it
    check = clean_destination(conns, dst, src_dom, was_defined=False)
    assert check.ok and check.detail == "nothing of g on b"
    assert _names(dst_conn) == {}


def test_a_definition_the_destination_did_not_have_is_removed(lab):
    conns, src_conn, dst, dst_conn = lab
    src_dom = src_conn.createXML(GUEST, 0)
    dst_conn.defineXML(GUEST)
    assert clean_destination(conns, dst, src_dom, was_defined=False).ok
    assert _names(dst_conn) == {}


def test_an_inactive_definition_it_had_before_stays(lab):
    conns, src_conn, dst, dst_conn = lab
    src_dom = src_conn.createXML(GUEST, 0)
    dst_conn.defineXML(GUEST)
    check = clean_destination(conns, dst, src_dom, was_defined=True)
    assert check.ok and "inactive definition, as before" in check.detail
    assert _names(dst_conn) == {"g": False}


def test_the_copy_there_is_left_when_the_source_no_longer_runs_the_guest(lab):
    conns, src_conn, dst, dst_conn = lab
    src_dom = src_conn.defineXML(GUEST)  # shut off: the destination's copy may be the only live one
    dst_conn.createXML(GUEST, 0)
    check = clean_destination(conns, dst, src_dom, was_defined=False)
    assert not check.ok and check.detail.startswith("g still runs on b")
    assert _names(dst_conn) == {"g": True}
