"""Storage (pools, volumes, disks, IQNs) as pure logic and against libvirt's test driver."""
from __future__ import annotations

import json
import subprocess
import uuid

import libvirt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpd.connect.inventory import Host
from vpd.core.errors import NotFound, UsageError
from vpd.storage import disks, pools, secrets, support, volumes
from vpd.storage.iqn import check_iqn, default_initiator
from vpd.xml import Domain, StoragePool, StoragePoolCapabilities

from .conftest import run_vpd

MiB = 1024**2
HOST = Host(name="t1", uri="test:///default")


@pytest.fixture
def conn():
    c = libvirt.open("test:///default")
    yield c
    c.close()


@pytest.fixture
def pool_name(conn):
    name = f"p-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        p = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        return
    if p.isActive():
        for v in p.listAllVolumes(0):
            v.delete(0)
        p.destroy()
    p.undefine()


# --- IQNs -------------------------------------------------------------------------

@pytest.mark.parametrize("good", ["iqn.2024-01.org.example:disk1", "iqn.2003-01.org.linux-iscsi.host.x8664:sn.1",
                                  "IQN.2024-01.ORG.EXAMPLE:Disk", "eui.02004567A425678D", "iqn.2024-12.lab"])
def test_valid_iqns_are_canonical(good):
    assert check_iqn(good) == good.lower()


@pytest.mark.parametrize("bad", ["", "iqn", "iqn.24-01.org.x", "iqn.2024-13.org.x", "iqn.2024-01.",
                                 "iqn.2024-01.org.x:a b", "iqn.2024-01.org.x:'q'", "iqn.2024-01.-bad.org", "eui.123",
                                 "iqn.2024-01.org.x:" + "a" * 300,
                                 "iqn.2024-01.org.x:../etc", "iqn.2024-01.org.x;rm"])
def test_invalid_iqns_are_refused(bad):
    with pytest.raises(UsageError):
        check_iqn(bad)


@given(st.text(max_size=80))
def test_any_text_is_a_valid_iqn_or_a_usage_error(text):
    try:
        iqn = check_iqn(text)
    except UsageError:
        return
    assert iqn.startswith(("iqn.", "eui.")) and " " not in iqn and "'" not in iqn and "/" not in iqn


def test_default_initiator_is_valid():
    assert default_initiator("hostA") == "iqn.2024-01.org.vpd:hosta"


# --- pool definitions (pure) ---------------------------------------------------------

def test_pool_xml_per_type_matches_libvirt_schema():
    from pathlib import Path

    from lxml import etree

    specs = [
        pools.PoolSpec("d", "dir", path="/srv/d"),
        pools.PoolSpec("f", "fs", path="/mnt/f", source_devices=("/dev/loop0",), build=True),
        pools.PoolSpec("n", "netfs", path="/mnt/n", source_host="nfs.example.org", source_path="/export"),
        pools.PoolSpec("vg0", "logical", source_devices=("/dev/sdb",), build=True),
        pools.PoolSpec("i", "iscsi", source_host="198.18.0.11", target_iqn="iqn.2024-01.org.x:t"),
        pools.PoolSpec("id", "iscsi-direct", source_host="198.18.0.11:3261", target_iqn="iqn.2024-01.org.x:t",
                       initiator_iqn="iqn.2024-01.org.x:i", chap_user="u1"),
    ]
    schema_file = Path("/usr/share/libvirt/schemas/storagepool.rng")
    schema = etree.RelaxNG(etree.parse(str(schema_file))) if schema_file.exists() else None
    for spec in specs:
        model = pools.pool_xml(spec)
        assert StoragePool.from_xml(model.to_xml_string()) == model
        if schema is not None:
            assert schema.validate(etree.fromstring(model.to_xml_string())), (spec, schema.error_log)
    assert pools.pool_xml(specs[3]).source.name == "vg0"
    direct = pools.pool_xml(specs[5]).source
    assert (direct.host.port, direct.auth.secret.usage) == (3261, "vpd-chap-id")


