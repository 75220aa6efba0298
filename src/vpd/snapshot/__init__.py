"""Snapshots of a VM: internal (inside its qcow2 disks, with the memory of a running guest)
and external disk-only (an overlay file per disk, merged back by blockcommit on delete).

Snapshots form a tree; external ones are kept a stack (only the newest is merged), and the
combinations libvirt 11.3 refuses (measured in the lab: docs/lab.md, "Snapshots") are
refused here first, with exit code 2 and nothing changed, instead of half-way through libvirt.
"""
from __future__ import annotations

import contextlib
import queue
import time
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

import libvirt

from ..connect.libvirt_conn import is_not_found, refresh_pool
from ..core.errors import NotFound, UsageError, VpdError
from ..core.names import check_name
from ..xml.domain import Domain
from ..xml.pool import StoragePool
from ..xml.snapshot import DomainSnapshot, SnapshotDisk, SnapshotMemory, SnapshotSource


@dataclass
class SnapshotInfo:
    name: str
    parent: str | None
    kind: str  # "internal" | "external"
    state: str  # the guest's state when taken; "disk-snapshot" for a running guest's disk-only one
    memory: bool  # the guest's memory was saved: revert resumes it where it was
    created: int | None
    current: bool
    depth: int  # distance from the root of the tree, for drawing it
    description: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _parsed(snap: libvirt.virDomainSnapshot) -> DomainSnapshot:
    return DomainSnapshot.from_xml(snap.getXMLDesc(0).encode())


def _lookup(dom: libvirt.virDomain, name: str) -> libvirt.virDomainSnapshot:
    """Only libvirt's "no such snapshot" means missing (exit 2); any other error (a dropped
    connection) goes on as libvirt's, for the caller's session.call to explain as a failure."""
    check_name(name, "snapshot name")
    try:
        return dom.snapshotLookupByName(name, 0)
    except libvirt.libvirtError as exc:
        if not is_not_found(exc):
            raise
        raise NotFound(f"{dom.name()} has no snapshot named {name!r}",
                       hint=f"`vpd snapshot list {dom.name()}` lists them") from None


def list_snapshots(dom: libvirt.virDomain) -> list[SnapshotInfo]:
    """Every snapshot, parents before children (depth-first, oldest sibling first)."""
    parsed = {s.getName(): (_parsed(s), bool(s.isCurrent(0))) for s in dom.listAllSnapshots(0)}
    children: dict[str | None, list[str]] = {}
    for name, (snap, _) in parsed.items():
        children.setdefault(snap.parent.name if snap.parent else None, []).append(name)
    out: list[SnapshotInfo] = []

    def walk(parent: str | None, depth: int) -> None:
        for name in sorted(children.get(parent, []), key=lambda n: (parsed[n][0].creation_time or 0, n)):
            snap, current = parsed[name]
            out.append(SnapshotInfo(name, parent, "external" if snap.external else "internal", snap.state or "",
                                    snap.has_memory, snap.creation_time, current, depth, snap.description))
            walk(name, depth + 1)

    walk(None, 0)
    return out


def _disks(dom: libvirt.virDomain):
    return [d for d in Domain.from_xml(dom.XMLDesc(0)).disks if d.device == "disk"]


def _snapshot_xml(dom: libvirt.virDomain, name: str, disk_only: bool, description: str | None) -> DomainSnapshot:
    disks = _disks(dom)
    if not disks:
        raise UsageError(f"{dom.name()} has no disk to snapshot")
    if disk_only:
        specs = []
        for disk in disks:
            path = disk.source.file if disk.source is not None else None
            if disk.type != "file" or not path:
                raise UsageError(f"{dom.name()}: disk {disk.target.dev} is not a file; "
                                 "vpd makes external overlays for file disks only")
            # The overlay sits next to the image it covers; VM, disk and snapshot names are all
            # check_name()-safe, so the file name stays inside that directory.
            overlay = PurePosixPath(path).parent / f"{dom.name()}.{disk.target.dev}.{name}.qcow2"
            specs.append(SnapshotDisk(name=disk.target.dev, snapshot="external",
                                      source=SnapshotSource(file=str(overlay))))
        return DomainSnapshot(name=name, description=description, memory=SnapshotMemory(snapshot="no"), disks=specs)
    for disk in disks:
        fmt = disk.driver.type if disk.driver is not None else None
        if fmt != "qcow2":
            raise UsageError(f"{dom.name()}: disk {disk.target.dev} is {fmt or 'raw'}, and internal snapshots "
                             "live inside qcow2 images", hint="use --disk-only for an external overlay snapshot")
    return DomainSnapshot(name=name, description=description,
                          memory=SnapshotMemory(snapshot="internal" if dom.isActive() else "no"),
                          disks=[SnapshotDisk(name=d.target.dev, snapshot="internal") for d in disks])


