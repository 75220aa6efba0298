"""/api/v1/clusters: Pacemaker clusters and their highly available VMs (`vpd cluster ...`,
`vpd ha ...`), through cluster.operations."""
from __future__ import annotations

from enum import StrEnum

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...cluster import fencing, store
from ...cluster import operations as cluster_ops
from ...core.errors import NotFound
from ...ops import Session
from ..auth import Principal, operator, viewer
from .common import ERRORS, session, submit

router = APIRouter(prefix="/clusters", tags=["clusters"], dependencies=[Depends(viewer)], responses=ERRORS)


class ClusterCreate(BaseModel):
    name: str
    hosts: list[str] = Field(min_length=1, description="Members (inventory names)")
    fence_agent: str | None = Field(None, description="fence_ipmilan, fence_virsh, ... (fence_vpdlab on the lab)")
    fence_params: list[str] = Field(default_factory=list, description="key=value parameters of the agent")
    no_fencing: bool = Field(False, description="No fence device (throw-away tests only)")


class MemberAction(StrEnum):
    standby = "standby"
    unstandby = "unstandby"
    start = "start"


class HaEnable(BaseModel):
    vm: str


class HaMove(BaseModel):
    to: str = Field(description="Member to live-migrate the VM to")


@router.get("")
def clusters_list() -> dict:
    """The clusters vpd made, with their members."""
    return {"clusters": [{"name": r.name, "hosts": r.hosts, "fencing": r.fencing} for r in store.all_records()]}


@router.get("/{name}")
def clusters_status(name: str, s: Session = Depends(session)) -> dict:
    """Members, quorum, DC, resources, failed actions, fencing history (asked to a member)."""
    return cluster_ops.status(s, name)


@router.post("", status_code=202)
def clusters_create(request: Request, body: ClusterCreate, who: Principal = Depends(operator),
                    s: Session = Depends(session)) -> JSONResponse:
    """Build a cluster: packages, ports, pcsd auth, corosync (knet, crypto), fencing."""
    from ...core.names import check_name

    check_name(body.name, "cluster name")
    fencing.parse(body.fence_agent, tuple(body.fence_params), body.no_fencing)  # 400 now
    for h in body.hosts:
        s.host(h)  # 404 now
    return submit(request, who, "cluster.create", body.name, lambda js: cluster_ops.create(
        js, body.name, body.hosts, body.fence_agent, tuple(body.fence_params), body.no_fencing))


@router.delete("/{name}", status_code=202)
def clusters_destroy(request: Request, name: str, who: Principal = Depends(operator)) -> JSONResponse:
    """Give the VMs back to libvirt (stopped), tear the cluster down, put the hosts back."""
    store.load(name)
    return submit(request, who, "cluster.destroy", name, lambda js: cluster_ops.destroy(js, name))


def _member(name: str, host: str) -> None:
    rec = store.load(name)
    if host not in rec.hosts:
        raise NotFound(f"{host!r} is not a member of cluster {name}", hint="members: " + ", ".join(rec.hosts))


@router.post("/{name}/members/{host}/actions/{action}", status_code=202)
def clusters_member(request: Request, name: str, host: str, action: MemberAction,
                    who: Principal = Depends(operator)) -> JSONResponse:
    """standby (drain: its VMs live-migrate away), unstandby, or start a fenced member."""
    _member(name, host)
    if action is MemberAction.start:
        return submit(request, who, "cluster.start", host, lambda js: cluster_ops.start_member(js, host))
    on = action is MemberAction.standby
    return submit(request, who, f"cluster.{action.value}", host, lambda js: cluster_ops.standby(js, host, on))


@router.post("/{name}/ha", status_code=202)
def ha_enable(request: Request, name: str, body: HaEnable, who: Principal = Depends(operator)) -> JSONResponse:
    """Make a VM highly available in this cluster (shared disks proven, memory checked)."""
    store.load(name)
    return submit(request, who, "ha.enable", body.vm, lambda js: cluster_ops.ha_enable(js, body.vm, name))


@router.delete("/{name}/ha/{vm}", status_code=202)
def ha_disable(request: Request, name: str, vm: str, who: Principal = Depends(operator)) -> JSONResponse:
    """Give the VM back to plain libvirt where it runs (it keeps running)."""
    store.load(name)
    return submit(request, who, "ha.disable", vm, lambda js: cluster_ops.ha_disable(js, vm))


@router.post("/{name}/ha/{vm}/move", status_code=202)
def ha_move(request: Request, name: str, vm: str, body: HaMove, who: Principal = Depends(operator)) -> JSONResponse:
    """Live-migrate a highly available VM through pacemaker."""
    _member(name, body.to)
    return submit(request, who, "ha.move", vm, lambda js: {**cluster_ops.ha_move(js, vm, body.to), "to": body.to})
