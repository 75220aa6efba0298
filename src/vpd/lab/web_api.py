"""/api/v1/lab: the lab of libvirt hosts on this machine (`vpd lab status`, `host-down`,
`host-up`), through lab.operations. The lab's own front end, like cli/commands_lab: the web
console mounts it through the `vpd.web.routers` entry point the lab registers, so the product
never imports its test bed. Bringing the lab up or down stays a CLI command (the console
usually runs over that lab)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..ops import Session
from ..web.api.common import ERRORS, session, submit
from ..web.auth import Principal, operator, viewer
from . import operations as lab_ops

router = APIRouter(prefix="/lab", tags=["lab"], dependencies=[Depends(viewer)], responses=ERRORS)


class Power(BaseModel):
    on: bool


@router.get("")
def lab_status(s: Session = Depends(session)) -> dict:
    """Each lab host: powered, daemons, libvirt reachable, running VMs; link rate, firewall."""
    return lab_ops.status(s)


@router.post("/hosts/{name}/power", status_code=202)
def lab_power(request: Request, name: str, body: Power, who: Principal = Depends(operator)) -> JSONResponse:
    """Power a lab host off (every process of it stops at once, as on a power cut) or on."""
    return submit(request, who, "lab.host-up" if body.on else "lab.host-down", name,
                  lambda js: lab_ops.power(js, name, body.on))
