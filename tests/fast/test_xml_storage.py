"""vpd.xml pools, volumes and networks against libvirt's real test driver (test:///default)."""
from __future__ import annotations

import uuid
from pathlib import Path

import libvirt
import pydantic
import pytest
from lxml import etree

from vpd.core.errors import UsageError
from vpd.xml import (
    AuthSecret,
    Dhcp,
    DhcpRange,
    Forward,
    Iqn,
    Network,
    NetworkBridge,
    NetworkIp,
    Permissions,
    PoolAuth,
    PoolInitiator,
    PoolSource,
    PoolSourceDevice,
    PoolSourceHost,
    PoolTarget,
    StoragePool,
    StorageSize,
    StorageVolume,
    dir_pool,
    volume,
)

SCHEMAS = Path("/usr/share/libvirt/schemas")
GiB = 1024**3


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
def started_dir_pool(conn, unique_name):
    # The test driver keeps pools in memory, so the target directory need not exist.
    pool = conn.storagePoolDefineXML(dir_pool(unique_name, f"/vpd-test/{unique_name}").to_xml_string())
    pool.create()
    yield pool
    for virt_volume in pool.listAllVolumes():
        virt_volume.delete()
    pool.destroy()
    pool.undefine()


def test_dir_pool_defined_on_test_driver_reads_back_typed(started_dir_pool, unique_name):
    pool = StoragePool.from_xml(started_dir_pool.XMLDesc())

    assert (pool.type, pool.name) == ("dir", unique_name)
    assert pool.uuid == started_dir_pool.UUIDString()
    assert pool.target.path == f"/vpd-test/{unique_name}"
    assert pool.capacity.in_bytes == pool.allocation.in_bytes + pool.available.in_bytes > 0


def test_volume_created_on_test_driver_reads_back_typed(started_dir_pool, unique_name):
    created = started_dir_pool.createXML(volume("base.qcow2", 2 * GiB).to_xml_string())

    base = StorageVolume.from_xml(created.XMLDesc())

    assert base.name == "base.qcow2"
    assert base.capacity.in_bytes == 2 * GiB
    assert base.target.path == f"/vpd-test/{unique_name}/base.qcow2" == created.path()
    assert base.target.format.type == "qcow2"
    assert base.backing_store is None


def test_overlay_volume_keeps_its_backing_store(started_dir_pool, unique_name):
    base = started_dir_pool.createXML(volume("base.raw", GiB, fmt="raw").to_xml_string())
    overlay = volume("overlay.qcow2", 4 * GiB, backing=base.path(), backing_fmt="raw")

    parsed = StorageVolume.from_xml(started_dir_pool.createXML(overlay.to_xml_string()).XMLDesc())

    assert parsed.backing_store.path == base.path()
    assert parsed.backing_store.format.type == "raw"
    assert parsed.capacity.in_bytes == 4 * GiB


def test_test_drivers_own_pool_and_network_parse(conn):
    pool = StoragePool.from_xml(conn.storagePoolLookupByName("default-pool").XMLDesc())
    network = Network.from_xml(conn.networkLookupByName("default").XMLDesc())

    assert (pool.type, pool.target.path, pool.capacity.in_bytes) == ("dir", "/default-pool", 100 * GiB)
    assert (network.forward.mode, network.bridge.name) == ("nat", "virbr0")
    [ip] = network.ips
    assert (ip.address, ip.netmask) == ("192.168.122.1", "255.255.255.0")
    assert [(r.start, r.end) for r in ip.dhcp.ranges] == [("192.168.122.2", "192.168.122.254")]


def iscsi_direct_pool(name: str) -> StoragePool:
    return StoragePool(
        type="iscsi-direct",
        name=name,
        source=PoolSource(
            host=PoolSourceHost(name="san.lab", port=3260),
            devices=[PoolSourceDevice(path="iqn.2024-01.lab.san:target0")],
            initiator=PoolInitiator(iqn=Iqn(name="iqn.2024-01.lab.host:initiator")),
            auth=PoolAuth(type="chap", username="lab", secret=AuthSecret(usage="lab-iscsi")),
        ),
    )


