"""`migrate --copy-storage` is preflighted (issue 12, section 4): libvirt makes each disk on the
destination in the pool at the same directory and fails mid-job when there is none, so vpd
refuses first (exit 2, nothing started), naming the path and the fix. On libvirt's test
driver, one private instance per host."""
from __future__ import annotations

import pytest

from vpd.connect.inventory import Host
from vpd.connect.libvirt_conn import Connections
from vpd.core.errors import UsageError
from vpd.migration import preflight
from vpd.migration.migrate import MigrateOptions, migrate
from vpd.xml.domain import lab_guest_domain
from vpd.xml.pool import dir_pool
from vpd.xml.volume import volume

GIB = 2**30


@pytest.fixture
def hosts(tmp_path):
    node = tmp_path / "node.xml"
    node.write_text("<node/>")
    with Connections() as conns:
        src, dst = Host(name="a", uri=f"test://{node}"), Host(name="b", uri=f"test://{node}")
        src_conn = conns.get(src)
        pool = src_conn.storagePoolCreateXML(dir_pool("images", "/vm-images").to_xml_string(), 0)
        vol = pool.createXML(volume("g.qcow2", 8 * GIB).to_xml_string(), 0)
        src_conn.createXML(lab_guest_domain("g", kernel="/k", initrd="/i", cmdline="x", disk_path=vol.path(),
                                            domain_type="test", macs={}).to_xml_string(), 0)
        yield conns, src, dst, conns.get(dst)


def test_no_pool_at_the_disk_path_on_the_destination_is_refused_before_anything(hosts):
    conns, src, dst, dst_conn = hosts
    with pytest.raises(UsageError, match=r"b has no active pool at /vm-images \(for /vm-images/g.qcow2\)") as refused:
        migrate(conns, src, dst, "g", MigrateOptions(copy_storage=True))
    assert refused.value.exit_code == 2
    assert "vpd pool create NAME --host b --type dir --path /vm-images" in (refused.value.hint or "")
    assert dst_conn.listAllDomains() == []  # nothing started there


def test_a_pool_at_the_same_path_with_room_passes(hosts):
    _, _, dst, dst_conn = hosts
    dst_conn.storagePoolCreateXML(dir_pool("other-name", "/vm-images").to_xml_string(), 0)
    check = preflight.copy_storage_check(dst, dst_conn, [("/vm-images/g.qcow2", 8 * GIB)])
    assert check.ok, check.detail


def test_a_pool_too_small_or_a_file_already_there_is_refused(hosts):
    _, _, dst, dst_conn = hosts
    pool = dst_conn.storagePoolCreateXML(dir_pool("imgs", "/vm-images").to_xml_string(), 0)
    free = pool.info()[3]
    small = preflight.copy_storage_check(dst, dst_conn, [("/vm-images/g.qcow2", free + 1)])
    assert not small.ok and "does not fit: pool imgs on b" in small.detail
    pool.createXML(volume("g.qcow2", GIB).to_xml_string(), 0)
    there = preflight.copy_storage_check(dst, dst_conn, [("/vm-images/g.qcow2", GIB)])
    assert not there.ok and "/vm-images/g.qcow2 already exists on b (pool imgs)" in there.detail
