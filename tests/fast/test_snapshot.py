"""Snapshots on libvirt's test driver: its snapshots are metadata only (no disk or memory),
which is enough for the tree, the current one, LIFO order and every refusal vpd makes itself."""
from __future__ import annotations

import json

import libvirt
import pytest
from lxml import etree

from vpd import snapshot as snapshots
from vpd.core.errors import NotFound, UsageError
from vpd.xml.domain import lab_guest_domain
from vpd.xml.snapshot import DomainSnapshot, SnapshotDisk, SnapshotMemory, SnapshotParent, SnapshotSource

from .conftest import run_vpd


def _guest(conn, name: str, fmt: str = "qcow2", disk_path: str | None = None, uuid: str | None = None):
    xml = lab_guest_domain(name, kernel="/k", initrd="/i", cmdline="x", disk_path=disk_path or f"/images/{name}.{fmt}",
                           disk_format=fmt, domain_type="test", uuid=uuid).to_xml_string()
    return conn.defineXML(xml)


@pytest.fixture
def conn(tmp_path):
    # A test driver of its own: test:///default is one instance shared by every open connection
    # of the process, and guests left in it would leak into other tests.
    node = tmp_path / "node.xml"
    node.write_text("<node/>")
    c = libvirt.open(f"test://{node}")
    yield c
    c.close()


@pytest.fixture
def dom(conn):
    d = _guest(conn, "g1")
    d.create()
    return d


def _external(dom, name: str, parent: str | None = None):
    """An external snapshot as libvirt records one (the test driver cannot make overlays): redefined metadata."""
    spec = DomainSnapshot(name=name, state="disk-snapshot", creation_time=2_000_000_000,
                          parent=SnapshotParent(name=parent) if parent else None,
                          memory=SnapshotMemory(snapshot="no"),
                          disks=[SnapshotDisk(name="hda", snapshot="external",
                                              source=SnapshotSource(file=f"/images/{dom.name()}.hda.{name}.qcow2"))])
    tree = spec.to_xml_tree()
    tree.append(etree.fromstring(dom.XMLDesc(0).encode()))  # redefinition needs the domain as it was
    flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
    return dom.snapshotCreateXML(etree.tostring(tree).decode(), flags)


def test_running_guest_gets_an_internal_snapshot_with_memory(dom):
    taken = snapshots.create(dom, "s1", description="before upgrade")
    assert (taken["kind"], taken["memory"], taken["state"], taken["overlays"]) == ("internal", True, "running", [])
    [info] = snapshots.list_snapshots(dom)
    assert (info.name, info.current, info.memory, info.description, info.parent) == (
        "s1", True, True, "before upgrade", None)


def test_stopped_guest_snapshot_has_no_memory(conn):
    d = _guest(conn, "cold")
    assert snapshots.create(d, "s1")["memory"] is False


def test_tree_is_listed_parents_first_and_revert_moves_current(dom):
    for name in ("s1", "s2"):
        snapshots.create(dom, name)
    snapshots.revert(dom, "s1")
    snapshots.create(dom, "s3")  # a branch: s1 -> s2 and s1 -> s3
    listed = [(s.name, s.parent, s.depth, s.current) for s in snapshots.list_snapshots(dom)]
    assert listed == [("s1", None, 0, False), ("s2", "s1", 1, False), ("s3", "s1", 1, True)]
    assert snapshots.revert(dom, "s2")["state"] == "running"
    assert dom.snapshotCurrent(0).getName() == "s2"


def test_default_name_and_taken_or_bad_names(dom):
    assert snapshots.create(dom)["snapshot"].startswith("snap-")
    snapshots.create(dom, "s1")
    with pytest.raises(UsageError, match="already has"):
        snapshots.create(dom, "s1")
    for bad in ("a b", "../x", "x" * 80, "<s>"):
        with pytest.raises(UsageError):
            snapshots.create(dom, bad)
    with pytest.raises(NotFound):
        snapshots.revert(dom, "nosuch")
    assert len(dom.snapshotListNames(0)) == 2


def test_internal_snapshot_needs_qcow2(conn):
    d = _guest(conn, "rawg", fmt="raw")
    with pytest.raises(UsageError, match="qcow2"):
        snapshots.create(d, "s1")
    assert d.snapshotNum(0) == 0


def test_disk_only_xml_names_an_overlay_next_to_the_image(dom):
    spec = snapshots._snapshot_xml(dom, "e1", disk_only=True, description=None)
    assert [(d.name, d.snapshot, d.source.file) for d in spec.disks] == [
        ("hda", "external", "/images/g1.hda.e1.qcow2")]
    assert spec.memory.snapshot == "no"


