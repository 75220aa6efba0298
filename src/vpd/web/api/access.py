"""/api/v1/access: temporary SSH access from one host to another (`vpd access ...`), through
access.operations."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...access import operations as access_ops
from ...access.ttl import parse_ttl
from ...ops import Session
from ..auth import Principal, operator, viewer
from .common import ERRORS, session, submit

router = APIRouter(prefix="/access", tags=["access"], dependencies=[Depends(viewer)], responses=ERRORS)


class Grant(BaseModel):
    src: str = Field(description="Root on this host ...")
    dst: str = Field(description="... may log in to root on this one")
    ttl: str = Field("15m", description="90s, 15m, 2h, 1h30m")


@router.get("")
def access_list(all: bool = False, s: Session = Depends(session)) -> dict:
    """Grants still open (active, expired, revoke-pending); `all` adds recently revoked ones."""
    return {"grants": [g.to_dict() for g in access_ops.list_(s, all)]}


@router.post("", status_code=202)
def access_grant(request: Request, body: Grant, who: Principal = Depends(operator),
                 s: Session = Depends(session)) -> JSONResponse:
    """Let root on SRC log in to root on DST with a key of its own, from SRC's address only."""
    ttl = parse_ttl(body.ttl)
    src, dst = s.host(body.src), s.host(body.dst)
    return submit(request, who, "access.grant", f"{src.name}->{dst.name}",
                  lambda js: access_ops.grant(js, src.name, dst.name, ttl))


@router.delete("/{grant_id}", status_code=202)
def access_revoke(request: Request, grant_id: str, who: Principal = Depends(operator)) -> JSONResponse:
    """Remove the grant's key from DST's authorized_keys and from SRC."""
    return submit(request, who, "access.revoke", grant_id, lambda js: access_ops.revoke(js, grant_id))


@router.post("/revoke-expired", status_code=202)
def access_revoke_expired(request: Request, who: Principal = Depends(operator)) -> JSONResponse:
    """Revoke every grant past its TTL and retry every revoke-pending one."""
    return submit(request, who, "access.revoke", "expired", lambda js: access_ops.revoke_due(js))
