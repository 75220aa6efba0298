"""/api/v1/containers: system containers on the hosts' incusd (`vpd ct ...`), through
ct.operations. Exec, files and images stay CLI commands for now."""
from __future__ import annotations

from enum import StrEnum

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...ct import operations as ct_ops
from ...ops import Session
from ..auth import Principal, operator, viewer
from .common import ERRORS, HostRefs, MaybeHost, session, submit

router = APIRouter(prefix="/containers", tags=["containers"], dependencies=[Depends(viewer)], responses=ERRORS)


class Launch(BaseModel):
    image: str = Field(description="A local image alias or fingerprint")
    name: str
    host: str | None = Field(None, description="Needed when the inventory has several hosts")
    limits: dict[str, str] = Field(default_factory=dict, description='e.g. {"limits.cpu": "1"}')
    start: bool = True
    profiles: list[str] = Field(default_factory=lambda: ["default"], description="Applied in order")


class Action(StrEnum):
    start = "start"
    stop = "stop"
    restart = "restart"
    pause = "pause"
    resume = "resume"


class ActionOptions(BaseModel):
    force: bool = Field(False, description="stop/restart: kill at once instead of a clean shutdown")
    timeout: int | None = Field(None, gt=0, le=3600, description="stop/restart: seconds for a clean shutdown")


@router.get("")
def containers_list(host: HostRefs = None, s: Session = Depends(session)) -> dict:
    """Containers of every host (a host whose incusd does not answer has its error)."""
    return ct_ops.list_cts(s, tuple(host or ()))


@router.get("/{name}")
def containers_info(name: str, host: MaybeHost = None, s: Session = Depends(session)) -> dict:
    return ct_ops.info(s, name, host)


@router.post("", status_code=202)
def containers_launch(request: Request, body: Launch, who: Principal = Depends(operator),
                      s: Session = Depends(session)) -> JSONResponse:
    """Create a container from a local image and start it (a failed start removes it)."""
    from ...ct import checks

    checks.check_ct_name(body.name)
    checks.check_image_ref(body.image)
    for key, value in body.limits.items():
        checks.check_config(key, value)
    for profile in body.profiles:
        checks.check_profile_name(profile)
    target = f"{s.host(body.host).name}/{body.name}" if body.host else body.name
    return submit(request, who, "ct.launch", target, lambda js: ct_ops.launch(
        js, body.image, body.name, body.host, body.limits, body.start, profiles=body.profiles))


@router.post("/{name}/actions/{action}", status_code=202)
def containers_action(request: Request, name: str, action: Action, host: MaybeHost = None,
                      options: ActionOptions | None = None, who: Principal = Depends(operator),
                      s: Session = Depends(session)) -> JSONResponse:
    """start, stop, restart, pause (freeze), resume (unfreeze)."""
    from ...ct import checks

    checks.check_ct_name(name)
    opts = options or ActionOptions()
    target = f"{s.host(host).name}/{name}" if host else name
    return submit(request, who, f"ct.{action.value}", target, lambda js: ct_ops.act(
        js, action.value, name, host, force=opts.force, timeout=opts.timeout))


@router.delete("/{name}", status_code=202)
def containers_delete(request: Request, name: str, host: MaybeHost = None, force: bool = False,
                      who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Delete a stopped container (`force`: stop it first)."""
    from ...ct import checks

    checks.check_ct_name(name)
    target = f"{s.host(host).name}/{name}" if host else name
    return submit(request, who, "ct.delete", target, lambda js: ct_ops.delete(js, name, host, force))