@pytest.mark.parametrize("spec", [
    pools.PoolSpec("d", "dir"),  # no --path
    pools.PoolSpec("d", "dir", path="relative"),
    pools.PoolSpec("../x", "dir", path="/srv"),
    pools.PoolSpec("d", "dir", path="/srv", source_host="h"),  # option of another type
    pools.PoolSpec("f", "fs", path="/mnt/f"),  # no device
    pools.PoolSpec("f", "fs", path="/mnt/f", source_devices=("/dev/a", "/dev/b")),
    pools.PoolSpec("f", "fs", path="/mnt/f", source_devices=("/dev/a",), source_format="ntfs-3g"),
    pools.PoolSpec("n", "netfs", path="/mnt/n", source_host="bad host", source_path="/e"),
    pools.PoolSpec("n", "netfs", path="/mnt/n", source_host="h"),
    pools.PoolSpec("vg", "logical", build=True),
    pools.PoolSpec("i", "iscsi", source_host="h", target_iqn="not-an-iqn"),
    pools.PoolSpec("i", "iscsi-direct", source_host="h", target_iqn="iqn.2024-01.org.x:t"),  # no initiator
    pools.PoolSpec("i", "iscsi-direct", source_host="h:99999", target_iqn="iqn.2024-01.org.x:t",
                   initiator_iqn="iqn.2024-01.org.x:i"),
    pools.PoolSpec("i", "iscsi-direct", source_host="h", target_iqn="iqn.2024-01.org.x:t",
                   initiator_iqn="iqn.2024-01.org.x:i", chap_user="a b"),
    pools.PoolSpec("z", "zfs", path="/z"),
])
def test_bad_pool_specs_are_usage_errors(spec):
    with pytest.raises(UsageError):
        pools.pool_xml(spec)


@pytest.mark.parametrize("text,expected", [("h", ("h", None)), ("h.example:3260", ("h.example", 3260)),
                                           ("198.18.0.1", ("198.18.0.1", None)), ("[::1]:3260", ("::1", 3260))])
def test_parse_server(text, expected):
    assert pools.parse_server(text, "portal") == expected


# --- support checks (pure) ----------------------------------------------------------

def test_checks_name_the_missing_kernel_feature():
    facts = support.HostStorageFacts(frozenset(support.POOL_TYPES), support.parse_probe(
        "nfs_kernel=no\nmount_nfs=no\ndevice_mapper=no\nlvm=yes\niscsiadm=yes\niscsi_tcp=no\nmkfs=yes\n"))
    assert not any(c.ok is False for c in support.checks_for("dir", facts))
    assert not any(c.ok is False for c in support.checks_for("iscsi-direct", facts))
    netfs = [c.name for c in support.checks_for("netfs", facts) if not c.ok]
    assert netfs == ["NFS client in the kernel", "mount.nfs"]
    assert [c.name for c in support.checks_for("logical", facts) if not c.ok] == ["device-mapper"]
    assert [c.name for c in support.checks_for("iscsi", facts) if not c.ok] == ["iSCSI initiator in the kernel"]
    no_backend = support.HostStorageFacts(frozenset({"dir"}), {})
    assert [c.ok for c in support.checks_for("iscsi-direct", no_backend)] == [False]


def test_pool_capabilities_parse():
    caps = StoragePoolCapabilities.from_xml(
        "<storagepoolCapabilities><pool type='dir' supported='yes'><volOptions><defaultFormat type='raw'/>"
        "</volOptions></pool><pool type='zfs' supported='no'/></storagepoolCapabilities>")
    assert caps.supported("dir") and not caps.supported("zfs") and not caps.supported("fs")


# --- pools and volumes on the test driver ---------------------------------------------

