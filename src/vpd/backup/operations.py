"""Backup operations as front ends run them: back a VM up (found across the inventory), list
and verify backups on a host, restore one as a new VM whose name, UUID and MACs are checked
against every host first. Each change runs inside an Operation that plans what it makes."""
from __future__ import annotations

import posixpath

from lxml import etree

from ..connect.hostfiles import HostFiles
from ..connect.libvirt_conn import lookup
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from ..ops import Operation, Session
from ..ops.locks import vm_key
from ..vm import identity, lifecycle
from ..vm.operations import locate
from . import catalog
from . import manifest as mf
from .create import plan_backup, run_backup
from .restore import restore_backup


def backup(session: Session, name: str, root: str, host_ref: str | None = None, incremental: bool = False,
           quiesce: bool = False) -> dict:
    """Back up a VM (the running copy when two hosts define it) into ROOT/VM/ID on its host;
    `quiesce`: its filesystems frozen through the guest agent for the instant the copy is of."""
    vm = locate(session, name, host_ref)
    host = vm.host
    files = HostFiles(host)
    with Operation(session, "backup.create", target=f"{host.name}/{name}", locks=[vm_key(name)], to=root,
                   incremental=incremental, quiesce=quiesce) as op:
        plan = session.call(host, lambda c: plan_backup(c, host, vm.domain, root, incremental, files, quiesce))
        op.plan("backup", plan.where, host.name, vm=name, manifest=posixpath.join(plan.where, mf.MANIFEST))
        if plan.checkpoint:
            op.plan("checkpoint", f"{name}/{plan.checkpoint}", host.name)
        m = session.call(host, lambda _c: run_backup(host, vm.domain, plan, op.undo, files))
        op.result = {"id": m.id, "kind": m.kind, "bytes": m.total_bytes, "seconds": m.seconds}
    return {"host": host.name, "path": plan.where, **m.model_dump(), "total_bytes": m.total_bytes}


def list_(session: Session, root: str, host_ref: str) -> dict:
    host = session.host(host_ref)
    unreadable: list[dict] = []
    found = catalog.list_backups(HostFiles(host), root, unreadable)
    return {"host": host.name, "root": root, "backups": [{"path": p, **m.model_dump(), "total_bytes": m.total_bytes}
                                                         for p, m in found],
            "unreadable": unreadable}


def verify(session: Session, backup_path: str, host_ref: str) -> dict:
    """Recompute every checksum of the chain; a damaged backup raises VpdError carrying the
    per-file report (exc.report), so front ends show which files are bad."""
    host = session.host(host_ref)
    with Operation(session, "backup.verify", target=f"{host.name}:{backup_path}") as op:
        result = catalog.verify(HostFiles(host), backup_path).to_dict()
        if not result["ok"]:
            error = VpdError(f"backup {result['backup']} is damaged",
                             hint="restore an older backup; this one cannot be trusted")
            error.report = result
            raise error
        op.result = result
    return result


def _backup_macs(files: HostFiles, latest_dir: str) -> list[str]:
    """The MACs in the backup's domain.xml; none when it cannot be read (the verification that
    restore runs first then reports the backup damaged)."""
    try:
        tree = etree.fromstring(files.read(posixpath.join(latest_dir, mf.DOMAIN_XML)),
                                etree.XMLParser(resolve_entities=False, no_network=True))
    except (VpdError, etree.XMLSyntaxError):
        return []
    return [m for m in tree.xpath("devices/interface/mac/@address")]


def restore(session: Session, backup_path: str, host_ref: str, new_name: str | None = None,
            pool: str | None = None, start: bool = False, wait_boot: bool = False) -> dict:
    """Restore a backup (its whole chain, verified first) as a new VM on `host_ref`. Its name,
    and without --as its UUID and MACs, must be free on every host; with --as the new MACs
    avoid those of every host."""
    host = session.host(host_ref)
    if new_name is not None:
        check_name(new_name, "VM name")
    files = HostFiles(host)
    links = catalog.resolve_chain(files, backup_path)
    latest_dir, latest = links[-1]
    name = new_name or latest.vm
    ids = identity.gather(session)
    beside = "restore a copy beside it with --as NEW_NAME (new name, UUID and MACs)"
    try:
        ids.require_new_name(name)
        if new_name is None:
            ids.require_new_uuid(latest.uuid)
            ids.require_free_macs(_backup_macs(files, latest_dir))
    except UsageError as exc:
        if new_name is None:
            exc.hint = beside
        raise
    with Operation(session, "backup.restore", target=f"{host.name}:{backup_path}", locks=[vm_key(name)],
                   new_name=new_name, pool=pool) as op:
        # Each volume is planned (with its pool) by restore_backup as it is made.
        op.plan("domain", name, host.name)
        restored = session.call(host, lambda c: restore_backup(c, host, backup_path, new_name, pool, files=files,
                                                               taken_macs=ids.taken_macs()))
        result = vars(restored)
        if start:
            dom = session.call(host, lambda c: lookup(host, lambda: c.lookupByName(restored.name),
                                                      f"the restored VM {restored.name} vanished from {host.name}"))
            result.update(session.call(host, lambda _c: lifecycle.start_new(dom, wait_boot=wait_boot)))
        op.result = result
    return op.result
