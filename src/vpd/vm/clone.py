"""`vpd vm clone`: virt-clone's job, with the checks virt-clone leaves to you.

A full clone copies each disk into a new volume (libvirt runs qemu-img), and the
new definition gets its own name, UUID and MACs. The source must not be running
unless the caller accepts a crash-consistent copy. Anything made is removed
when a later step fails."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import libvirt
from lxml import etree

from ..connect.inventory import Host
from ..core import events
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from ..xml.volume import volume as volume_xml


@dataclass
class Cloned:
    host: str
    name: str
    uuid: str
    disks: list[str] = field(default_factory=list)
    macs: list[str] = field(default_factory=list)


def new_mac(taken: set[str], rng: random.Random | None = None) -> str:
    """A random MAC in the KVM/QEMU prefix 52:54:00, not among `taken`."""
    rng = rng or random.SystemRandom()
    while True:
        mac = "52:54:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))
        if mac not in taken:
            return mac


def _macs_in_use(conn: libvirt.virConnect) -> set[str]:
    used = set()
    for dom in conn.listAllDomains():
        used.update(m.lower() for m in etree.fromstring(dom.XMLDesc(0).encode()).xpath("devices/interface/mac/@address"))
    return used


def clone_vm(conn: libvirt.virConnect, host: Host, source: str, new_name: str, pool_name: str | None = None,
             allow_running: bool = False) -> Cloned:
    check_name(new_name, "VM name")
    try:
        src = conn.lookupByName(check_name(source, "VM name"))
    except libvirt.libvirtError:
        raise UsageError(f"no VM named {source!r} on {host.name}") from None
    state = src.state()[0]
    if state == libvirt.VIR_DOMAIN_RUNNING and not allow_running:
        raise UsageError(f"{source} is running: a copy of a running guest's disk is only crash-consistent",
                         hint="shut it down or pause it first, or accept that with --allow-running")
    try:
        conn.lookupByName(new_name)
        raise UsageError(f"a VM named {new_name!r} already exists on {host.name}")
    except libvirt.libvirtError:
        pass
    tree = etree.fromstring(src.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    tree.find("name").text = new_name
    for node in tree.findall("uuid"):
        tree.remove(node)
    result = Cloned(host.name, new_name, "")
    made: list[libvirt.virStorageVol] = []
    try:
        disks = [d for d in tree.findall("devices/disk") if d.get("device") == "disk"]
        for i, disk in enumerate(disks):
            source_el = disk.find("source")
            path = source_el.get("file") if source_el is not None else None
            if disk.get("type") != "file" or not path:
                raise VpdError(f"{source}: disk {i} is not a file volume; vpd clones file-backed disks only")
            try:
                src_vol = conn.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                raise VpdError(f"{path} is not in a storage pool of {host.name}",
                               hint="put the disk in a pool (vpd pool ...) so libvirt can copy it") from None
            pool = conn.storagePoolLookupByName(pool_name) if pool_name else src_vol.storagePoolLookupByVolume()
            fmt = (disk.find("driver").get("type") if disk.find("driver") is not None else None) or "raw"
            suffix = PurePosixPath(path).suffix or f".{fmt}"
            vol_name = f"{new_name}{'' if i == 0 else f'-{i}'}{suffix}"
            if vol_name in pool.listVolumes():
                raise UsageError(f"volume {vol_name} already exists in pool {pool.name()}")
            capacity = src_vol.info()[1]
            events.emit("vm.clone", f"copying {PurePosixPath(path).name} -> {vol_name}", i, len(disks), "disks")
            vol = pool.createXMLFrom(volume_xml(vol_name, capacity, fmt=fmt).to_xml_string(), src_vol, 0)
            made.append(vol)
            source_el.set("file", vol.path())
            result.disks.append(vol.path())
        events.emit("vm.clone", "defining", len(disks), len(disks), "disks")
        taken = _macs_in_use(conn)
        for mac_el in tree.findall("devices/interface/mac"):
            mac = new_mac(taken)
            taken.add(mac)
            mac_el.set("address", mac)
            result.macs.append(mac)
        # A copied serial log path would make both VMs write the same file (virt-clone does that).
        for log in tree.findall("devices/serial/log") + tree.findall("devices/console/log"):
            log.getparent().remove(log)
        dom = conn.defineXML(etree.tostring(tree).decode())
        result.uuid = dom.UUIDString()
        return result
    except BaseException:
        for vol in made:
            try:
                vol.delete(0)
            except libvirt.libvirtError:
                pass
        raise
