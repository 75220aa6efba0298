"""`vpd vm clone`: virt-clone's job, with the checks virt-clone leaves to you.

A full clone copies each disk into a new volume (libvirt runs qemu-img), and the
new definition gets its own name, UUID and MACs. A running or paused source is copied
only when the caller accepts a crash-consistent copy (--allow-running): qemu-img cannot
read a disk QEMU holds with its write lock, so libvirt's backup job (push mode) has QEMU
write the disks, as of the instant it begins, into the new volumes while the guest runs on.
A linked clone instead gets qcow2 overlays on the source's disks, in the same pool: its source must then
stay shut off for as long as overlays depend on it (`linked_dependents`).
Anything made is removed when a later step fails."""
from __future__ import annotations

import contextvars
import posixpath
import threading
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import libvirt

from .. import ops
from ..connect.hostfiles import HostFiles
from ..connect.inventory import Host
from ..connect.libvirt_conn import refresh_pool
from ..core import events
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from ..core.undo import Undo
from ..storage.room import PoolRoom
from ..xml.backup import push_backup
from ..xml.checks import require_unicast_mac
from ..xml.domain import cdrom_disk, disk_target

# new_mac lives in xml.edit; create, restore and OVF import still import it from here.
from ..xml.edit import DomainEditor, disk_files, macs_of, new_mac, nvram_path  # noqa: F401
from ..xml.volume import StorageVolume
from ..xml.volume import volume as volume_xml
from .backupjob import run_push_backup
from .cloudinit import build_iso, upload_seed
from .console import serial_log_path, start_fresh_log
from .customize import ADDRESS_NS, Customisation, address_element
from .inventory import domain_exists, undefine_flags, volume_by_path


@dataclass
class Cloned:
    host: str
    name: str
    uuid: str
    disks: list[str] = field(default_factory=list)
    macs: list[str] = field(default_factory=list)
    seed: str | None = None
    """The customised clone's cloud-init seed volume."""
    hostname: str | None = None
    ip: str | None = None
    nvram: str | None = None
    """A UEFI clone's own copy of the source's NVRAM (its UEFI variables)."""


def macs_in_use(conn: libvirt.virConnect) -> set[str]:
    used = set()
    for dom in conn.listAllDomains():
        used.update(macs_of(dom.XMLDesc(0)))
    return used


def linked_dependents(conn: libvirt.virConnect, dom: libvirt.virDomain) -> list[str]:
    """Paths of the volumes on this host whose backing image is one of `dom`'s disks.

    Read from the volumes themselves, not from a record vpd keeps: an overlay made by
    hand or by another tool counts as well, and a deleted one stops counting."""
    disks = set(disk_files(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), device="disk"))
    if not disks:
        return []
    found = []
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        refresh_pool(pool)
        for vol in pool.listAllVolumes(0):
            backing = StorageVolume.from_xml(vol.XMLDesc(0)).backing_store
            if backing is not None and backing.path in disks:
                found.append(vol.path())
    return sorted(found)


def copy_volume(pool: libvirt.virStoragePool, xml: str, source: libvirt.virStorageVol, step: str,
                poll_s: float = 0.25) -> libvirt.virStorageVol:
    """Copy `source` into a new volume of `pool` (libvirt runs qemu-img), reporting bytes copied.

    libvirt's copy call blocks without progress, but the new volume is listed while it is
    being written: a watcher reads its allocation against the source's."""
    total = source.info()[2] or source.info()[1]
    name = StorageVolume.from_xml(xml).name
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(poll_s):
            try:
                done = pool.storageVolLookupByName(name).info()[2]
            except libvirt.libvirtError:
                continue  # not listed yet
            events.emit("vm.clone", step, min(done, total), total, "bytes")

    # A copy of the caller's context: its events keep the caller's scope (the web job's id).
    watcher = threading.Thread(target=contextvars.copy_context().run, args=(watch,), daemon=True)
    events.emit("vm.clone", step, 0, total, "bytes")
    watcher.start()
    try:
        vol = pool.createXMLFrom(xml, source, 0)
    finally:
        finished.set()
        watcher.join()
    events.emit("vm.clone", step, total, total, "bytes")
    return vol


