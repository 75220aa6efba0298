"""/api/v1/hosts: the inventory's hosts with their facts (what `vpd host list` shows)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from ...host.facts import list_hosts, read_facts
from ...ops import Session
from ...vm.inventory import list_vms
from ..auth import viewer
from .common import ERRORS, session

router = APIRouter(prefix="/hosts", tags=["hosts"], dependencies=[Depends(viewer)], responses=ERRORS)


@router.get("")
def hosts_list(host: list[str] = Query(default=[], description="Only these hosts (repeatable)"),
               s: Session = Depends(session)) -> dict:
    """Each host: reachable, FQDN, libvirt/QEMU versions, CPU, memory, VMs, KVM or TCG."""
    return {"inventory": s.inventory.source, "hosts": [f.to_dict() for f in list_hosts(s.conns, s.hosts(host))]}


@router.get("/{name}")
def hosts_detail(name: str, s: Session = Depends(session)) -> dict:
    """One host (by inventory name, FQDN or address): its facts and its VMs."""
    host = s.host(name)
    vms = list_vms(s.conns, [host], include_inactive=True)[0]
    return {**read_facts(s.conns, host).to_dict(), "vms": [v.to_dict() for v in vms.vms], "vms_error": vms.error}
