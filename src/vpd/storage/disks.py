"""Disks of a VM: attach a pool volume or a host block device, detach, list (`domblklist --details`).

Checked before libvirt is asked: the target name fits the bus (vd* virtio, sd* sata/scsi,
hd* ide), is free, the source exists, and a live attach uses a bus that can be hot-plugged
(QEMU cannot hot-plug IDE or SATA disks). Attaching the same source at the same target again
changes nothing.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import cast

import libvirt

from ..connect.inventory import Host
from ..connect.ssh import runner_for
from ..core.errors import UsageError, VpdError
from ..xml.checks import require_absolute_path
from ..xml.devices import Disk, DiskBus, DiskDriver, DiskSource, DiskTarget
from ..xml.domain import Domain
from ..xml.pool import StoragePool
from .pools import find_pool
from .volumes import describe, find_volume

BUSES = ("virtio", "sata", "scsi", "ide")
_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd", "ide": "hd"}
_TARGET = re.compile(r"^(vd|sd|hd)[a-z]{1,2}\Z")
HOTPLUG_BUSES = ("virtio", "scsi")


@dataclass
class DiskRow:
    target: str
    bus: str | None
    type: str
    device: str
    source: str | None
    format: str | None
    readonly: bool

    def to_dict(self) -> dict:
        return asdict(self)


def rows(domain: Domain) -> list[DiskRow]:
    return [DiskRow(d.target.dev, d.target.bus, d.type, d.device, d.source.reference if d.source else None,
                    d.driver.type if d.driver else None, d.readonly) for d in domain.disks]


def list_disks(dom: libvirt.virDomain, inactive: bool = False) -> list[DiskRow]:
    """The running definition while the VM runs (unless `inactive`), else the persistent one."""
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive or not dom.isActive() else 0
    return rows(Domain.from_xml(dom.XMLDesc(flags)))


def default_bus(target: str | None) -> str:
    """The bus a target name implies: vd* virtio, sd* sata, hd* ide (virtio otherwise)."""
    return {"vd": "virtio", "sd": "sata", "hd": "ide"}.get((target or "")[:2], "virtio")


def check_bus(bus: str) -> DiskBus:
    if bus not in BUSES:
        raise UsageError(f"unknown disk bus {bus!r}", hint="use one of: " + ", ".join(BUSES))
    return cast(DiskBus, bus)  # BUSES are libvirt disk buses


def check_target(target: str, bus: str) -> str:
    check_bus(bus)
    if not _TARGET.fullmatch(target or ""):
        raise UsageError(f"invalid disk target {target!r}", hint="use e.g. vdb (virtio), sdb (sata/scsi), hdb (ide)")
    if not target.startswith(_PREFIX[bus]):
        raise UsageError(f"target {target} does not fit bus {bus}",
                         hint=f"{bus} disks are named {_PREFIX[bus]}a, {_PREFIX[bus]}b...")
    return target


def _flags(dom: libvirt.virDomain, live: bool, config: bool) -> tuple[int, bool, bool]:
    """(libvirt flags, affects the running guest, affects the persistent definition)."""
    running, persistent = bool(dom.isActive()), bool(dom.isPersistent())
    if live and not running:
        raise UsageError(f"VM {dom.name()} is not running: --live needs a running VM", hint="use --config")
    if config and not persistent:
        raise UsageError(f"VM {dom.name()} is transient: it has no definition for --config")
    if not live and not config:  # like virsh: the current state
        live, config = running, not running
    flags = (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0) | (libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0)
    return flags, live, config


def _definitions(dom: libvirt.virDomain, live: bool, config: bool) -> list[Domain]:
    out = []
    if live:
        out.append(Domain.from_xml(dom.XMLDesc(0)))
    if config:
        out.append(Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
    return out


def volume_disk(host: Host, conn: libvirt.virConnect, pool_name: str, vol_name: str, target: str, bus: str,
                readonly: bool = False) -> Disk:
    """A disk backed by a pool volume (`<disk type='volume'>`): libvirt resolves it on every start,
    a file, a block device or an iSCSI LUN with the pool's initiator and CHAP secret alike."""
    pool = find_pool(conn, host, pool_name)
    info = describe(host, pool_name, find_volume(host, pool, vol_name))
    pool_type = StoragePool.from_xml(pool.XMLDesc(0)).type
    fmt = info.format if info.format in ("raw", "qcow2") else "raw"
    if pool_type in ("iscsi", "iscsi-direct") and info.capacity == 0:
        raise UsageError(f"{pool_name}/{vol_name} is a LUN without storage (LUN 0 is the target's controller)",
                         hint="attach the data LUN, e.g. unit:0:0:1")
    return Disk(type="volume", device="disk", driver=DiskDriver(name="qemu", type=fmt),
                source=DiskSource(pool=pool_name, volume=vol_name), target=DiskTarget(dev=target, bus=check_bus(bus)),
                readonly=readonly)


