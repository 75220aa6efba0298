"""/api/v1/recovery: settle what interrupted vpd operations left (`vpd recover`), through
vpd.ops.recover."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ...ops import Session
from ...ops import recover as rec
from ..auth import Principal, operator, viewer
from .common import ERRORS, session, submit

router = APIRouter(prefix="/recovery", tags=["recovery"], dependencies=[Depends(viewer)], responses=ERRORS)


@router.get("")
def recovery_plan(s: Session = Depends(session)) -> dict:
    """What `vpd recover` would do now (a dry run: nothing changes)."""
    return rec.recover(s, dry_run=True)


@router.post("", status_code=202)
def recovery_run(request: Request, wait_s: float = Query(rec.RECOVER_WAIT_S, ge=0, le=3600),
                 who: Principal = Depends(operator)) -> JSONResponse:
    """Settle every interrupted operation: orphan volumes, partial backups and their checkpoints,
    libvirt jobs running on without vpd, grants still open; expired grants too."""
    return submit(request, who, "recover", "all", lambda js: rec.recover(js, wait_s=wait_s))