def snapshot_name(name: str | None = None) -> str:
    """The name a new snapshot gets: the one given (checked), else one made from the time."""
    return check_name(name or time.strftime("snap-%Y%m%d-%H%M%S"), "snapshot name")


def check_quiesce(dom: libvirt.virDomain) -> None:
    """A quiesced snapshot needs a running guest whose agent answers: said before anything is made."""
    from ..vm.agent import GuestAgent

    if not dom.isActive():
        raise UsageError(f"{dom.name()} is not running: --quiesce freezes a running guest's filesystems",
                         hint="a stopped VM's disks are consistent already: drop --quiesce")
    GuestAgent(dom).sync()


def create(dom: libvirt.virDomain, name: str | None = None, disk_only: bool = False,
           description: str | None = None, quiesce: bool = False) -> dict:
    """Take a snapshot; without a name one is made from the time. A running guest's internal
    snapshot includes its memory; --disk-only makes an external overlay per disk instead.
    `quiesce`: libvirt freezes the guest's filesystems through its agent around the overlays'
    instant (libvirt quiesces disk-only snapshots only, so it implies disk_only)."""
    name = snapshot_name(name)
    if quiesce:
        check_quiesce(dom)
    disk_only = disk_only or quiesce
    if name in dom.snapshotListNames(0):
        raise UsageError(f"{dom.name()} already has a snapshot named {name!r}")
    spec = _snapshot_xml(dom, name, disk_only, description)
    flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY if disk_only else 0
    if quiesce:
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
    if disk_only and dom.isActive():
        # ATOMIC: all disks or none (without --quiesce the filesystems are as after a power cut).
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
    began = time.monotonic()
    snap = dom.snapshotCreateXML(spec.to_xml_string(), flags)
    taken = _parsed(snap)
    return {"vm": dom.name(), "snapshot": name, "kind": "external" if taken.external else "internal",
            "memory": taken.has_memory, "state": taken.state, "quiesced": quiesce,
            "overlays": [d.source.file for d in taken.disks if d.source is not None and d.source.file],
            "seconds": round(time.monotonic() - began, 2)}


def revert(dom: libvirt.virDomain, name: str) -> dict:
    """Bring disks (and memory, when saved) back to the snapshot; the guest ends in its state then."""
    snap = _lookup(dom, name)
    parsed = _parsed(snap)
    began = time.monotonic()
    try:
        dom.revertToSnapshot(snap, 0)
    except libvirt.libvirtError as exc:
        raise VpdError(f"reverting {dom.name()} to {name!r} failed: {exc.get_error_message()}") from None
    result = {"vm": dom.name(), "snapshot": name, "memory": parsed.has_memory,
              "state": "running" if dom.isActive() else "shutoff", "seconds": round(time.monotonic() - began, 2)}
    if parsed.state == "disk-snapshot":
        # A running guest's disk-only snapshot has no memory to resume from, so libvirt leaves the
        # VM off (and writes into a fresh overlay, <image>.<timestamp>, from then on).
        result["note"] = "the snapshot holds disks only: the VM is off; start it to boot from them"
    return result