def test_dir_pool_create_is_idempotent_and_clashes_clearly(conn, pool_name):
    spec = pools.PoolSpec(pool_name, "dir", path=f"/vpd-test/{pool_name}")
    made = pools.create_pool(conn, HOST, spec, autostart=True)
    assert made["changed"] and made["steps"] == ["define", "build", "start", "autostart"]
    assert made["state"] == "running" and made["autostart"]
    again = pools.create_pool(conn, HOST, spec)
    assert again["changed"] is False
    with pytest.raises(UsageError, match="other settings"):
        pools.create_pool(conn, HOST, pools.PoolSpec(pool_name, "dir", path="/elsewhere"))


def test_pool_verbs_and_listing(conn, pool_name):
    pools.create_pool(conn, HOST, pools.PoolSpec(pool_name, "dir", path=f"/vpd-test/{pool_name}"))
    p = pools.find_pool(conn, HOST, pool_name)
    assert pools.start_pool(HOST, p)["changed"] is False
    assert pools.stop_pool(HOST, p, users=[])["changed"] is True
    assert pools.stop_pool(HOST, p, users=[])["changed"] is False
    assert pools.start_pool(HOST, p)["changed"] is True
    assert pools.set_autostart(HOST, p, True)["changed"] is True
    with pytest.raises(UsageError, match="running VMs"):
        pools.stop_pool(HOST, p, users=["vm1"])
    from vpd.connect.libvirt_conn import Connections

    with Connections() as conns:
        [listing] = pools.list_pools(conns, [HOST], include_inactive=True)
    # Each test:///default connection has its own state: the pool is seen through this one only.
    assert listing.error is None and any(x.name == "default-pool" for x in listing.pools)
    with pytest.raises(NotFound):
        pools.find_pool(conn, HOST, "nosuch")


def test_volume_lifecycle(conn, pool_name):
    pools.create_pool(conn, HOST, pools.PoolSpec(pool_name, "dir", path=f"/vpd-test/{pool_name}"))
    made = volumes.create_volume(HOST, conn, pool_name, "base.qcow2", "16M", "qcow2")
    assert (made["changed"], made["capacity"], made["format"]) == (True, 16 * MiB, "qcow2")
    assert volumes.create_volume(HOST, conn, pool_name, "base.qcow2", "16M", "qcow2")["changed"] is False
    with pytest.raises(UsageError, match="other settings"):
        volumes.create_volume(HOST, conn, pool_name, "base.qcow2", "32M", "qcow2")
    overlay = volumes.create_volume(HOST, conn, pool_name, "top.qcow2", None, "qcow2", backing="base.qcow2")
    assert overlay["backing"] == made["path"] and overlay["capacity"] == 16 * MiB
    with pytest.raises(UsageError, match="backing image"):
        volumes.delete_volume(HOST, conn, pool_name, "base.qcow2")
    with pytest.raises(UsageError, match="does not fit"):
        volumes.create_volume(HOST, conn, pool_name, "huge.raw", "900T", "raw")
    raw = volumes.create_volume(HOST, conn, pool_name, "r.raw", "8M", "raw")
    assert raw["format"] == "raw"
    clone = volumes.clone_volume(HOST, conn, pool_name, "r.raw", "r2.raw")
    assert clone["capacity"] == 8 * MiB
    with pytest.raises(UsageError, match="--shrink"):
        volumes.resize_volume(HOST, conn, pool_name, "r2.raw", "4M")
    assert volumes.resize_volume(HOST, conn, pool_name, "r2.raw", "8M")["changed"] is False
    # (the test driver cannot resize; tests/lab/test_storage.py does)
    for name in ("top.qcow2", "base.qcow2", "r2.raw"):
        volumes.delete_volume(HOST, conn, pool_name, name)
    with pytest.raises(NotFound):
        volumes.delete_volume(HOST, conn, pool_name, "top.qcow2")


@pytest.mark.parametrize("args", [("bad name", "1M"), ("x", "0"), ("x", "-5M"), ("x", "lots"), ("../x", "1M"),
                                  ("x", "1M", "vmdk")])
