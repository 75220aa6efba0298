"""Cluster and HA operations as front ends run them: each change is one Operation (journal
entry under the same names as before, locks on the cluster, the member or the VM)."""
from __future__ import annotations

from ..core.names import check_name
from ..ops import Operation, Session
from ..ops.locks import host_key, vm_key
from . import create as cl
from . import fencing, ha, members, pcs, store


def cluster_key(name: str) -> str:
    return f"cluster:{name}"


def create(session: Session, name: str, hosts: list[str], fence_agent: str | None, fence_params: tuple[str, ...],
           no_fencing: bool) -> dict:
    check_name(name, "cluster name")
    spec = fencing.parse(fence_agent, fence_params, no_fencing)
    inv = session.inventory
    for h in hosts:
        inv.get(h)  # an unknown member is a usage error before anything is locked or journaled
    # Parameter values may be BMC passwords: the journal gets their names only.
    with Operation(session, "cluster.create", target=name, locks=[cluster_key(name), *map(host_key, hosts)],
                   hosts=hosts, fencing=spec.to_dict() if spec else None) as op:
        report = cl.create(inv, name, hosts, spec)
        op.result = {"hosts": report.hosts, "seconds": report.seconds}
    return report.to_dict()


def status(session: Session, name: str | None) -> dict:
    rec = store.only_or_named(name)
    s = pcs.query(rec, session.inventory).to_dict()
    s["hosts"] = rec.hosts
    s["fencing_device"] = rec.fencing
    return s


def destroy(session: Session, name: str) -> dict:
    store.load(name)  # unknown name: exit 2 before anything
    with Operation(session, "cluster.destroy", target=name, locks=[cluster_key(name)]) as op:
        op.result = members.destroy(session.inventory, name)
    return op.result


def standby(session: Session, host: str, on: bool) -> dict:
    host = session.host(host).name  # an unknown host: exit 2 before anything is locked or journaled
    with Operation(session, "cluster.standby" if on else "cluster.unstandby", target=host,
                   locks=[host_key(host)]) as op:
        op.result = members.standby(session.inventory, host, on)
    return op.result


def start_member(session: Session, host: str) -> dict:
    host = session.host(host).name
    with Operation(session, "cluster.start", target=host, locks=[host_key(host)]) as op:
        op.result = members.start_member(session.inventory, host)
    return op.result


def ha_enable(session: Session, vm: str, cluster: str) -> dict:
    check_name(vm, "VM name")
    check_name(cluster, "cluster name")
    with Operation(session, "ha.enable", target=vm, locks=[vm_key(vm), cluster_key(cluster)], cluster=cluster) as op:
        op.result = ha.enable(session.inventory, session.conns, vm, cluster).to_dict()
    return op.result


def ha_disable(session: Session, vm: str) -> dict:
    check_name(vm, "VM name")
    with Operation(session, "ha.disable", target=vm, locks=[vm_key(vm)]) as op:
        op.result = ha.disable(session.inventory, session.conns, vm).to_dict()
    return op.result


def ha_move(session: Session, vm: str, target: str) -> dict:
    check_name(vm, "VM name")
    target = session.host(target).name
    with Operation(session, "ha.move", target=vm, locks=[vm_key(vm)], to=target) as op:
        op.result = ha.move(session.inventory, vm, target).to_dict()
    return op.result
