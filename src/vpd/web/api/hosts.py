"""/api/v1/hosts: the inventory's hosts with their facts (what `vpd host list` shows), and
preparing them for migrations (`vpd host prepare|unprepare`, through hostprep.operations)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...host.facts import list_hosts, read_facts
from ...hostprep import operations as hostprep_ops
from ...ops import Session
from ...vm.inventory import list_vms
from ..auth import Principal, operator, viewer
from .common import ERRORS, session, submit

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


class Prepare(BaseModel):
    hosts: list[str] = Field(min_length=1, description="Hosts to open to each other (one: to the rest of the "
                                                       "inventory)")
    dry_run: bool = Field(False, description="Show the changes (the exact commands); change nothing")
    set_fqdn: str | None = Field(None, description="Rename the (one) host to this FQDN")


class Unprepare(BaseModel):
    hosts: list[str] = Field(min_length=1)


def _names(s: Session, refs: list[str]) -> str:
    return ",".join(s.host(r).name for r in refs)  # unknown host: 404 now


@router.post("/prepare", status_code=202)
def hosts_prepare(request: Request, body: Prepare, who: Principal = Depends(operator),
                  s: Session = Depends(session)) -> JSONResponse:
    """Make hosts ready for live migration between them (`vpd host prepare`): FQDN checks,
    SSH, libvirt and migration ports opened to the peers only. A failed host fails the job
    with every host's report in `error.report`."""
    return submit(request, who, "host.prepare", _names(s, body.hosts), lambda js: hostprep_ops.prepare(
        js, body.hosts, dry_run=body.dry_run, set_fqdn=body.set_fqdn))


@router.post("/unprepare", status_code=202)
def hosts_unprepare(request: Request, body: Unprepare, who: Principal = Depends(operator),
                    s: Session = Depends(session)) -> JSONResponse:
    """Remove exactly what prepare added to these hosts, and nothing else."""
    return submit(request, who, "host.unprepare", _names(s, body.hosts),
                  lambda js: hostprep_ops.unprepare(js, body.hosts))
