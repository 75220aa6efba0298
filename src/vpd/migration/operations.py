"""`migrate` as front ends run it: find the VM, then one Operation around the whole
preflight -> access -> job -> validation, holding the VM's lock so no other vpd command
clones, backs up or migrates it meanwhile."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..core.errors import VpdError
from ..host import maintenance
from ..ops import Operation, Session
from ..ops.locks import vm_key
from ..vm.inventory import locate_vm
from .migrate import MigrateOptions, Report, migrate, raise_for

if TYPE_CHECKING:
    from ..access.grants import Grant
    from .shared import SharedChecks

AUTO = "auto"


def migrate_vm(session: Session, name: str, to: str, opts: MigrateOptions, source: str | None = None, *,
               grant: Grant | None = None, cancel: threading.Event | None = None,
               shared: SharedChecks | None = None) -> Report:
    """Migrate `name` to host `to` (name, FQDN or address; "auto": the host placement picks, as
    `vpd host drain` does). The source is `source`, else the host where the VM runs (else the one
    that defines it). A host in maintenance is refused as a destination. `grant`, `cancel`, `shared`: see
    migrate.migrate (a drain passes them). A failed migration raises
    with the report attached (`exc.report`), so front ends still show what was checked and done."""
    src = session.host(source) if source else locate_vm(session, name, prefer_running=True).host
    if to == AUTO:
        to = _placed(session, name, src)
    dst = session.host(to)
    maintenance.refuse_new_guests(dst.name, "migrated VM")
    with Operation(session, "migrate", target=f"{src.name}/{name}->{dst.name}", locks=[vm_key(name)],
                   **vars(opts)) as op:
        report = migrate(session.conns, src, dst, name, opts, grant=grant, cancel=cancel, shared=shared)
        op.result = report.to_dict()
        raise_for(report)
    return report


def _placed(session: Session, name: str, src) -> str:
    from ..host.gather import plan_one

    placement = plan_one(session, name, src).placements[0]
    if placement.host is None:
        raise VpdError(f"no host can take {name}: {placement.reason}",
                       hint="free memory or vCPUs on a host, end a host's maintenance, or name one with --to")
    session.notice(f"{name} placed on {placement.host}: {placement.reason}")
    return placement.host