def device_disk(host: Host, path: str, target: str, bus: str, readonly: bool = False) -> Disk:
    require_absolute_path(path, "device")
    if not host.uri.startswith("test:") and not runner_for(host).run(["test", "-b", path], check=False).ok:
        raise UsageError(f"{host.name}: {path} is not a block device there")
    return Disk(type="block", device="disk", driver=DiskDriver(name="qemu", type="raw"),
                source=DiskSource(dev=path), target=DiskTarget(dev=target, bus=check_bus(bus)),
                readonly=readonly)


def _same(a: Disk, b: Disk) -> bool:
    return (a.source.reference if a.source else None) == (b.source.reference if b.source else None)


def attach(host: Host, dom: libvirt.virDomain, disk: Disk, *, live: bool = False, config: bool = False) -> dict:
    flags, live, config = _flags(dom, live, config)
    bus = disk.target.bus or "virtio"
    if live and bus not in HOTPLUG_BUSES:
        raise UsageError(f"a {bus} disk cannot be hot-plugged into running {dom.name()}",
                         hint="use --bus virtio (or scsi), or --config and restart the VM")
    target = disk.target.dev
    already = []
    for definition in _definitions(dom, live, config):
        for present in definition.disks:
            if present.target.dev == target:
                if not _same(present, disk):
                    raise UsageError(f"target {target} of {dom.name()} already holds "
                                     f"{present.source.reference if present.source else 'an empty drive'}",
                                     hint="pick another --target, or detach it first")
                already.append(True)
            elif present.source and disk.source and _same(present, disk):
                raise UsageError(f"{disk.source.reference} is already attached to {dom.name()} as {present.target.dev}")
    result = {"host": host.name, "vm": dom.name(), "target": target, "bus": bus,
              "source": disk.source.reference if disk.source else None, "live": live, "config": config}
    if already and len(already) == len(_definitions(dom, live, config)):
        return {**result, "changed": False}
    try:
        dom.attachDeviceFlags(disk.to_xml_string(), flags)
    except libvirt.libvirtError as exc:
        raise VpdError(f"{host.name}: attaching {target} to {dom.name()} failed: {exc.get_error_message()}") from None
    return {**result, "changed": True}


def detach(host: Host, dom: libvirt.virDomain, target: str, *, live: bool = False, config: bool = False) -> dict:
    _, live, config = _flags(dom, live, config)
    found: Disk | None = None
    flags = 0
    for affect, wanted, xml_flags in ((libvirt.VIR_DOMAIN_AFFECT_LIVE, live, 0),
                                      (libvirt.VIR_DOMAIN_AFFECT_CONFIG, config, libvirt.VIR_DOMAIN_XML_INACTIVE)):
        if not wanted:
            continue
        for present in Domain.from_xml(dom.XMLDesc(xml_flags)).disks:
            if present.target.dev == target:
                found, flags = present, flags | affect
    result = {"host": host.name, "vm": dom.name(), "target": target, "live": live, "config": config}
    if found is None:
        return {**result, "changed": False, "note": f"{dom.name()} has no disk {target}"}
    if flags & libvirt.VIR_DOMAIN_AFFECT_LIVE and (found.target.bus or "") not in HOTPLUG_BUSES:
        raise UsageError(f"a {found.target.bus} disk cannot be unplugged from running {dom.name()}",
                         hint="use --config and restart the VM")
    # libvirt matches the disk to remove by its target; the parsed element carries it.
    try:
        dom.detachDeviceFlags(found.to_xml_string(), flags)
    except libvirt.libvirtError as exc:
        raise VpdError(f"{host.name}: detaching {target} from {dom.name()} failed: {exc.get_error_message()}") from None
    return {**result, "changed": True, "source": found.source.reference if found.source else None}
