"""`vpd restore BACKUP [--as NEW] [--host H] [--pool P]`.

Checks first (the whole chain's checksums, the name, UUID and MACs, room in the pool), then
writes each disk into a new qcow2 volume, flattening full + incrementals with qemu-img, and
defines the VM. `--as` gives a new name, UUID and MACs so the copy runs beside the original.
Whatever fails, the volumes made and the definition are removed."""
from __future__ import annotations

import json
import posixpath
import time
from dataclasses import dataclass, field

import libvirt

from .. import ops
from ..connect.hostfiles import HostFiles
from ..connect.inventory import Host
from ..core import events
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from ..core.undo import Undo
from ..storage.room import PoolRoom
from ..vm.clone import macs_in_use
from ..vm.console import serial_log_path, start_fresh_log
from ..vm.inventory import domain_exists
from ..xml.edit import DomainEditor
from ..xml.volume import volume as volume_xml
from . import catalog
from . import manifest as mf


@dataclass
class Restored:
    host: str
    name: str
    uuid: str
    backup: str
    chain: list[str]
    disks: list[str] = field(default_factory=list)
    macs: list[str] = field(default_factory=list)
    seconds: float = 0.0


def chain_source(paths: list[str]) -> str:
    """One qemu-img source reading `paths` (full first) as a backing chain, without touching
    the backup files: an incremental copy has no backing file recorded in its header."""
    node: dict | None = None
    for path in paths:
        layer = {"driver": "qcow2", "file": {"driver": "file", "filename": path}}
        if node is not None:
            layer["backing"] = node
        node = layer
    return "json:" + json.dumps(node, separators=(",", ":"))


def _pick_pool(conn: libvirt.virConnect, host: Host, wanted: str | None, original: str | None) -> libvirt.virStoragePool:
    candidates = [wanted] if wanted else [p for p in (original, "default") if p]
    for name in candidates:
        check_name(name, "pool name")
        try:
            pool = conn.storagePoolLookupByName(name)
        except libvirt.libvirtError:
            continue
        if not pool.isActive():
            raise UsageError(f"pool {name} on {host.name} is not active", hint=f"vpd pool start {name}")
        return pool
    raise UsageError(f"no storage pool {' or '.join(map(repr, candidates))} on {host.name}",
                     hint="name one with --pool")


def restore_backup(conn: libvirt.virConnect, host: Host, backup_path: str, new_name: str | None = None,
                   pool_name: str | None = None, files: HostFiles | None = None,
                   taken_macs: set[str] | None = None) -> Restored:
    """`taken_macs`: MACs used on other hosts too, so the new MACs of `--as` clash nowhere."""
    began = time.monotonic()
    files = files or HostFiles(host)
    if new_name is not None:
        check_name(new_name, "VM name")
    events.emit("restore", "verifying checksums")
    verification = catalog.verify(files, backup_path)
    bad = [f.path for f in verification.files if not f.ok]
    if bad:
        raise UsageError(f"backup {verification.backup} is damaged: {', '.join(bad)} "
                         f"{'is' if len(bad) == 1 else 'are'} missing or changed since it was made; nothing restored",
                         hint=f"vpd backup verify {verification.backup} --host {host.name}")
    links = catalog.resolve_chain(files, backup_path)
    latest_dir, latest = links[-1]
    name = new_name or latest.vm
    if domain_exists(conn, name):
        raise UsageError(f"a VM named {name!r} already exists on {host.name}",
                         hint="restore beside it with --as NEW_NAME" if not new_name else None)
    ed = DomainEditor.from_xml(files.read(posixpath.join(latest_dir, mf.DOMAIN_XML)))
    if new_name is None:
        try:
            other = conn.lookupByUUIDString(latest.uuid)
            raise UsageError(f"{other.name()} on {host.name} has this backup's UUID {latest.uuid}",
                             hint="restore a copy with --as NEW_NAME (new name, UUID and MACs)")
        except libvirt.libvirtError:
            pass
    pool = _pick_pool(conn, host, pool_name, latest.disks[0].pool)
    need = sum(d.bytes for _, m in links for d in m.disks)
    PoolRoom(host.name).take(pool, need, f"the restore of {name}", hint="free space or pick another --pool")
    vol_names = [f"{name}.qcow2" if i == 0 else f"{name}-{i}.qcow2" for i in range(len(latest.disks))]
    clash = [v for v in vol_names if v in pool.listVolumes()]
    if clash:
        raise UsageError(f"volume {clash[0]} already exists in pool {pool.name()} on {host.name}")
    taken = macs_in_use(conn) | set(taken_macs or ())
    if new_name is None:
        reused = [m for m in ed.macs if m in taken]
        if reused:
            raise UsageError(f"MAC {reused[0]} is already in use on {host.name}",
                             hint="restore a copy with --as NEW_NAME (new MACs)")

    result = Restored(host.name, name, "", latest_dir, [m.id for _, m in links])
    with Undo() as undo:
        for i, (disk, vol_name) in enumerate(zip(latest.disks, vol_names, strict=True)):
            events.emit("restore", f"writing {disk.target} -> {vol_name}", i, len(latest.disks), "disks")
            ops.plan("volume", vol_name, host.name, pool=pool.name(), owner=name)
            vol = pool.createXML(volume_xml(vol_name, disk.virtual_size, fmt="qcow2").to_xml_string(), 0)
            undo.push(lambda vol=vol: vol.delete(0))
            layers = [posixpath.join(where, next(d.file for d in m.disks if d.target == disk.target))
                      for where, m in links]
            files.qemu_img(["convert", "-n", "-O", "qcow2", chain_source(layers), vol.path()])
            try:
                target = ed.disk(target=disk.target)
            except VpdError:
                raise VpdError(f"the backup's domain.xml has no disk {disk.target}") from None
            # Flattened into one qcow2: the backup's chain no longer describes it.
            target.repoint(vol.path(), fmt="qcow2")
            result.disks.append(vol.path())
        events.emit("restore", "defining", len(latest.disks), len(latest.disks), "disks")
        ed.name = name
        if new_name is not None:
            # vpd's metadata stays, as it always has here: a template's backup comes back a template.
            ed.reset_identity(name, taken_macs=taken, serial_log=serial_log_path(name), drop_vpd_metadata=False)
            start_fresh_log(conn, host, name, files)  # a new VM (without --as, the same one comes back)
        result.macs = ed.macs
        dom = conn.defineXML(ed.to_xml())
        result.uuid = dom.UUIDString()
    result.seconds = round(time.monotonic() - began, 2)
    return result