def test_internal_snapshot_under_an_overlay_is_not_deleted_before_libvirt_refuses(conn):
    d = _guest(conn, "g1")
    snapshots.create(d, "i1")
    _external(d, "e1", parent="i1")
    # What an external snapshot does to the definition: the disk now writes to the overlay.
    _guest(conn, "g1", disk_path="/images/g1.hda.e1.qcow2", uuid=d.UUIDString())
    d.create()
    with pytest.raises(UsageError, match="now uses /images/g1.hda.e1.qcow2") as refused:
        snapshots.delete(d, "i1")
    assert "LIFO" in refused.value.hint
    assert sorted(d.snapshotListNames(0)) == ["e1", "i1"]
    assert [(s.name, s.kind, s.current) for s in snapshots.list_snapshots(d)] == [
        ("i1", "internal", False), ("e1", "external", True)]


def test_external_snapshots_are_deleted_newest_first(dom):
    _external(dom, "e1")
    _external(dom, "e2", parent="e1")
    with pytest.raises(UsageError, match="newer snapshots"):
        snapshots.delete(dom, "e1")
    assert sorted(dom.snapshotListNames(0)) == ["e1", "e2"]


def test_running_guest_commits_only_the_overlay_it_writes_to(dom):
    _external(dom, "e1")  # recorded, but the guest still writes to /images/g1.qcow2
    with pytest.raises(UsageError, match="no longer writes to 'e1'"):
        snapshots.delete(dom, "e1")
    assert dom.snapshotListNames(0) == ["e1"]


def test_stopped_guest_keeps_an_external_snapshot_on_an_internal_parent(conn):
    d = _guest(conn, "cold")
    snapshots.create(d, "i1")
    _external(d, "e1", parent="i1")
    with pytest.raises(UsageError, match="internal snapshot") as refused:
        snapshots.delete(d, "e1")
    assert "start the VM" in refused.value.hint
    assert sorted(d.snapshotListNames(0)) == ["e1", "i1"]


def test_internal_snapshots_delete_in_any_order(dom):
    for name in ("s1", "s2"):
        snapshots.create(dom, name)
    assert snapshots.delete(dom, "s1")["kind"] == "internal"
    assert [(s.name, s.parent) for s in snapshots.list_snapshots(dom)] == [("s2", None)]


# The CLI: each `vpd` run opens its own fresh test:///default, so it sees only that driver's VM "test"
# (raw disk, no snapshots): enough for output, exit codes and refusals.

def test_cli_list_json_and_table(test_inventory):
    out = json.loads(run_vpd("snapshot", "list", "test", "--host", "t1", "--json",
                             inventory=test_inventory, check_rc=0).stdout)
    assert out == {"host": "t1", "vm": "test", "current": None, "snapshots": []}
    assert "Snapshots of test" in run_vpd("snapshot", "list", "test", "--host", "t1",
                                          inventory=test_inventory, check_rc=0).stdout


@pytest.mark.parametrize("args", [
    ("snapshot", "create", "test", "s1", "--host", "t1"),  # raw disk: no internal snapshot
    ("snapshot", "create", "test", "bad name", "--host", "t1"),
    ("snapshot", "create", "nosuch", "s1", "--host", "t1"),
    ("snapshot", "revert", "test", "nosuch", "--host", "t1"),
    ("snapshot", "delete", "test", "../x", "--host", "t1"),
    ("snapshot", "list", "test", "--host", "nosuch"),
    ("snapshot", "revert", "test", "--host", "t1"),
])
def test_cli_refusals_exit_2(test_inventory, args):
    proc = run_vpd(*args, inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_cli_refusal_json(test_inventory):
    proc = run_vpd("snapshot", "create", "test", "s1", "--host", "t1", "--json", inventory=test_inventory)
    assert proc.returncode == 2
    err = json.loads(proc.stdout)
    assert "qcow2" in err["error"] and "--disk-only" in err["hint"]


def test_cli_create_json_and_journal(tmp_path):
    # A node file for the test driver with one running qcow2 guest: every `vpd` run starts from it.
    guest = lab_guest_domain("g1", kernel="/k", initrd="/i", cmdline="x", disk_path="/images/g1.qcow2",
                             domain_type="test").to_xml_string()
    node = tmp_path / "node.xml"
    node.write_text(f"<node>{guest}</node>")
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(f'[[hosts]]\nname = "t"\nuri = "test://{node}"\n')
    taken = json.loads(run_vpd("snapshot", "create", "g1", "s1", "--host", "t", "--json",
                               inventory=inventory, check_rc=0).stdout)
    assert (taken["vm"], taken["snapshot"], taken["kind"], taken["memory"]) == ("g1", "s1", "internal", True)
    out = run_vpd("snapshot", "create", "g1", "--host", "t", inventory=inventory, check_rc=0).stdout
    assert "internal with memory" in out
    rows = json.loads(run_vpd("journal", "--operation", "snapshot.", "--json", check_rc=0).stdout)
    assert [(r["operation"], r["target"], r["status"]) for r in rows[:2]] == [
        ("snapshot.create", "t/g1", "ok"), ("snapshot.create", "t/g1", "ok")]