def clone_names(new_name: str, count: int | None) -> list[str]:
    """NEW, or NEW-1..NEW-N with --count N."""
    check_name(new_name, "VM name")
    if count is None:
        return [new_name]
    if not 1 <= count <= 100:
        raise UsageError(f"--count {count} is out of range (1-100)")
    return [check_name(f"{new_name}-{i}", "VM name") for i in range(1, count + 1)]


def clone_vm(conn: libvirt.virConnect, host: Host, source: str, new_name: str, pool_name: str | None = None,
             allow_running: bool = False, linked: bool = False, mac: str | None = None,
             taken_macs: set[str] | None = None, custom: Customisation | None = None) -> Cloned:
    """Clone `source` as `new_name`; `mac` (already checked unique by the caller) goes to the first NIC.
    `taken_macs`: MACs in use on every host (else only this host's are avoided). `custom`: the
    clone gets its own cloud-init seed (`NEW-cidata.iso` next to its first disk) in place of the
    source's, if any."""
    check_name(new_name, "VM name")
    if mac is not None:
        mac = require_unicast_mac(mac, "MAC address")
    try:
        src = conn.lookupByName(check_name(source, "VM name"))
    except libvirt.libvirtError:
        raise UsageError(f"no VM named {source!r} on {host.name}") from None
    state = src.state()[0]
    active = bool(src.isActive())
    if linked and state != libvirt.VIR_DOMAIN_SHUTOFF:
        # The source's disk becomes a read-only base: a guest still writing to it would corrupt the overlay.
        raise UsageError(f"{source} is not shut off: a linked clone needs a source that no longer writes its disk",
                         hint=f"vpd vm shutdown {source} --host {host.name}")
    if linked and pool_name:
        raise UsageError("--linked puts each overlay in the pool of the disk it is based on; drop --pool")
    if active and not allow_running:
        # Paused counts too: its disks may hold writes the guest has not flushed.
        raise UsageError(f"{source} is {'paused' if state == libvirt.VIR_DOMAIN_PAUSED else 'running'}: "
                         "a copy of a running guest's disk is only crash-consistent",
                         hint="shut it down first, or accept a crash-consistent copy (as after a power cut) "
                              "with --allow-running")
    if domain_exists(conn, new_name):
        raise UsageError(f"a VM named {new_name!r} already exists on {host.name}")
    if not linked:
        check_room(conn, host, source, 1, pool_name)  # clone_vms checked a whole batch already; a template's one here
    ed = DomainEditor.from_xml(src.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE))
    result = Cloned(host.name, new_name, "")
    nvram = _plan_nvram(conn, host, ed, new_name)
    seed_name = f"{new_name}-cidata.iso"
    live_copies: dict[str, str] = {}  # target dev -> new volume path, for the backup job
    live_formats: dict[str, str] = {}
    with Undo() as undo:
        disks = ed.disks(device="disk")
        for i, disk in enumerate(disks):
            path = disk.source_file
            if disk.type != "file" or not path:
                raise VpdError(f"{source}: disk {i} is not a file volume; vpd clones file-backed disks only")
            src_vol = volume_by_path(conn, path)
            if src_vol is None:
                raise VpdError(f"{path} is not in a storage pool of {host.name}",
                               hint="put the disk in a pool (vpd pool ...) so libvirt can copy it")
            pool = conn.storagePoolLookupByName(pool_name) if pool_name else src_vol.storagePoolLookupByVolume()
            fmt = disk.format or "raw"
            suffix = ".qcow2" if linked else PurePosixPath(path).suffix or f".{fmt}"
            vol_name = f"{new_name}{'' if i == 0 else f'-{i}'}{suffix}"
            if vol_name in pool.listVolumes() or (custom is not None and i == 0 and seed_name in pool.listVolumes()):
                taken_name = vol_name if vol_name in pool.listVolumes() else seed_name
                raise UsageError(f"volume {taken_name} already exists in pool {pool.name()}")
            capacity = src_vol.info()[1]
            # Journaled before it exists: if vpd dies mid-copy, recovery finds the orphan (no domain uses it).
            ops.plan("volume", vol_name, host.name, pool=pool.name(), owner=new_name)
            if linked:
                events.emit("vm.clone", f"overlay {vol_name} on {PurePosixPath(path).name}", i, len(disks), "disks")
                vol = pool.createXML(volume_xml(vol_name, capacity, fmt="qcow2", backing=path,
                                                backing_fmt=fmt).to_xml_string(), 0)
            elif active:
                # An empty volume of the same size and format: the backup job below fills it.
                vol = pool.createXML(volume_xml(vol_name, capacity, fmt=fmt).to_xml_string(), 0)
                live_copies[disk.target or f"disk{i}"] = vol.path()
                live_formats[disk.target or f"disk{i}"] = fmt
            else:
                vol = copy_volume(pool, volume_xml(vol_name, capacity, fmt=fmt).to_xml_string(), src_vol,
                                  f"copying {PurePosixPath(path).name} -> {vol_name}")
            undo.push(lambda vol=vol: vol.delete(0))
            # A full copy is the same image elsewhere (its own backing file, if any, is kept);
            # an overlay is a new qcow2, and the backup job's copy a flattened one: libvirt
            # probes their chains afresh.
            disk.repoint(vol.path(), fmt="qcow2" if linked else None, keep_backing_store=not (linked or active))
            result.disks.append(vol.path())
        if live_copies:
            events.emit("vm.clone", f"copying the disks of running {source}", 0, len(disks), "disks")
            # REUSE_EXTERNAL: QEMU writes into the volumes made above (in their pools, with their
            # format), instead of libvirt creating files of its own.
            run_push_backup(host, src, push_backup(live_copies, formats=live_formats).to_xml_string(), None, "vm.clone",
                            f"copying the disks of running {source}",
                            flags=libvirt.VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL)
        events.emit("vm.clone", "defining", len(disks), len(disks), "disks")
        taken = macs_in_use(conn) | (taken_macs or set())
        if mac is not None and mac in taken:
            raise UsageError(f"MAC {mac} is already in use on {host.name}")
        if mac is not None and not ed.macs:
            raise UsageError(f"{source} has no network interface to give MAC {mac}")
        # vpd's bookkeeping (e.g. the template marker) describes the source, not the clone.
        result.macs = ed.reset_identity(new_name, taken_macs=taken, first_mac=mac,
                                        serial_log=serial_log_path(new_name), drop_vpd_metadata=True)
        if custom is not None:
            if not result.disks:
                raise UsageError(f"{source} has no disk: a clone's cloud-init seed goes next to its first disk")
            _give_seed(conn, host, ed, new_name, seed_name, custom, result, undo)
        if nvram is not None:
            result.nvram = _copy_nvram(conn, host, ed, nvram, new_name, undo)
        start_fresh_log(conn, host, new_name)
        dom = conn.defineXML(ed.to_xml())
        result.uuid = dom.UUIDString()
        return result