def test_bad_volume_arguments(conn, pool_name, args):
    pools.create_pool(conn, HOST, pools.PoolSpec(pool_name, "dir", path=f"/vpd-test/{pool_name}"))
    before = sorted(v.name() for v in conn.storagePoolLookupByName(pool_name).listAllVolumes(0))
    with pytest.raises(UsageError):
        volumes.create_volume(HOST, conn, pool_name, *args)
    assert sorted(v.name() for v in conn.storagePoolLookupByName(pool_name).listAllVolumes(0)) == before


@given(st.text(max_size=20))
def test_any_size_text_is_bytes_or_a_usage_error(text):
    from vpd.core.names import parse_size

    try:
        assert parse_size(text) > 0
    except UsageError:
        pass


def test_volume_refs():
    assert volumes.parse_vol_ref("pool/unit:0:0:1") == ("pool", "unit:0:0:1")
    for bad in ("novolume", "p/../x", "p/a b", "../p/x", "p/"):
        with pytest.raises(UsageError):
            volumes.parse_vol_ref(bad)


# --- uploads keep formats right (real qemu-img) -------------------------------------

def test_upload_plan_converts_other_formats_and_overlays(tmp_path):
    raw = tmp_path / "a.raw"
    raw.write_bytes(b"x" * MiB)
    qcow = tmp_path / "a.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "2M"], check=True)
    overlay = tmp_path / "o.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(qcow), "-F", "qcow2", str(overlay)],
                   check=True)
    facts = volumes.image_facts(str(raw))
    assert (facts.format, facts.virtual_size) == ("raw", MiB)
    assert volumes.upload_plan(facts, "raw", 4 * MiB) == "as-is"
    assert volumes.upload_plan(facts, "qcow2", 4 * MiB) == "convert"  # never raw bytes into a qcow2 volume
    assert volumes.upload_plan(volumes.image_facts(str(qcow)), "qcow2", 4 * MiB) == "as-is"
    assert volumes.upload_plan(volumes.image_facts(str(overlay)), "qcow2", 4 * MiB) == "convert"
    with pytest.raises(UsageError, match="grow the volume"):
        volumes.upload_plan(volumes.image_facts(str(qcow)), "qcow2", MiB)


# --- disks ----------------------------------------------------------------------------

@pytest.mark.parametrize("target,bus", [("vdb", "ide"), ("hdb", "virtio"), ("sdb", "virtio"), ("vd", "virtio"),
                                        ("vdb1", "virtio"), ("xvda", "virtio"), ("vdb", "usb")])
def test_bad_targets(target, bus):
    with pytest.raises(UsageError):
        disks.check_target(target, bus)


def test_attach_and_detach_on_test_driver(conn, pool_name):
    pools.create_pool(conn, HOST, pools.PoolSpec(pool_name, "dir", path=f"/vpd-test/{pool_name}"))
    volumes.create_volume(HOST, conn, pool_name, "d.raw", "4M", "raw")
    dom = conn.lookupByName("test")  # running, persistent
    vol_disk = disks.volume_disk(HOST, conn, pool_name, "d.raw", "vdb", "virtio")
    assert (vol_disk.type, vol_disk.source.reference, vol_disk.driver.type) == ("volume", f"{pool_name}/d.raw", "raw")
    # The test driver resolves volume disks through the system daemon: attach a device here,
    # volumes in tests/lab/test_storage.py.
    disk = disks.device_disk(HOST, "/dev/vpd-test-disk", "vdb", "virtio")
    with pytest.raises(UsageError, match="hot-plugged"):
        disks.attach(HOST, dom, disks.volume_disk(HOST, conn, pool_name, "d.raw", "hdb", "ide"), live=True)
    # The test driver changes running guests only (no --config).
    made = disks.attach(HOST, dom, disk, live=True)
    assert made["changed"] and made["live"] and not made["config"]
    assert disks.attach(HOST, dom, disk, live=True)["changed"] is False
    with pytest.raises(UsageError, match="already holds"):
        disks.attach(HOST, dom, disk.model_copy(
            update={"source": disk.source.model_copy(update={"dev": "/dev/other"})}), live=True)
    listed = {d.target: d for d in disks.list_disks(dom)}
    assert listed["vdb"].source == "/dev/vpd-test-disk" and listed["vdb"].type == "block"
    with pytest.raises(UsageError, match="already attached"):
        disks.attach(HOST, dom, disk.model_copy(update={"target": disk.target.model_copy(update={"dev": "vdc"})}),
                     live=True)
    assert disks.detach(HOST, dom, "vdz", live=True)["changed"] is False  # nothing there: nothing to do
    # (the test driver cannot detach; tests/lab/test_storage.py does)