def test_iscsi_direct_pool_defines_and_reads_back(conn, unique_name):
    virt_pool = conn.storagePoolDefineXML(iscsi_direct_pool(unique_name).to_xml_string())
    try:
        source = StoragePool.from_xml(virt_pool.XMLDesc()).source
    finally:
        virt_pool.undefine()

    assert (source.host.name, source.host.port) == ("san.lab", 3260)
    assert [device.path for device in source.devices] == ["iqn.2024-01.lab.san:target0"]
    assert source.initiator.iqn.name == "iqn.2024-01.lab.host:initiator"
    assert (source.auth.type, source.auth.username, source.auth.secret.usage) == ("chap", "lab", "lab-iscsi")


def lab_network(name: str) -> Network:
    return Network(
        name=name,
        forward=Forward(mode="nat"),
        bridge=NetworkBridge(name="vpdbr0", stp="on", delay=0),  # as libvirt reports it back
        ips=[NetworkIp(address="10.77.0.1", prefix=24,
                       dhcp=Dhcp(ranges=[DhcpRange(start="10.77.0.100", end="10.77.0.199")]))],
    )


def test_network_defined_on_test_driver_reads_back_typed(conn, unique_name):
    virt_network = conn.networkDefineXML(lab_network(unique_name).to_xml_string())
    try:
        network = Network.from_xml(virt_network.XMLDesc())
    finally:
        virt_network.undefine()

    assert network.uuid == virt_network.UUIDString()
    assert network.model_copy(update={"uuid": None}) == lab_network(unique_name)


@pytest.mark.parametrize(
    "model",
    [
        dir_pool("images", "/var/lib/vpd/images").model_copy(
            update={"target": PoolTarget(path="/srv/images", permissions=Permissions(mode="0750", owner=0, group=107))}
        ),
        iscsi_direct_pool("san"),
        volume("guest.qcow2", 10 * GiB, backing="/srv/images/base.qcow2"),
        lab_network("lab"),
    ],
    ids=["dir-pool", "iscsi-direct-pool", "overlay-volume", "network"],
)
def test_round_trip_and_libvirt_schema(model):
    xml = model.to_xml_string()

    assert type(model).from_xml(xml) == model
    schema_file = SCHEMAS / {"pool": "storagepool.rng", "volume": "storagevol.rng", "network": "network.rng"}[
        etree.fromstring(xml).tag
    ]
    if schema_file.exists():
        schema = etree.RelaxNG(etree.parse(str(schema_file)))
        assert schema.validate(etree.fromstring(xml)), schema.error_log


def test_pool_sizes_are_read_only_once_parsed(conn):
    pool = StoragePool.from_xml(conn.storagePoolLookupByName("default-pool").XMLDesc())

    with pytest.raises(pydantic.ValidationError):
        pool.capacity = StorageSize(value=1)


@pytest.mark.parametrize(
    "arguments",
    [
        ("disk.qcow2", 0),
        ("disk.qcow2", -GiB),
        ("disk.qcow2", True),
        ("disk.qcow2", 1.5 * GiB),
        ("disk.qcow2", 2 * 1024**5),
        ("disk.qcow2", GiB, "qcwo2"),
        ("disk.qcow2", GiB, "qcow2", "relative/base.qcow2"),
        ("../escape.qcow2", GiB),
        ("", GiB),
    ],
)
def test_volume_rejects_bad_arguments(arguments):
    with pytest.raises(UsageError):
        volume(*arguments)


@pytest.mark.parametrize("arguments", [("images", "relative/dir"), ("bad name", "/srv"), ("", "/srv")])
def test_dir_pool_rejects_bad_arguments(arguments):
    with pytest.raises(UsageError):
        dir_pool(*arguments)
