"""Volumes: create (raw/qcow2, copy-on-write overlays), list (every host at once), info, clone,
resize, delete, and upload/download through libvirt streams with progress events.

Uploads keep formats right: libvirt's vol-upload copies bytes as they are (a raw file uploaded
into a qcow2 volume leaves raw bytes where qcow2 is expected; docs/lab.md, "Uploads write bytes
as they are"), so vpd reads the file's real format with `qemu-img info` and converts it to the
volume's format first when they differ, or when the file is an overlay that needs its backing
chain flattened.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar, cast

import libvirt

from ..connect.inventory import Host
from ..connect.libvirt_conn import Connections, is_not_found, lookup, refresh_pool
from ..connect.ssh import exec_step
from ..core import events, steps
from ..core.errors import NotFound, UsageError, VpdError
from ..core.names import check_existing_name, check_name, parse_size
from ..xml.pool import StoragePool
from ..xml.volume import ImageFormat, StorageVolume, volume
from .pools import find_pool, rescan
from .room import PoolRoom
from .streams import download_volume, upload_volume

FORMATS = ("raw", "qcow2")


def _format(text: str | None) -> ImageFormat:
    """The format vpd makes a volume in: qcow2 when asked or copied from, else raw (FORMATS)."""
    return "qcow2" if text == "qcow2" else "raw"
CHUNK = 1024 * 1024
# Pools whose volumes are made elsewhere (the iSCSI target's LUNs): libvirt only lists them.
NO_CREATE_POOLS = ("iscsi", "iscsi-direct", "scsi", "mpath")
TYPES = {libvirt.VIR_STORAGE_VOL_FILE: "file", libvirt.VIR_STORAGE_VOL_BLOCK: "block",
         libvirt.VIR_STORAGE_VOL_DIR: "dir", libvirt.VIR_STORAGE_VOL_NETWORK: "network",
         libvirt.VIR_STORAGE_VOL_NETDIR: "netdir", libvirt.VIR_STORAGE_VOL_PLOOP: "ploop"}
def parse_vol_ref(text: str) -> tuple[str, str]:
    """'POOL/VOL' -> (pool, volume)."""
    pool, sep, vol = (text or "").partition("/")
    if not sep:
        raise UsageError(f"invalid volume reference {text!r}", hint="use POOL/VOLUME, e.g. default/disk1.qcow2")
    return check_name(pool, "pool name"), check_existing_name(vol)


def find_volume(host: Host, pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol:
    check_existing_name(name)
    if not pool.isActive():
        raise UsageError(f"pool {pool.name()} on {host.name} is not running",
                         hint=f"`vpd pool start {pool.name()} --host {host.name}`")
    found = existing_volume(host, pool, name)
    if found is None:
        raise NotFound(f"no volume {name!r} in pool {pool.name()} on {host.name}",
                       hint=f"`vpd vol list {pool.name()} --host {host.name}`")
    return found


def existing_volume(host: Host, pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
    """The volume `name` of a running pool, or None when there is none (other libvirt errors are failures).
    A miss re-scans a pool that is cheap to re-read first: another host may have just written
    the volume into a shared directory."""
    for attempt in range(2):
        try:
            return lookup(host, lambda: pool.storageVolLookupByName(name), "")
        except NotFound:
            if attempt or rescan(host, pool) is not None:
                return None
    return None


@dataclass
class VolumeInfo:
    host: str
    pool: str
    name: str
    type: str
    format: str | None
    capacity: int
    allocation: int
    path: str | None
    backing: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def describe(host: Host, pool_name: str, vol: libvirt.virStorageVol) -> VolumeInfo:
    """One XMLDesc call tells everything (info() would be a second round trip for less)."""
    model = StorageVolume.from_xml(vol.XMLDesc(0))
    target = model.target
    return VolumeInfo(
        host.name, pool_name, model.name, model.type or "file",
        target.format.type if target and target.format else None,
        model.capacity.in_bytes, model.allocation.in_bytes if model.allocation else 0,
        target.path if target else None,
        model.backing_store.path if model.backing_store else None)


@dataclass
class HostVolumes:
    host: str
    volumes: list[VolumeInfo] = field(default_factory=list)
    error: str | None = None
    stale: list[str] = field(default_factory=list)  # pools whose list may be out of date, and why


T = TypeVar("T")


def present(vols: list[libvirt.virStorageVol], fn: Callable[[libvirt.virStorageVol], T]) -> list[T]:
    """fn(vol) for each volume still there: another process (a parallel `vol delete`) may remove
    a volume between the listing and the look at it; libvirt's "no such volume" then only
    means it is gone, and a scan goes on without it."""
    out = []
    for vol in vols:
        try:
            out.append(fn(vol))
        except libvirt.libvirtError as exc:
            if not is_not_found(exc):
                raise
    return out


def list_volumes(conns: Connections, hosts: list[Host], pool_name: str | None = None) -> list[HostVolumes]:
    """Volumes of every running pool (or of `pool_name`) of every host, hosts in parallel.

    Per host: one listAllStoragePools, one listAllVolumes per pool (not virsh's vol-list +
    vol-info per volume), then one XMLDesc per volume."""
    if pool_name is not None:
        check_name(pool_name, "pool name")

    def volumes_of(host: Host, conn: libvirt.virConnect) -> HostVolumes:
        out, stale = HostVolumes(host.name), []
        for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
            name = pool.name()
            if pool_name is not None and name != pool_name:
                continue
            note = rescan(host, pool)
            if note:
                stale.append(note)
            out.volumes.extend(present(pool.listAllVolumes(0), functools.partial(describe, host, name)))
        out.volumes.sort(key=lambda v: (v.pool, v.name))
        out.stale = stale
        return out

    def one(host: Host) -> HostVolumes:
        try:
            return conns.call(host, lambda c: volumes_of(host, c))
        except VpdError as exc:
            return HostVolumes(host.name, [], exc.message)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as executor:
        return list(executor.map(one, hosts))


# --- who uses a volume --------------------------------------------------------------

def disk_users(conn: libvirt.virConnect, running_only: bool = False) -> dict[str, list[str]]:
    """Disk reference ('/path' or 'pool/volume') -> names of the VMs whose definition uses it."""
    from ..xml.domain import Domain  # here: listing volumes need not build the domain models

    users: dict[str, list[str]] = {}
    for dom in conn.listAllDomains(0):
        active = dom.isActive()
        if running_only and not active:
            continue
        xmls = [dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)] if dom.isPersistent() else []
        if active:
            xmls.append(dom.XMLDesc(0))
        refs = {ref for xml in xmls for ref in Domain.from_xml(xml).disk_paths()}
        for ref in refs:
            users.setdefault(ref, []).append(dom.name())
    return users


def volume_users(conn: libvirt.virConnect, pool_name: str, vol_name: str, path: str | None,
                 running_only: bool = False) -> list[str]:
    users = disk_users(conn, running_only)
    return sorted(set(users.get(f"{pool_name}/{vol_name}", []) + (users.get(path, []) if path else [])))


def pool_users(conn: libvirt.virConnect, pool: libvirt.virStoragePool, running_only: bool = False) -> list[str]:
    users = disk_users(conn, running_only)
    name = pool.name()
    found = {vm for ref, vms in users.items() if ref.startswith(name + "/") for vm in vms}
    if pool.isActive():
        for path in present(pool.listAllVolumes(0), lambda v: v.path()):
            found.update(users.get(path, []))
    return sorted(found)


# --- creating, cloning, resizing, deleting ----------------------------------------------

def _require_volume_pool(host: Host, pool: libvirt.virStoragePool) -> StoragePool:
    model = StoragePool.from_xml(pool.XMLDesc(0))
    if model.type in NO_CREATE_POOLS:
        raise UsageError(f"pool {model.name} is a {model.type} pool: its volumes are the target's LUNs",
                         hint="export more storage on the target (`vpd iscsi target create`) instead")
    if not pool.isActive():
        raise UsageError(f"pool {model.name} on {host.name} is not running",
                         hint=f"`vpd pool start {model.name} --host {host.name}`")
    return model


def _same_or_clash(host: Host, pool_name: str, existing: VolumeInfo, capacity: int, fmt: str,
                   backing: str | None) -> dict:
    same = existing.capacity == capacity and existing.format == fmt and existing.backing == backing
    if not same:
        raise UsageError(f"volume {existing.name} already exists in pool {pool_name} on {host.name} "
                         f"with other settings ({existing.format}, {existing.capacity} bytes"
                         + (f", backing {existing.backing}" if existing.backing else "") + ")",
                         hint="delete it first, or pick another name")
    return {**existing.to_dict(), "changed": False}


def create_volume(host: Host, conn: libvirt.virConnect, pool_name: str, name: str, size: str | int | None,
                  fmt: str = "qcow2", backing: str | None = None, plan: Callable[[], None] | None = None) -> dict:
    """Create a volume; the same one again is a no-op. `plan` is called once the volume is known
    to be new, just before it is made (an Operation journals it there)."""
    check_name(name, "volume name")
    if fmt not in FORMATS:
        raise UsageError(f"unknown volume format {fmt!r}", hint="use raw or qcow2")
    capacity = parse_size(size, "volume size") if size is not None else None
    pool = find_pool(conn, host, pool_name)
    _require_volume_pool(host, pool)
    backing_path = backing_fmt = None
    if backing is not None:
        if fmt != "qcow2":
            raise UsageError("a volume with --backing must be qcow2 (raw images cannot be overlays)")
        base = describe(host, pool_name, find_volume(host, pool, backing))
        backing_path, backing_fmt = base.path, base.format or "raw"
        if capacity is None:
            capacity = base.capacity
        elif capacity < base.capacity:
            raise UsageError(f"an overlay cannot be smaller than its backing volume ({base.capacity} bytes)")
    if capacity is None:
        raise UsageError("--size is needed (without --backing)")
    existing = existing_volume(host, pool, name)
    if existing is not None:
        return _same_or_clash(host, pool_name, describe(host, pool_name, existing), capacity, fmt, backing_path)
    if backing is None:
        PoolRoom(host.name).take(pool, capacity, f"volume {name}", hint="use a smaller --size or another pool")
    # backing_fmt is what libvirt itself reported for the backing volume: one of its formats.
    xml = volume(name, capacity, _format(fmt), backing_path, backing_fmt=cast(ImageFormat, backing_fmt or "qcow2"))
    if plan is not None:
        plan()
    vol = pool.createXML(xml.to_xml_string(), 0)
    return {**describe(host, pool_name, vol).to_dict(), "changed": True}


def clone_volume(host: Host, conn: libvirt.virConnect, pool_name: str, source: str, new_name: str,
                 target_pool: str | None = None, plan: Callable[[], None] | None = None) -> dict:
    """Full copy of a volume (same pool or `target_pool`); `plan` as for create_volume."""
    check_name(new_name, "volume name")
    pool = find_pool(conn, host, pool_name)
    src = find_volume(host, pool, source)
    src_info = describe(host, pool_name, src)
    dest_pool = find_pool(conn, host, target_pool) if target_pool else pool
    _require_volume_pool(host, dest_pool)
    fmt = _format(src_info.format)
    existing = existing_volume(host, dest_pool, new_name)
    if existing is not None:
        return _same_or_clash(host, dest_pool.name(), describe(host, dest_pool.name(), existing),
                              src_info.capacity, fmt, None)
    # At the size the copy can grow to, as vm create counts a new disk.
    PoolRoom(host.name).take(dest_pool, src_info.capacity, f"the copy {new_name}")
    events.emit("vol.clone", f"copying {source} to {new_name}")
    xml = volume(new_name, src_info.capacity, fmt)
    if plan is not None:
        plan()
    vol = dest_pool.createXMLFrom(xml.to_xml_string(), src, 0)
    return {**describe(host, dest_pool.name(), vol).to_dict(), "changed": True, "source": source}


def resize_volume(host: Host, conn: libvirt.virConnect, pool_name: str, name: str, size: str | int,
                  shrink: bool = False) -> dict:
    pool = find_pool(conn, host, pool_name)
    vol = find_volume(host, pool, name)
    info = describe(host, pool_name, vol)
    capacity = parse_size(size, "new size")
    if capacity == info.capacity:
        return {**info.to_dict(), "changed": False}
    if capacity < info.capacity and not shrink:
        raise UsageError(f"{capacity} bytes is smaller than {name} ({info.capacity} bytes): data past it would be lost",
                         hint="add --shrink if that is what you want")
    running = volume_users(conn, pool_name, name, info.path, running_only=True)
    if running:
        raise UsageError(f"volume {name} is in use by running VMs: {', '.join(running)}",
                         hint="stop them first (a running guest must be resized with blockresize)")
    _, _, _, available = pool.info()
    if capacity - info.capacity > available and info.format == "raw":
        raise UsageError(f"pool {pool_name} has {available} bytes free; "
                         f"growing by {capacity - info.capacity} does not fit")
    flags = libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK if capacity < info.capacity else 0
    vol.resize(capacity, flags)
    return {**describe(host, pool_name, vol).to_dict(), "changed": True, "previous_capacity": info.capacity}


def delete_volume(host: Host, conn: libvirt.virConnect, pool_name: str, name: str) -> dict:
    pool = find_pool(conn, host, pool_name)
    _require_volume_pool(host, pool)
    vol = find_volume(host, pool, name)
    info = describe(host, pool_name, vol)
    users = volume_users(conn, pool_name, name, info.path)
    if users:
        raise UsageError(f"volume {name} is a disk of VMs: {', '.join(users)}",
                         hint="detach it first (`vpd vm disk detach`)")
    # Volumes a parallel deleter removes meanwhile are skipped (`present`), not an error.
    others = [v for v in pool.listAllVolumes(0) if v.name() != name]
    overlays = [v.name for v in present(others, lambda v: describe(host, pool_name, v)) if v.backing == info.path]
    if overlays:
        raise UsageError(f"volume {name} is the backing image of {', '.join(overlays)}", hint="delete those first")
    vol.delete(0)
    return {"host": host.name, "pool": pool_name, "volume": name, "deleted": True}


# --- upload and download --------------------------------------------------------------

@dataclass(frozen=True)
class ImageFacts:
    format: str
    virtual_size: int
    backing: str | None


def image_facts(path: str) -> ImageFacts:
    """`qemu-img info` of a local file: its real format, size the guest sees, backing file."""
    try:
        proc = subprocess.run(["qemu-img", "info", "--output=json", "--", path], capture_output=True, text=True,
                              timeout=60)
    except FileNotFoundError:
        raise VpdError("qemu-img is not installed", hint="run scripts/setup.sh") from None
    if proc.returncode != 0:
        raise UsageError(f"{path} is not a readable disk image: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    backing = data.get("full-backing-filename") or data.get("backing-filename")
    return ImageFacts(data["format"], int(data["virtual-size"]), backing)


def _qemu_img(argv: list[str]) -> None:
    proc = subprocess.run(["qemu-img", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise VpdError(f"qemu-img {argv[0]} failed: {proc.stderr.strip()}")
    if steps.active():  # run here, on vpd's machine (for --explain)
        steps.record(exec_step("local", None, ["qemu-img", *argv], returncode=0))


def upload_plan(facts: ImageFacts, vol_format: str, capacity: int) -> str:
    """'as-is' when the file's bytes are already what the volume must hold, else 'convert' (pure)."""
    if facts.virtual_size > capacity:
        raise UsageError(f"the image holds {facts.virtual_size} bytes, the volume only {capacity}",
                         hint="grow the volume first (`vpd vol resize`)")
    if facts.format == vol_format and facts.backing is None:
        return "as-is"
    return "convert"


