"""`migrate` as front ends run it: find the VM, then one Operation around the whole
preflight -> access -> job -> validation, holding the VM's lock so no other vpd command
clones, backs up or migrates it meanwhile."""
from __future__ import annotations

from ..ops import Operation, Session
from ..ops.locks import vm_key
from ..vm.inventory import locate_vm
from .migrate import MigrateOptions, Report, migrate, raise_for


def migrate_vm(session: Session, name: str, to: str, opts: MigrateOptions, source: str | None = None) -> Report:
    """Migrate `name` to host `to` (name, FQDN or address). The source is `source`, else the host
    where the VM runs (else the one that defines it). A failed migration raises with the
    report attached (`exc.report`), so front ends still show what was checked and done."""
    dst = session.host(to)
    src = session.host(source) if source else locate_vm(session, name, prefer_running=True).host
    with Operation(session, "migrate", target=f"{src.name}/{name}->{dst.name}", locks=[vm_key(name)],
                   **vars(opts)) as op:
        report = migrate(session.conns, src, dst, name, opts)
        op.result = report.to_dict()
        raise_for(report)
    return report
