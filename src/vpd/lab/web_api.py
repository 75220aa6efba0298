"""/api/v1/lab and the page /lab: the lab of libvirt hosts on this machine (`vpd lab status`,
`host-down`, `host-up`), through lab.operations. The lab's own front end, like cli/commands_lab: the web
console mounts them through the `vpd.web.routers` and `vpd.web.pages` entry points the lab
registers, so the product never imports its test bed. Bringing the lab up or down stays a CLI command (the console
usually runs over that lab)."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ..core.errors import VpdError
from ..ops import Session
from ..web import pages as web_pages
from ..web.api.common import ERRORS, run_in_job, session, submit
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


# --- the page /lab (plain HTML: the state without JavaScript, power buttons as forms) ----------

web_pages.add_templates(Path(__file__).parent / "templates")
pages = APIRouter(include_in_schema=False)


@pages.get("/lab")
def lab_page(request: Request, who: Principal = Depends(viewer), s: Session = Depends(session)):
    try:
        status, error = lab_ops.status(s), None
    except VpdError as exc:  # no lab up: the page says so (and how to bring one up)
        status, error = None, {"error": exc.message, "hint": exc.hint}
    return web_pages.render(request, "lab.html", who, lab=status, error=error)


@pages.post("/lab/hosts/{name}/power")
def lab_page_power(request: Request, name: str, on: bool = Form(...), csrf: str = Form("")) -> Response:
    return web_pages.job_response(request, csrf, lambda who: run_in_job(
        request, who, "lab.host-up" if on else "lab.host-down", name, lambda js: lab_ops.power(js, name, on)))