def _plan_nvram(conn: libvirt.virConnect, host: Host, ed: DomainEditor, new_name: str) -> tuple[str, str] | None:
    """(source's NVRAM path, the clone's) for a UEFI source, checked before anything is made: libvirt's
    own naming (NAME_VARS.fd beside the source's), on no other VM of the host. None without NVRAM."""
    node = ed.element.find("os/nvram")
    if node is None or not (node.text or "").strip():
        return None
    if node.get("type") not in (None, "file"):
        raise UsageError(f"{ed.name}'s NVRAM is a {node.get('type')} source: vpd copies a file only",
                         hint="clone it by hand (virt-clone --nvram)")
    source = node.text.strip()
    new = posixpath.join(posixpath.dirname(source), f"{new_name}_VARS.fd")
    users = [d.name() for d in conn.listAllDomains() if nvram_path(d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) == new]
    if users:
        raise UsageError(f"NVRAM file {new} on {host.name} belongs to VM {', '.join(users)}",
                         hint="clone under another name")
    return source, new


def _copy_nvram(conn: libvirt.virConnect, host: Host, ed: DomainEditor, nvram: tuple[str, str], new_name: str,
                undo: Undo) -> str:
    """The clone gets its own copy of the source's UEFI variables (its boot entries): one shared file
    would let each VM overwrite the other's. A source never started has none yet: libvirt then
    makes the clone's from the firmware's template at its first start, as for the source."""
    source, new = nvram
    ed.element.find("os/nvram").text = new
    if conn.getType() != "QEMU":  # the test driver keeps no NVRAM file
        return new
    files = HostFiles(host)
    if files.exists(source):
        ops.plan("nvram", new, host.name, owner=new_name)  # journaled first: recovery removes an orphan
        files.copy_file(source, new)
        undo.push(lambda: files.remove_file(new), f"remove {new}")
    return new


