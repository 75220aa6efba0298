"""`vpd backup VM --to DIR [--incremental]`.

A running (or paused) guest is backed up by libvirt's backup API in push mode: QEMU copies
a point-in-time image of each disk while the guest keeps running, and a checkpoint made at
the same instant starts a dirty bitmap, so the next `--incremental` copies only what was
written since. A stopped guest's disks are copied by qemu-img (they cannot change meanwhile).
The manifest is written last; a failed or interrupted backup leaves no directory, no job
and no checkpoint behind."""
from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass

import libvirt

from ..connect.hostfiles import HostFiles, require_host_dir
from ..connect.inventory import Host
from ..core import events
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from ..vm.inventory import volume_by_path
from ..xml.backup import checkpoint as checkpoint_xml
from ..xml.backup import push_backup
from ..xml.domain import Domain
from . import catalog
from . import manifest as mf

JOB_POLL_S = 0.1


@dataclass
class DiskToCopy:
    target: str
    source: str
    format: str
    pool: str | None


def disks_to_copy(conn: libvirt.virConnect, dom: libvirt.virDomain) -> list[DiskToCopy]:
    """Every file-backed disk; anything else (network, block, cdrom) is refused by name."""
    domain = Domain.from_xml(dom.XMLDesc(0))
    out = []
    for disk in domain.disks:
        if disk.device != "disk":
            continue
        path = disk.source.file if disk.source else None
        if disk.type != "file" or not path:
            raise VpdError(f"{dom.name()}: disk {disk.target.dev} is not a file; vpd backs up file disks only")
        vol = volume_by_path(conn, path)
        pool = vol.storagePoolLookupByVolume().name() if vol is not None else None
        fmt = (disk.driver.type if disk.driver else None) or "raw"
        out.append(DiskToCopy(disk.target.dev, path, fmt, pool))
    if not out:
        raise UsageError(f"{dom.name()} has no disk to back up")
    return out


def backup_vm(conn: libvirt.virConnect, host: Host, name: str, root: str, incremental: bool = False,
              files: HostFiles | None = None) -> mf.Manifest:
    check_name(name, "VM name")
    root = require_host_dir(root)
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        raise UsageError(f"no VM named {name!r} on {host.name}") from None
    files = files or HostFiles(host)
    disks = disks_to_copy(conn, dom)
    running = dom.isActive()
    vm_dir = posixpath.join(root, name)
    previous = catalog.manifests_in(files, vm_dir)
    parent = None
    if incremental:
        if not running:
            raise UsageError(f"{name} is not running: incremental backups use libvirt's backup API, which needs "
                             "a running QEMU", hint="start it, or make a full backup (drop --incremental)")
        checkpoints = {c.getName() for c in dom.listAllCheckpoints(0)}
        parent = mf.latest_with_checkpoint(list(previous.values()), dom.UUIDString(), checkpoints)
        if parent is None:
            raise UsageError(f"no earlier backup of {name} in {root} whose checkpoint libvirt still has",
                             hint="make a full backup first (without --incremental)")
    if running:
        raw = [d.target for d in disks if d.format != "qcow2"]
        if raw:
            # Dirty bitmaps live inside qcow2 images; a raw disk can only get a full copy, no checkpoint.
            if incremental:
                raise UsageError(f"{name}: disk(s) {', '.join(raw)} are not qcow2, so they cannot track changes")
    backup_id = mf.new_backup_id()
    while backup_id in previous or files.exists(mf.backup_dir(root, name, backup_id)):
        time.sleep(0.2)  # ids are per second: wait for a fresh one rather than mix two backups
        backup_id = mf.new_backup_id()
    where = mf.backup_dir(root, name, backup_id)
    began = time.monotonic()
    files.make_dir(where)
    made_checkpoint = None
    try:
        copies = {d.target: posixpath.join(where, f"{d.target}.qcow2") for d in disks}
        if running:
            made_checkpoint = _backup_running(dom, disks, copies, backup_id, parent)
        else:
            _copy_stopped(files, disks, copies)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode()
        files.write(posixpath.join(where, mf.DOMAIN_XML), xml, mode="0600")
        events.emit("backup", "checksums", None, None)
        sums = files.sha256([*copies.values(), posixpath.join(where, mf.DOMAIN_XML)])
        disk_copies = []
        for d in disks:
            info = files.image_info(copies[d.target])
            copied = files.data_bytes(copies[d.target])
            disk_copies.append(mf.DiskCopy(
                target=d.target, file=posixpath.basename(copies[d.target]), source=d.source, pool=d.pool,
                virtual_size=info["virtual-size"], bytes=copied, sha256=sums[copies[d.target]]))
        manifest = mf.Manifest(
            id=backup_id, vm=name, uuid=dom.UUIDString(), host=host.name,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            kind="incremental" if parent else "full", method="backup-api" if running else "offline-copy",
            guest_state=_state_name(dom), checkpoint=made_checkpoint, parent=parent.id if parent else None,
            domain_sha256=sums[posixpath.join(where, mf.DOMAIN_XML)], disks=disk_copies,
            seconds=round(time.monotonic() - began, 2))
        files.write(posixpath.join(where, mf.MANIFEST), manifest.to_json())
        return manifest
    except BaseException:
        if made_checkpoint:
            _drop_checkpoint(dom, made_checkpoint)
        files.remove_tree(where)
        raise