def _send_file(vol: libvirt.virStorageVol, path: str, operation: str) -> int:
    length = os.path.getsize(path)
    upload_volume(vol, Path(path), lambda sent: events.emit(operation, f"{sent // CHUNK} MiB", sent, length, "bytes"))
    return length


def upload(host: Host, conn: libvirt.virConnect, pool_name: str, name: str, file: str) -> dict:
    """Write a local image into the volume, converted to the volume's format when needed."""
    if not Path(file).is_file():
        raise UsageError(f"{file} is not a file")
    pool = find_pool(conn, host, pool_name)
    vol = find_volume(host, pool, name)
    info = describe(host, pool_name, vol)
    vol_format = info.format if info.format in FORMATS else "raw"
    facts = image_facts(file)
    running = volume_users(conn, pool_name, name, info.path, running_only=True)
    if running:
        raise UsageError(f"volume {name} is in use by running VMs: {', '.join(running)}", hint="stop them first")
    plan = upload_plan(facts, vol_format, info.capacity)
    with tempfile.TemporaryDirectory(prefix="vpd-upload-") as work:
        source = file
        if plan == "convert":
            events.emit("vol.upload", f"converting {facts.format} to {vol_format}")
            source = str(Path(work) / f"image.{vol_format}")
            _qemu_img(["convert", "-f", facts.format, "-O", vol_format, "--", file, source])
        sent = _send_file(vol, source, "vol.upload")
    refresh_pool(pool)
    vol = pool.storageVolLookupByName(name)
    after = describe(host, pool_name, vol)
    if vol_format == "qcow2" and after.capacity < info.capacity:
        vol.resize(info.capacity, 0)  # a smaller qcow2 image replaced the volume's header: keep its size
        after = describe(host, pool_name, vol)
    return {**after.to_dict(), "file": file, "file_format": facts.format, "converted": plan == "convert",
            "bytes_sent": sent}


