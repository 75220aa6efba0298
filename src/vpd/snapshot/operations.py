"""Snapshot operations as front ends run them: the VM is found across the inventory (or on
the host given), each change runs inside an Operation (journal, VM lock) and returns a plain
result. The snapshot rules themselves live in vpd.snapshot."""
from __future__ import annotations

from ..ops import Operation, Session
from ..ops.locks import vm_key
from ..vm.operations import locate
from . import check_quiesce, list_snapshots, snapshot_name
from . import create as _create
from . import delete as _delete
from . import revert as _revert


def list_(session: Session, vm_name: str, host_ref: str | None = None) -> dict:
    vm = locate(session, vm_name, host_ref)
    items = session.call(vm.host, lambda _c: list_snapshots(vm.domain))
    return {"host": vm.host.name, "vm": vm_name, "current": next((s.name for s in items if s.current), None),
            "snapshots": [s.to_dict() for s in items]}


def create(session: Session, vm_name: str, name: str | None = None, host_ref: str | None = None,
           disk_only: bool = False, description: str | None = None, quiesce: bool = False) -> dict:
    """Take a snapshot (of the running copy when two hosts define the VM)."""
    vm = locate(session, vm_name, host_ref)
    with Operation(session, "snapshot.create", target=f"{vm.host.name}/{vm_name}", locks=[vm_key(vm_name)],
                   name=name, disk_only=disk_only, quiesce=quiesce) as op:
        chosen = snapshot_name(name)
        if quiesce:
            session.call(vm.host, lambda _c: check_quiesce(vm.domain))
            # libvirt freezes the guest through its agent inside the call: recovery checks the thaw.
            op.plan("freeze", vm_name, vm.host.name)
        op.plan("snapshot", f"{vm_name}/{chosen}", vm.host.name, disk_only=disk_only or quiesce)
        result = session.call(vm.host, lambda _c: _create(vm.domain, chosen, disk_only, description, quiesce))
        op.result = {"host": vm.host.name, **result}
    return op.result


def revert(session: Session, vm_name: str, name: str, host_ref: str | None = None) -> dict:
    # Snapshots belong to one host's definition: with two definitions the user says which.
    vm = locate(session, vm_name, host_ref, prefer_running=False)
    with Operation(session, "snapshot.revert", target=f"{vm.host.name}/{vm_name}", locks=[vm_key(vm_name)],
                   name=name) as op:
        op.result = {"host": vm.host.name, **session.call(vm.host, lambda _c: _revert(vm.domain, name))}
    return op.result


def delete(session: Session, vm_name: str, name: str, host_ref: str | None = None) -> dict:
    vm = locate(session, vm_name, host_ref, prefer_running=False)
    with Operation(session, "snapshot.delete", target=f"{vm.host.name}/{vm_name}", locks=[vm_key(vm_name)],
                   name=name) as op:
        op.result = {"host": vm.host.name, **session.call(vm.host, lambda _c: _delete(vm.domain, name))}
    return op.result