def test_network_disk_xml_round_trips():
    from vpd.xml.devices import (
        Disk,
        DiskAuth,
        DiskAuthSecret,
        DiskInitiator,
        DiskIqn,
        DiskSource,
        DiskSourceHost,
        DiskTarget,
    )

    disk = Disk(type="network", source=DiskSource(
        protocol="iscsi", name="iqn.2024-01.org.x:t/1", hosts=[DiskSourceHost(name="198.18.0.11", port=3260)],
        initiator=DiskInitiator(iqn=DiskIqn(name="iqn.2024-01.org.x:i")),
        auth=DiskAuth(username="u", secret=DiskAuthSecret(type="iscsi", usage="s"))),
        target=DiskTarget(dev="vdb", bus="virtio"))
    assert Disk.from_xml(disk.to_xml_string()) == disk
    assert disk.source.reference == "iscsi://198.18.0.11:3260/iqn.2024-01.org.x:t/1"
    assert Domain.model_fields  # the domain model still parses disks of every type


# --- secrets ------------------------------------------------------------------------

def test_chap_passwords(tmp_path, monkeypatch):
    monkeypatch.delenv(secrets.ENV_VAR, raising=False)
    assert secrets.read_password(None) is None
    f = tmp_path / "s"
    f.write_text("short\n")
    with pytest.raises(UsageError):
        secrets.read_password(str(f))
    f.write_text("longenough123\n")
    assert secrets.read_password(str(f)) == "longenough123"
    monkeypatch.setenv(secrets.ENV_VAR, "from-the-env-1")
    assert secrets.read_password(None) == "from-the-env-1"
    # Storing them needs libvirt's secret driver, which the test driver lacks: tests/lab does it.


