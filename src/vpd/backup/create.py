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
from ..core.undo import Undo
from ..vm.agent import GuestAgent, frozen
from ..vm.backupjob import run_push_backup
from ..vm.inventory import volume_by_path
from ..xml.backup import checkpoint as checkpoint_xml
from ..xml.backup import push_backup
from ..xml.domain import Domain
from . import catalog
from . import manifest as mf


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


@dataclass
class BackupPlan:
    """What a backup will make, decided before anything is: its directory and (running qcow2
    guests) the checkpoint that starts the next incremental's dirty bitmap."""

    name: str
    root: str
    disks: list[DiskToCopy]
    running: bool
    parent: mf.Manifest | None
    backup_id: str
    where: str
    checkpoint: str | None
    quiesce: bool = False


def plan_backup(conn: libvirt.virConnect, host: Host, dom: libvirt.virDomain, root: str, incremental: bool = False,
                files: HostFiles | None = None, quiesce: bool = False) -> BackupPlan:
    """Every check, nothing made: the disks, the parent of an incremental, a fresh backup id,
    and with `quiesce` that the guest agent answers (a stopped guest needs no freeze)."""
    name = dom.name()
    root = require_host_dir(root)
    files = files or HostFiles(host)
    disks = disks_to_copy(conn, dom)
    running = bool(dom.isActive())
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
    if quiesce and running:
        GuestAgent(dom).sync()  # no agent: a clear error now, before anything is made
    with_bitmaps = running and all(d.format == "qcow2" for d in disks)
    return BackupPlan(name, root, disks, running, parent, backup_id, mf.backup_dir(root, name, backup_id),
                      f"vpd-{backup_id}" if with_bitmaps else None, quiesce=quiesce and running)


def run_backup(host: Host, dom: libvirt.virDomain, plan: BackupPlan, undo: Undo,
               files: HostFiles | None = None) -> mf.Manifest:
    """Make the backup `plan` describes. Each thing made gets its undo step at once (the
    directory, then the checkpoint as soon as libvirt has it), so a failure or Ctrl-C leaves
    no directory and no checkpoint behind; the manifest is written last."""
    files = files or HostFiles(host)
    where, disks = plan.where, plan.disks
    began = time.monotonic()
    files.make_dir(where)
    undo.push(lambda: files.remove_tree(where), f"remove {where} on {host.name}")
    copies = {d.target: posixpath.join(where, f"{d.target}.qcow2") for d in disks}
    if plan.running:
        _backup_running(host, dom, disks, copies, plan.checkpoint, plan.parent, undo, plan.quiesce)
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
        id=plan.backup_id, vm=plan.name, uuid=dom.UUIDString(), host=host.name,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        kind="incremental" if plan.parent else "full", method="backup-api" if plan.running else "offline-copy",
        guest_state=_state_name(dom), checkpoint=plan.checkpoint, parent=plan.parent.id if plan.parent else None,
        domain_sha256=sums[posixpath.join(where, mf.DOMAIN_XML)], disks=disk_copies,
        seconds=round(time.monotonic() - began, 2), quiesced=plan.quiesce)
    files.write(posixpath.join(where, mf.MANIFEST), manifest.to_json())
    return manifest


def _state_name(dom: libvirt.virDomain) -> str:
    return {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
            libvirt.VIR_DOMAIN_SHUTOFF: "shutoff"}.get(dom.state()[0], "other")


def _backup_running(host: Host, dom: libvirt.virDomain, disks: list[DiskToCopy], copies: dict[str, str],
                    cp_name: str | None, parent: mf.Manifest | None, undo: Undo, quiesce: bool = False) -> None:
    """Run one push-mode backup job to the end, making checkpoint `cp_name` (None for raw disks);
    with `quiesce`, the guest's filesystems are frozen through its agent while the job begins."""
    backup = push_backup(copies, incremental=parent.checkpoint if parent else None).to_xml_string()
    cp = checkpoint_xml(cp_name, [d.target for d in disks], "vpd backup").to_xml_string() if cp_name else None
    # libvirt makes the checkpoint when the job begins: a job that then fails must not leave it.
    run_push_backup(host, dom, backup, cp, "backup", f"backup {dom.name()}", on_begun=(
        (lambda: undo.push(lambda: _drop_checkpoint(dom, cp_name), f"delete checkpoint {cp_name}"))
        if cp_name else None), around_begin=(lambda: frozen(dom, host.name)) if quiesce else None)


def _drop_checkpoint(dom: libvirt.virDomain, name: str) -> None:
    """Delete the checkpoint; gone already is fine. Any other error (libvirtd died) fails the undo
    step, so the operation is left unsettled for recovery instead of passing for clean."""
    try:
        cp = dom.checkpointLookupByName(name, 0)
        flags = 0 if dom.isActive() else libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY
        cp.delete(flags)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT:
            raise


def _copy_stopped(files: HostFiles, disks: list[DiskToCopy], copies: dict[str, str]) -> None:
    """A stopped guest cannot change its disks: a plain copy (its backing chain flattened) is consistent."""
    for i, d in enumerate(disks):
        events.emit("backup", f"copying {d.target}", i, len(disks), "disks")
        files.qemu_img(["convert", "-f", d.format, "-O", "qcow2", "--", d.source, copies[d.target]])
    events.emit("backup", "copied", len(disks), len(disks), "disks")