def _state_name(dom: libvirt.virDomain) -> str:
    return {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
            libvirt.VIR_DOMAIN_SHUTOFF: "shutoff"}.get(dom.state()[0], "other")


def _backup_running(dom: libvirt.virDomain, disks: list[DiskToCopy], copies: dict[str, str], backup_id: str,
                    parent: mf.Manifest | None) -> str | None:
    """Run one push-mode backup job to the end; returns the checkpoint it made (None for raw disks)."""
    with_bitmaps = all(d.format == "qcow2" for d in disks)
    cp_name = f"vpd-{backup_id}" if with_bitmaps else None
    backup = push_backup(copies, incremental=parent.checkpoint if parent else None).to_xml_string()
    cp = checkpoint_xml(cp_name, [d.target for d in disks], "vpd backup").to_xml_string() if cp_name else None
    try:
        dom.backupBegin(backup, cp, 0)
    except libvirt.libvirtError as exc:
        raise VpdError(f"{dom.name()}: libvirt refused the backup: {exc.get_error_message()}") from None
    try:
        _wait_for_job(dom)
    except BaseException:
        try:
            dom.abortJob()
        except libvirt.libvirtError:
            pass
        raise
    return cp_name


def _wait_for_job(dom: libvirt.virDomain) -> None:
    label = f"backup {dom.name()}"
    while True:
        stats = dom.jobStats(0)
        if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
            break
        total = stats.get("disk_total") or stats.get("data_total")
        done = stats.get("disk_processed") or stats.get("data_processed")
        events.emit("backup", label, done, total, "bytes")
        time.sleep(JOB_POLL_S)
    final = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    if final.get("type") != libvirt.VIR_DOMAIN_JOB_COMPLETED:
        raise VpdError(f"{label} failed: {final.get('errmsg') or 'libvirt reports the job did not complete'}")


def _drop_checkpoint(dom: libvirt.virDomain, name: str) -> None:
    try:
        cp = dom.checkpointLookupByName(name, 0)
    except libvirt.libvirtError:
        return
    flags = 0 if dom.isActive() else libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY
    try:
        cp.delete(flags)
    except libvirt.libvirtError:
        pass


def _copy_stopped(files: HostFiles, disks: list[DiskToCopy], copies: dict[str, str]) -> None:
    """A stopped guest cannot change its disks: a plain copy (its backing chain flattened) is consistent."""
    for i, d in enumerate(disks):
        events.emit("backup", f"copying {d.target}", i, len(disks), "disks")
        files.qemu_img(["convert", "-f", d.format, "-O", "qcow2", "--", d.source, copies[d.target]])
    events.emit("backup", "copied", len(disks), len(disks), "disks")