def _commit_active_layer(dom: libvirt.virDomain, disk: str, timeout: float) -> None:
    """Blockcommit a running guest's top overlay of `disk` into its backing image and pivot onto it.

    An active commit keeps mirroring the guest's writes until told to pivot, and pivoting early
    fails ("not ready for pivot yet"; cur == end in blockJobInfo is not enough), so wait for
    libvirt's READY event; it needs the event loop every vpd connection runs."""
    conn = dom.connect()
    statuses: queue.Queue[int] = queue.Queue()

    def on_job(_conn, _dom, job_disk, _type, status, _opaque) -> None:
        if job_disk == disk:
            statuses.put(status)

    callback = conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, on_job, None)
    try:
        dom.blockCommit(disk, None, None, 0, libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE)
        try:
            status = statuses.get(timeout=timeout)
        except queue.Empty:
            status = None
        if status != libvirt.VIR_DOMAIN_BLOCK_JOB_READY:
            with contextlib.suppress(libvirt.libvirtError):
                dom.blockJobAbort(disk, 0)
            raise VpdError(f"{dom.name()}: committing disk {disk} into its base "
                           + ("did not get ready" if status is None else f"ended with block job status {status}")
                           + f" within {timeout:g} s; the job was cancelled and the overlay kept")
        dom.blockJobAbort(disk, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
    finally:
        conn.domainEventDeregisterAny(callback)


def _merge_overlays(dom: libvirt.virDomain, parsed: DomainSnapshot, timeout: float) -> list[str]:
    """Commit each overlay of a running guest into its base, then drop the snapshot's record and
    the overlay files; returns the files removed."""
    removed = []
    for disk in parsed.disks:
        if disk.snapshot == "external" and disk.source is not None and disk.source.file:
            _commit_active_layer(dom, disk.name, timeout)
            removed.append(disk.source.file)
    dom.snapshotLookupByName(parsed.name, 0).delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
    for path in removed:
        _delete_file_volume(dom.connect(), path)
    return removed


def _delete_file_volume(conn: libvirt.virConnect, path: str) -> None:
    """Delete a file through the storage pool of its directory (so it works on remote hosts)."""
    directory = PurePosixPath(path).parent
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        target = StoragePool.from_xml(pool.XMLDesc(0).encode()).target
        if target is not None and target.path and PurePosixPath(target.path) == directory:
            refresh_pool(pool)  # the pool learns of files libvirt made outside it (the overlay)
            pool.storageVolLookupByName(PurePosixPath(path).name).delete(0)
            return
    raise VpdError(f"merged, but {path} is in no storage pool of this host, so vpd left the file there",
                   hint="delete it by hand; the VM no longer uses it")


def delete(dom: libvirt.virDomain, name: str, timeout: float = 300.0) -> dict:
    """Delete a snapshot. An external one is merged back (blockcommit) and its overlays removed;
    that and every refusal below keep the snapshots a stack: newest first."""
    snap = _lookup(dom, name)
    parsed = _parsed(snap)
    children = [c.getName() for c in snap.listAllChildren(0)]
    began = time.monotonic()
    if parsed.external:
        if children:
            raise UsageError(f"{dom.name()}: external snapshot {name!r} has newer snapshots ({', '.join(children)})",
                             hint="delete them first: an overlay is merged only from the top of the stack")
        if dom.isActive():
            in_use = {d.target.dev: d.source.file if d.source is not None else None for d in _disks(dom)}
            for disk in parsed.disks:
                if disk.snapshot == "external" and in_use.get(disk.name) != (disk.source.file if disk.source else None):
                    raise UsageError(f"{dom.name()}: disk {disk.name} no longer writes to {name!r}'s overlay "
                                     f"(it uses {in_use.get(disk.name)})",
                                     hint="only the overlay on top can be committed while the VM runs; "
                                          "stop the VM and delete it then")
            try:
                merged = _merge_overlays(dom, parsed, timeout)
            except libvirt.libvirtError as exc:
                raise VpdError(f"merging snapshot {name!r} of {dom.name()} failed: {exc.get_error_message()}") from None
            return {"vm": dom.name(), "snapshot": name, "kind": "external", "merged_overlays": merged,
                    "seconds": round(time.monotonic() - began, 2)}
        if parsed.parent is not None and not _parsed(snap.getParent(0)).external:
            # libvirt's own check ("deleting external snapshot that has internal snapshot as parent
            # not supported"); while the VM runs vpd commits the overlay itself instead.
            raise UsageError(f"{dom.name()}: libvirt cannot delete external snapshot {name!r} of a stopped VM "
                             "whose parent is an internal snapshot", hint="start the VM: vpd then commits it itself")
    elif parsed.domain is not None and dom.isActive():
        # An internal snapshot lives inside the image it was taken on; once an external snapshot
        # put an overlay on top, libvirt 11.3 refuses to delete it from the running guest ("disk
        # image ... is not the same as disk image currently used"; stopped, it allows it).
        then = [d.source.reference for d in parsed.domain.disks if d.device == "disk" and d.source is not None]
        now = [d.source.reference for d in _disks(dom) if d.source is not None]
        if then != now:
            raise UsageError(f"{dom.name()}: internal snapshot {name!r} lives in {', '.join(map(str, then))}, "
                             f"but the VM now uses {', '.join(map(str, now))}",
                             hint="delete the newer external snapshots first (LIFO), revert to this one, "
                                  "or stop the VM")
    try:
        # For a stopped VM libvirt merges an external snapshot's overlay itself and removes the file.
        snap.delete(0)
    except libvirt.libvirtError as exc:
        raise VpdError(f"deleting snapshot {name!r} of {dom.name()} failed: {exc.get_error_message()}") from None
    overlays = [d.source.file for d in parsed.disks if d.source is not None and d.source.file]
    return {"vm": dom.name(), "snapshot": name, "kind": "external" if parsed.external else "internal",
            "merged_overlays": overlays if parsed.external else [], "seconds": round(time.monotonic() - began, 2)}
