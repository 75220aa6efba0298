"""OVF operations as front ends run them: export a VM (found across the inventory) as an OVF
directory or OVA, import a package as a new VM whose name is checked against every host
first and whose MACs are free on every host. Each runs inside an Operation."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..ops import Operation, Session
from ..ops.locks import vm_key
from ..vm import identity, lifecycle
from ..vm.operations import locate


def export(session: Session, vm_name: str, host_ref: str | None = None, ovf_dir: Path | None = None,
           ova_file: Path | None = None, disk_format: str = "vmdk", allow_running: bool = False) -> dict:
    from .export import export_vm

    # A running copy is the one whose disks are current when two hosts define the VM.
    vm = locate(session, vm_name, host_ref)
    host = vm.host
    ovf_dir = ovf_dir.absolute() if ovf_dir else None
    ova_file = ova_file.absolute() if ova_file else None
    with Operation(session, "ovf.export", target=f"{host.name}/{vm_name}", locks=[vm_key(vm_name)], ovf=ovf_dir,
                   ova=ova_file, disk_format=disk_format) as op:
        exported = session.call(host, lambda c: export_vm(c, host, vm_name, ovf_dir=ovf_dir, ova_file=ova_file,
                                                          disk_format=disk_format, allow_running=allow_running))
        op.result = asdict(exported)
    return op.result


def import_(session: Session, package_path: Path, host_ref: str, name: str | None = None, pool: str | None = None,
            networks: dict[str, str] | None = None, start: bool = False, wait_boot: bool = False) -> dict:
    """Import an OVF directory, .ovf or OVA as a new VM on `host_ref`; with `start`, a VM that
    does not start is removed again with its volumes (the operation's undo)."""
    from ..core.errors import UsageError
    from ..core.names import check_name
    from .import_ import import_read, vm_name
    from .package import read_package

    if wait_boot and not start:
        raise UsageError("--wait-boot needs --start")
    if name is not None:
        check_name(name, "VM name")
    host = session.host(host_ref)
    package_path = package_path.absolute()
    package = read_package(package_path)
    try:
        vm = vm_name(package, name)
        ids = identity.gather(session)
        ids.require_new_name(vm)
        with Operation(session, "ovf.import", target=f"{host.name}/{name or package_path.name}",
                       locks=[vm_key(vm)], package=package_path, pool=pool, networks=networks or {},
                       start=start) as op:
            dom, imported = session.call(host, lambda c: import_read(
                c, host, package, vm, pool_name=pool, networks=networks, undo=op.undo, taken_macs=ids.taken_macs(),
                announce=lambda kind, what: op.plan(kind, what, host.name)))
            result = asdict(imported)
            if start:
                result.update(session.call(host, lambda _c: lifecycle.start(dom, wait_boot=wait_boot)))
            op.result = result
    finally:
        package.close()
    return op.result