# --- the CLI ------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("pool", "create", "a'b", "--host", "t1", "--type", "dir", "--path", "/x"),
    ("pool", "create", "p", "--host", "t1", "--type", "dir", "--path", "rel"),
    ("pool", "create", "p", "--host", "t1", "--type", "dir"),
    ("pool", "create", "p", "--host", "t1", "--type", "iscsi-direct", "--portal", "h", "--target", "iqn.bad"),
    ("pool", "create", "p", "--host", "t1", "--type", "iscsi-direct", "--portal", "h",
     "--target", "iqn.2024-01.org.x:t", "--chap", "u"),  # no secret
    ("pool", "create", "p", "--host", "nosuch", "--type", "dir", "--path", "/x"),
    ("pool", "delete", "nosuch", "--host", "t1"),
    ("pool", "delete", "default-pool", "--host", "t1", "--wipe", "--json"),
    ("vol", "create", "default-pool", "../x", "--host", "t1", "--size", "1M"),
    ("vol", "create", "default-pool", "x", "--host", "t1", "--size", "1X"),
    ("vol", "create", "default-pool", "x", "--host", "t1", "--size", "999P"),
    ("vol", "resize", "default-pool", "nosuch", "1G", "--host", "t1"),
    ("vm", "disk", "attach", "test", "--host", "t1", "--vol", "default-pool", "--target", "vdb"),
    ("vm", "disk", "attach", "test", "--host", "t1", "--vol", "default-pool/x", "--device", "/dev/x",
     "--target", "vdb"),
    ("vm", "disk", "attach", "test", "--host", "t1", "--vol", "default-pool/nosuch", "--target", "vdb"),
    ("vm", "disk", "attach", "test", "--host", "t1", "--vol", "default-pool/x", "--target", "vdb", "--bus", "ide"),
    ("vm", "disk", "list", "nosuch", "--host", "t1"),
])
def test_storage_bad_input_exits_2(test_inventory, args):
    proc = run_vpd(*args, inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_storage_cli_json(test_inventory):
    made = json.loads(run_vpd("pool", "create", "p9", "--host", "t1", "--type", "dir", "--path", "/p9", "--json",
                              inventory=test_inventory, check_rc=0).stdout)
    assert made["changed"] and made["type"] == "dir"
    listing = json.loads(run_vpd("pool", "list", "--all", "--json", inventory=test_inventory, check_rc=0).stdout)
    assert {h["host"] for h in listing["hosts"]} == {"t1", "t2"}
    vols = json.loads(run_vpd("vol", "list", "--json", inventory=test_inventory, check_rc=0).stdout)
    assert all(h["error"] is None for h in vols["hosts"])
    info = json.loads(run_vpd("pool", "info", "default-pool", "--host", "t1", "--json",
                              inventory=test_inventory, check_rc=0).stdout)
    assert info["capacity"] == info["allocation"] + info["available"]
    disks_out = json.loads(run_vpd("vm", "disk", "list", "test", "--host", "t1", "--json",
                                   inventory=test_inventory, check_rc=0).stdout)
    assert disks_out["vm"] == "test"


# --- iSCSI target (pure) --------------------------------------------------------------

TGT_SHOW = """Target 1: iqn.2024-01.org.vpd:san1
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 1
            Initiator: iqn.2024-01.org.vpd:hostb alias: none
            Connection: 0
                IP Address: 198.18.3.12
    LUN information:
        LUN: 0
            Type: controller
            Backing store type: null
            Backing store path: None
        LUN: 1
            Type: disk
            Backing store type: rdwr
            Backing store path: /var/lib/libvirt/images/san/lun.raw
    Account information:
        vpduser
    ACL information:
        iqn.2024-01.org.vpd:hostb
        iqn.2024-01.org.vpd:reader
Target 2: iqn.2024-01.org.vpd:san2
    System information:
        Driver: iscsi
    I_T nexus information:
    LUN information:
        LUN: 0
            Backing store path: None
    Account information:
    ACL information:
"""


def test_parse_tgt_show():
    from vpd.storage.iscsi_target import parse_tgt_show

    first, second = parse_tgt_show(TGT_SHOW, "hosta")
    assert (first.tid, first.iqn, first.luns, first.chap_users, first.sessions) == (
        1, "iqn.2024-01.org.vpd:san1", {1: "/var/lib/libvirt/images/san/lun.raw"}, ["vpduser"], 1)
    assert first.acl == ["iqn.2024-01.org.vpd:hostb", "iqn.2024-01.org.vpd:reader"]
    assert (second.tid, second.luns, second.acl, second.sessions) == (2, {}, [], 0)


def test_parse_allow():
    from vpd.connect.inventory import Inventory
    from vpd.storage.iscsi_target import parse_allow

    inv = Inventory(hosts=[Host(name="hosta", uri="test:///default", address="198.18.0.11"),
                           Host(name="hostb", uri="test:///default", address="198.18.0.12"),
                           Host(name="noaddr", uri="test:///default")])
    allowed = parse_allow(["hostb", "hosta=iqn.2024-01.org.x:r", "hostb=iqn.2024-01.org.x:b"], inv)
    assert [(i.iqn, i.host, i.address) for i in allowed] == [
        ("iqn.2024-01.org.vpd:hostb", "hostb", "198.18.0.12"), ("iqn.2024-01.org.x:r", "hosta", "198.18.0.11"),
        ("iqn.2024-01.org.x:b", "hostb", "198.18.0.12")]
    assert parse_allow(["iqn.2024-01.org.vpd:hosta"], inv)[0].host == "hosta"  # a host's default IQN
    for bad in (["iqn.2024-01.org.other:x"], ["nosuch"], ["noaddr"], ["hostb", "hostb"], ["hosta=bad iqn"], []):
        with pytest.raises(UsageError):
            parse_allow(bad, inv)


@pytest.mark.parametrize("args", [
    ("iscsi", "target", "create", "--host", "t1", "--iqn", "iqn.bad name", "--file", "/x", "--allow", "t2"),
    ("iscsi", "target", "create", "--host", "t1", "--iqn", "iqn.2024-01.org.x:t", "--allow", "t2"),
    ("iscsi", "target", "create", "--host", "t1", "--iqn", "iqn.2024-01.org.x:t", "--file", "rel", "--allow", "t2"),
    ("iscsi", "target", "create", "--host", "t1", "--iqn", "iqn.2024-01.org.x:t", "--file", "/x", "--allow", "t2",
     "--chap", "u"),
    ("iscsi", "target", "delete", "--host", "t1", "--iqn", "../x"),
])
def test_iscsi_bad_input_exits_2(test_inventory, args):
    proc = run_vpd(*args, inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


@given(st.text(max_size=70), st.sampled_from(["dir", "fs", "netfs", "logical", "iscsi-direct"]))
def test_any_pool_name_is_valid_or_a_usage_error(name, pool_type):
    spec = pools.PoolSpec(name, pool_type, path="/srv/p" if pool_type != "logical" else None,
                          source_devices=("/dev/loop0",) if pool_type in ("fs", "logical") else (),
                          source_host="198.18.0.11" if pool_type in ("netfs", "iscsi-direct") else None,
                          source_path="/export" if pool_type == "netfs" else None,
                          target_iqn="iqn.2024-01.org.x:t" if pool_type == "iscsi-direct" else None,
                          initiator_iqn="iqn.2024-01.org.x:i" if pool_type == "iscsi-direct" else None)
    try:
        model = pools.pool_xml(spec)
    except UsageError:
        return
    assert model.name == name and "/" not in name and ".." not in name and " " not in name


@pytest.mark.parametrize("message,expected", [
    ("Failed to login: Failed to log in to target. Status: Authentication failure(513)", "CHAP credentials"),
    ("Failed to login: Failed to log in to target. Status: Target not found(515)", "does not admit"),
    ("Failed to login: Failed to log in to target. Status: Authorization failure(514)", "does not admit"),
    ("something else", "failed: something else"),
])
def test_login_errors_are_explained(message, expected):
    spec = pools.PoolSpec("p", "iscsi-direct", source_host="198.18.0.11", target_iqn="iqn.2024-01.org.x:t",
                          initiator_iqn="iqn.2024-01.org.x:i", chap_user="u")
    assert expected in pools._login_error("iscsi-direct", spec, message).message


@pytest.mark.parametrize("path", [
    "/", "/etc", "/etc/", "/usr/lib/x", "/boot", "/proc/1", "/sys", "/dev", "/dev/shm/p", "/bin", "/sbin",
    "/lib", "/lib64/x", "/var", "/var/lib", "/var/lib/libvirt", "/var/lib/libvirt/", "//var//lib",
    "/var/lib/libvirt/images/..", "/var/lib/libvirt/images/../../../etc", "../etc/passwd", "images",
    "/srv/pool\n", "/srv/po\tol", "/srv/\x1b[2J", "", "/" + "x" * 300,
])
def test_pool_paths_refused(path):
    with pytest.raises(UsageError) as err:
        pools.pool_xml(pools.PoolSpec(name="p1", type="dir", path=path))
    assert err.value.exit_code == 2


@pytest.mark.parametrize(("path", "normal"), [
    ("/var/lib/libvirt/images/p1", "/var/lib/libvirt/images/p1"),
    ("/srv/vpd//p1/", "/srv/vpd/p1"),
    ("/srv/./vpd/p1", "/srv/vpd/p1"),
])
def test_pool_paths_normalised(path, normal):
    assert pools.pool_xml(pools.PoolSpec(name="p1", type="dir", path=path)).target.path == normal


def test_iscsi_device_directory_may_be_under_dev():
    spec = pools.PoolSpec(name="p1", type="iscsi", source_host="192.0.2.1", target_iqn="iqn.2024-01.org.example:t")
    assert pools.pool_xml(spec).target.path == "/dev/disk/by-path"
    with pytest.raises(UsageError):
        pools.pool_xml(pools.PoolSpec(name="p1", type="netfs", path="/dev/x", source_host="nfs",
                                      source_path="/export"))


@pytest.mark.parametrize("path", ["/var/lib/libvirt/images/..", "../etc/passwd", "/srv/a\nb", "/etc"])
def test_pool_create_bad_path_exits_2(test_inventory, path):
    proc = run_vpd("pool", "create", "p1", "--host", "t1", "--type", "dir", "--path", path,
                   inventory=test_inventory)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "pool path" in proc.stderr


class _StaleListing:
    """A pool whose listing was taken before a parallel `vol delete` removed some volumes."""

    def __init__(self, pool, handles):
        self._pool, self._handles = pool, handles

    def listAllVolumes(self, flags=0):  # noqa: N802 - libvirt's name
        return self._handles

    def __getattr__(self, name):
        return getattr(self._pool, name)


def test_delete_tolerates_siblings_vanishing_during_the_overlay_scan(conn, pool_name, monkeypatch):
    pools.create_pool(conn, HOST, pools.PoolSpec(pool_name, "dir", path=f"/vpd-test/{pool_name}"))
    pool = conn.storagePoolLookupByName(pool_name)
    for n in ("a", "b", "c"):
        volumes.create_volume(HOST, conn, pool_name, n, 2**20, fmt="raw")
    stale = pool.listAllVolumes(0)
    conn.storagePoolLookupByName(pool_name).storageVolLookupByName("b").delete(0)  # the sibling deleter
    monkeypatch.setattr(volumes, "find_pool", lambda c, h, n: _StaleListing(pool, stale))
    assert volumes.delete_volume(HOST, conn, pool_name, "a")["deleted"]
    assert sorted(pool.listVolumes()) == ["c"]
    with pytest.raises(libvirt.libvirtError):  # anything but "no such volume" still fails
        volumes.present([None], lambda v: (_ for _ in ()).throw(libvirt.libvirtError("boom")))


def test_parallel_deletes_of_different_volumes_all_succeed(conn, pool_name):
    from concurrent.futures import ThreadPoolExecutor

    pools.create_pool(conn, HOST, pools.PoolSpec(pool_name, "dir", path=f"/vpd-test/{pool_name}"))
    for round_ in range(5):
        names = [f"v{round_}-{i}" for i in range(8)]
        for n in names:
            volumes.create_volume(HOST, conn, pool_name, n, 2**20, fmt="raw")
        with ThreadPoolExecutor(8) as ex:
            results = list(ex.map(lambda n: volumes.delete_volume(HOST, conn, pool_name, n), names))
        assert all(r["deleted"] for r in results)
    assert conn.storagePoolLookupByName(pool_name).listVolumes() == []


def test_listings_rescan_directory_pools_and_say_when_a_view_may_be_stale(conn):
    """A volume another host wrote into a shared directory is listed only after a refresh:
    directory pools are re-scanned, the others are named as possibly stale."""
    dir_pool = conn.storagePoolLookupByName("default-pool")
    assert pools.rescan(HOST, dir_pool) is None
    vg = conn.storagePoolCreateXML("<pool type='logical'><name>vg1</name><source><name>vg1</name></source>"
                                   "<target><path>/dev/vg1</path></target></pool>", 0)
    note = pools.rescan(HOST, vg)
    assert note == "pool vg1 (logical) on t1 shows libvirt's last scan: `vpd pool refresh vg1 --host t1` re-reads it"
    from vpd.connect.libvirt_conn import Connections

    with Connections() as conns:
        [listing] = volumes.list_volumes(conns, [HOST])
        [pool_listing] = pools.list_pools(conns, [HOST])
    # The listings carry the note for the logical pool only.
    assert listing.error is None and listing.stale == [note]
    assert {p.name: p.stale for p in pool_listing.pools if p.stale} == {"vg1": note}