def download(host: Host, conn: libvirt.virConnect, pool_name: str, name: str, file: str,
             fmt: str | None = None) -> dict:
    """Copy the volume into a local file; in `fmt` when given (converted locally), else as it is."""
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint="use raw or qcow2")
    target = Path(file)
    if target.exists():
        raise UsageError(f"{file} exists; vpd does not overwrite files", hint="remove it or pick another name")
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent} is not a directory")
    pool = find_pool(conn, host, pool_name)
    vol = find_volume(host, pool, name)
    info = describe(host, pool_name, vol)
    vol_format = info.format if info.format in FORMATS else "raw"
    total = info.allocation if vol_format == "qcow2" else info.capacity
    partial = target.with_name(f".{target.name}.vpd-partial")
    received = 0

    def progress(done: int) -> None:
        nonlocal received
        received = done
        events.emit("vol.download", f"{done // CHUNK} MiB", done, max(total, done), "bytes")

    download_volume(vol, partial, progress)  # removes the partial file itself if the stream fails
    try:
        converted = fmt is not None and fmt != vol_format
        if fmt is not None and converted:
            _qemu_img(["convert", "-f", vol_format, "-O", fmt, "--", str(partial), str(target)])
            partial.unlink()
        else:
            partial.rename(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {**info.to_dict(), "file": str(target), "file_format": fmt or vol_format, "converted": converted,
            "bytes_received": received}