def _give_seed(conn: libvirt.virConnect, host: Host, ed: DomainEditor, name: str, seed_name: str,
               custom: Customisation, result: Cloned, undo: Undo) -> None:
    """Upload the clone's own seed next to its first disk and attach it read-only: a seed CD-ROM
    the source had (its own, stale instance-id) is repointed, else a SATA CD-ROM is added."""
    pool = conn.storageVolLookupByPath(result.disks[0]).storagePoolLookupByVolume()
    events.emit("vm.clone", f"cloud-init seed {seed_name}", 0, 1, "seeds")
    ops.plan("volume", seed_name, host.name, pool=pool.name(), owner=name)
    path = upload_seed(pool, seed_name, build_iso(custom.seed(name, result.macs[0] if result.macs else None)), undo)
    old = [d for d in ed.disks(device="cdrom") if (d.source_file or "").endswith("-cidata.iso")]
    if old:
        old[0].repoint(path, fmt="raw")
    else:
        used = {d.target for d in ed.disks()}
        index = next(i for i in range(26) if disk_target("sata", i).dev not in used)
        ed.add_device(cdrom_disk(path, bus="sata", index=index))
    if custom.ip is not None:
        ed.set_metadata(ADDRESS_NS, "vpd", address_element(custom.ip))
    result.seed, result.hostname = path, custom.hostname
    result.ip = custom.ip.with_prefixlen if custom.ip is not None else None


def check_room(conn: libvirt.virConnect, host: Host, source: str, copies: int, pool_name: str | None) -> None:
    """Every full copy of every disk counted against its pool's free space before the first is made,
    each at its capacity, as `vm create` counts a new disk (qemu-img would otherwise stop with ENOSPC
    half-way, or a thin copy would land in a pool that can never hold it)."""
    try:
        src = conn.lookupByName(check_name(source, "VM name"))
    except libvirt.libvirtError:
        raise UsageError(f"no VM named {source!r} on {host.name}") from None
    room = PoolRoom(host.name)
    for path in disk_files(src.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), device="disk"):
        src_vol = volume_by_path(conn, path)
        if src_vol is None:
            continue  # clone_vm refuses it with its own message
        pool = conn.storagePoolLookupByName(pool_name) if pool_name else src_vol.storagePoolLookupByVolume()
        for _ in range(copies):
            room.take(pool, src_vol.info()[1], f"a copy of {PurePosixPath(path).name}",
                      hint="free space in the pool, --pool another pool, or --linked (an overlay)")


def clone_vms(conn: libvirt.virConnect, host: Host, source: str, names: list[str], pool_name: str | None = None,
              allow_running: bool = False, linked: bool = False, mac: str | None = None,
              taken_macs: set[str] | None = None,
              customs: dict[str, Customisation] | None = None) -> list[Cloned]:
    """Clone `source` once per name: all or nothing, so a failure part way leaves no partial batch."""
    if mac is not None and len(names) > 1:
        raise UsageError("--mac names one NIC of one VM: it cannot go with --count")
    taken = [n for n in names if domain_exists(conn, n)]
    if taken:
        raise UsageError(f"VMs already exist on {host.name}: {', '.join(taken)}")
    if not linked:
        check_room(conn, host, source, len(names), pool_name)
    done: list[Cloned] = []
    try:
        for name in names:
            done.append(clone_vm(conn, host, source, name, pool_name, allow_running, linked, mac, taken_macs,
                                 custom=(customs or {}).get(name)))
            taken_macs = (taken_macs or set()) | set(done[-1].macs)
        return done
    except BaseException:
        for cloned in done:
            try:
                dom = conn.lookupByName(cloned.name)
                dom.undefineFlags(undefine_flags(dom))  # its NVRAM copy too, where it has one
                for path in [*cloned.disks, *([cloned.seed] if cloned.seed else [])]:
                    conn.storageVolLookupByPath(path).delete(0)
            except libvirt.libvirtError:
                pass
        raise
