"""`vpd host maintenance on|off HOST`: take a host out of service and back.

`on`, in this order:
1. mark the host (vpd's flag, `host/maintenance.py`) - first, so no VM is placed there while it
   drains (placement skips it, `vm create` and `migrate --to` it are refused);
2. when the host is a member of a cluster vpd made, `pcs node standby` (cluster.operations.standby):
   Pacemaker live-migrates its HA VMs itself - vpd must not move a cluster resource behind
   Pacemaker's back, so this comes before the drain;
3. drain (`migration/drain.py`): every other running guest (and stopped ones with
   `--include-stopped`) to the hosts placement picks.
A drain that leaves VMs behind fails (exit 1) with its report; the host stays marked, so running
`on` again retries the drain. `off` clears the flag and takes a cluster member out of standby;
it moves nothing back (the next drain or `migrate --to auto` may).

It sits on the cluster floor because it composes the migration floor's drain with the cluster's
standby."""
from __future__ import annotations

from ..core.errors import VpdError
from ..host import maintenance as flag
from ..migration.drain import drain
from ..ops import Operation, Session
from ..ops.locks import host_key
from . import operations as cluster_ops
from . import store


def maintenance(session: Session, host_ref: str, on: bool, to: list[str] | None = None,
                include_stopped: bool = False, options: dict | None = None, parallel: int | None = None) -> dict:
    host = session.host(host_ref).name
    cluster = store.cluster_of(host)
    result: dict = {"host": host, "maintenance": on, "cluster": cluster, "standby": None, "drain": None}
    with Operation(session, "host.maintenance", target=host, locks=[host_key(host)], on=on) as op:
        if on:
            result["since"] = flag.mark(host, "vpd host maintenance on")["since"]
        else:
            result["was_on"] = flag.clear(host)
        op.result = dict(result)
    if cluster:
        result["standby"] = cluster_ops.standby(session, host, on)
    if on:
        try:
            result["drain"] = drain(session, host, to, parallel=parallel, include_stopped=include_stopped,
                                    options=options).to_dict()
        except VpdError as exc:
            partial = getattr(exc, "report", None)
            result["drain"] = partial.to_dict() if partial is not None else {"error": exc.message}
            exc.report = result
            raise
    return result
