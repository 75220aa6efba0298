"""/api/v1/iscsi/targets: iSCSI targets on the inventory's hosts (`vpd iscsi target ...`),
through storage.operations."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...ops import Session
from ...storage import operations as storage_ops
from ..auth import Principal, operator, viewer
from .common import ERRORS, HostRef, HostRefs, session, submit

router = APIRouter(prefix="/iscsi", tags=["iscsi"], dependencies=[Depends(viewer)], responses=ERRORS)


class TargetCreate(BaseModel):
    host: str = Field(description="The target host")
    iqn: str = Field(description="The target's IQN, e.g. iqn.2024-01.org.example:san1")
    allow: list[str] = Field(min_length=1, description="Initiators admitted: HOST, HOST=IQN or IQN")
    vol: str | None = Field(None, description="A raw volume POOL/VOL of that host to export")
    file: str | None = Field(None, description="Or a file or block device of that host")
    lun: int = 1
    chap_user: str | None = None
    chap_secret: str | None = Field(None, description="The CHAP secret (with chap_user); never journaled")


@router.get("/targets")
def targets_list(host: HostRefs = None, s: Session = Depends(session)) -> dict:
    """Targets of every host: LUNs, ACL, CHAP users (never their secrets), sessions."""
    return storage_ops.target_list(s, host)


@router.post("/targets", status_code=202)
def targets_create(request: Request, body: TargetCreate, who: Principal = Depends(operator),
                   s: Session = Depends(session)) -> JSONResponse:
    """Export a raw volume or a file as a LUN to the allowed initiators only."""
    from ...core.errors import UsageError

    if bool(body.vol) == bool(body.file):
        raise UsageError("give exactly one of vol (POOL/VOL) or file (PATH)")
    h = s.host(body.host)
    return submit(request, who, "iscsi.target.create", f"{h.name}/{body.iqn}", lambda js: storage_ops.target_create(
        js, h.name, body.iqn, body.allow, vol_ref=body.vol, file_path=body.file, lun=body.lun,
        chap_user=body.chap_user, password=body.chap_secret))


@router.delete("/targets/{iqn}", status_code=202)
def targets_delete(request: Request, iqn: str, host: HostRef, who: Principal = Depends(operator),
                   s: Session = Depends(session)) -> JSONResponse:
    """Remove a target (its LUN's data stays), its CHAP account and its firewall openings."""
    h = s.host(host)
    return submit(request, who, "iscsi.target.delete", f"{h.name}/{iqn}",
                  lambda js: storage_ops.target_delete(js, h.name, iqn))
