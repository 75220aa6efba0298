"""/api/v1/templates: shut-off VMs kept as moulds (`vpd template ...`), through
vm.template_operations."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...ops import Session
from ...vm import operations as vm_ops
from ...vm import template_operations as template_ops
from ..auth import Principal, operator, viewer
from .common import ERRORS, HostRefs, MaybeHost, session, submit

router = APIRouter(prefix="/templates", tags=["templates"], dependencies=[Depends(viewer)], responses=ERRORS)


class TemplateCreate(BaseModel):
    vm: str = Field(description="A shut-off VM to seal into a template")
    host: str | None = None


@router.get("")
def templates_list(host: HostRefs = None, s: Session = Depends(session)) -> dict:
    """Templates on all hosts, with their disks and the linked clones based on them."""
    return template_ops.list_(s, host)


def _change(request: Request, who: Principal, s: Session, action: str, name: str, host: str | None) -> JSONResponse:
    found = vm_ops.locate(s, name, host, prefer_running=False)
    return submit(request, who, f"template.{action}", f"{found.host.name}/{name}",
                  lambda js: template_ops.change(js, action, name, host))


@router.post("", status_code=202)
def templates_create(request: Request, body: TemplateCreate, who: Principal = Depends(operator),
                     s: Session = Depends(session)) -> JSONResponse:
    """Turn a shut-off VM into a template, which vpd never starts."""
    return _change(request, who, s, "create", body.vm, body.host)


@router.post("/{name}/unseal", status_code=202)
def templates_unseal(request: Request, name: str, host: MaybeHost = None, who: Principal = Depends(operator),
                     s: Session = Depends(session)) -> JSONResponse:
    """Turn a template back into a VM."""
    return _change(request, who, s, "unseal", name, host)
