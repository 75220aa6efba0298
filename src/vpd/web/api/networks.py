"""/api/v1/networks: libvirt virtual networks on the inventory's hosts (`vpd net ...`),
through network.operations."""
from __future__ import annotations

from enum import StrEnum
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...network import networks
from ...network import operations as net_ops
from ...ops import Session
from ..auth import Principal, operator, viewer
from .common import ERRORS, HostRef, HostRefs, MaybeHost, session, submit

router = APIRouter(prefix="/networks", tags=["networks"], dependencies=[Depends(viewer)], responses=ERRORS)


class NetworkCreate(BaseModel):
    name: str
    host: str
    mode: Literal[networks.MODES] = Field(description="nat, isolated, routed, open or bridge")
    subnet: str | None = Field(None, description="e.g. 198.19.40.0/24 (the host takes .1)")
    dhcp: str | None = Field(None, description="START-END inside the subnet")
    bridge: str | None = None
    forward_dev: str | None = None
    start: bool = True
    autostart: bool = False


class Action(StrEnum):
    start = "start"
    stop = "stop"
    autostart = "autostart"
    no_autostart = "no-autostart"


@router.get("")
def networks_list(host: HostRefs = None, s: Session = Depends(session)) -> dict:
    """Every network of every host: mode, state, subnet, DHCP range, bridge."""
    return net_ops.net_list(s, host)


@router.get("/{name}/leases")
def networks_leases(name: str, host: MaybeHost = None, s: Session = Depends(session)) -> dict:
    """DHCP leases of the network (on `host`, or on every host that has one of that name)."""
    return net_ops.net_leases(s, name, host)


@router.post("", status_code=202)
def networks_create(request: Request, body: NetworkCreate, who: Principal = Depends(operator),
                    s: Session = Depends(session)) -> JSONResponse:
    """Define and start a network after checking its subnet against the host's."""
    networks.NetworkSpec(body.name, body.mode, body.subnet, body.dhcp, body.bridge, body.forward_dev)  # 400 now
    h = s.host(body.host)
    return submit(request, who, "net.create", f"{h.name}/{body.name}", lambda js: net_ops.net_create(
        js, body.name, h.name, body.mode, subnet=body.subnet, dhcp=body.dhcp, bridge=body.bridge,
        forward_dev=body.forward_dev, start=body.start, autostart=body.autostart))


@router.post("/{name}/actions/{action}", status_code=202)
def networks_action(request: Request, name: str, action: Action, host: HostRef, force: bool = False,
                    who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Start, stop (refused while running VMs use it unless `force`), autostart or no-autostart."""
    from ...core.errors import UsageError

    if force and action is not Action.stop:
        raise UsageError(f"{action.value} takes no force")
    verb, options = {"start": ("start", {}), "stop": ("stop", {"force": force}),
                     "autostart": ("autostart", {}), "no-autostart": ("autostart", {"disable": True})}[action.value]
    h = s.host(host)
    return submit(request, who, f"net.{verb}", f"{h.name}/{name}",
                  lambda js: {"action": verb, **net_ops.net_act(js, verb, name, h.name, **options)})


@router.delete("/{name}", status_code=202)
def networks_delete(request: Request, name: str, host: HostRef, force: bool = False,
                    who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Stop and undefine a network (refused while running VMs use it, unless `force`)."""
    h = s.host(host)
    return submit(request, who, "net.delete", f"{h.name}/{name}",
                  lambda js: {"action": "delete", **net_ops.net_act(js, "delete", name, h.name, force=force)})
