"""/api/v1/pools: storage pools on the inventory's hosts (`vpd pool ...`), through
storage.operations — the same checks, journal entries, locks and undo as the CLI."""
from __future__ import annotations

from enum import StrEnum
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...ops import Session
from ...storage import operations as storage_ops
from ...storage.support import POOL_TYPES
from ..auth import Principal, operator, viewer
from .common import ERRORS, HostRef, HostRefs, session, submit

router = APIRouter(prefix="/pools", tags=["pools"], dependencies=[Depends(viewer)], responses=ERRORS)

class PoolCreate(BaseModel):
    name: str
    host: str = Field(description="Host to create it on")
    type: Literal[POOL_TYPES]  # the CLI's --type choices (Literal of the tuple: checked here, 400)
    path: str | None = Field(None, description="Target: directory (dir), mount point (fs, netfs), device dir (iscsi)")
    source_devices: list[str] = Field(default_factory=list, description="Block devices (fs: one; logical: the PVs)")
    source_host: str | None = Field(None, description="NFS server (netfs) or iSCSI portal HOST[:PORT]")
    source_path: str | None = Field(None, description="Exported directory (netfs)")
    source_format: str | None = None
    target_iqn: str | None = None
    initiator_iqn: str | None = None
    chap_user: str | None = None
    chap_secret: str | None = Field(None, description="The CHAP secret (with chap_user); never journaled")
    build: bool = False
    start: bool = True
    autostart: bool = False


class Action(StrEnum):
    start = "start"
    stop = "stop"
    refresh = "refresh"
    autostart = "autostart"
    no_autostart = "no-autostart"


@router.get("")
def pools_list(host: HostRefs = None, all: bool = False, s: Session = Depends(session)) -> dict:
    """Pools of every host (running ones; `all` adds the others), with their sizes."""
    return storage_ops.pool_list(s, host, all)


@router.get("/{name}")
def pools_info(name: str, host: HostRef, s: Session = Depends(session)) -> dict:
    """One pool: type, state, sizes, path, source, volume count."""
    return storage_ops.pool_info(s, name, host)


@router.post("", status_code=202)
def pools_create(request: Request, body: PoolCreate, who: Principal = Depends(operator),
                 s: Session = Depends(session)) -> JSONResponse:
    """Define, build and start a pool (the same one again is a no-op)."""
    from ...core.errors import UsageError

    if body.chap_secret and not body.chap_user:
        raise UsageError("chap_secret needs chap_user")
    h = s.host(body.host)
    args = body.model_dump(exclude={"name", "host", "type", "chap_secret", "start"})
    return submit(request, who, "pool.create", f"{h.name}/{body.name}", lambda js: storage_ops.pool_create(
        js, body.name, h.name, body.type, password=body.chap_secret if body.chap_user else None,
        start=body.start, **args))


_ACTIONS = {
    "start": lambda s, n, h: storage_ops.pool_start(s, n, h),
    "stop": lambda s, n, h: storage_ops.pool_stop(s, n, h),
    "refresh": lambda s, n, h: storage_ops.pool_refresh(s, n, h),
    "autostart": lambda s, n, h: storage_ops.pool_autostart(s, n, h, True),
    "no-autostart": lambda s, n, h: storage_ops.pool_autostart(s, n, h, False),
}


@router.post("/{name}/actions/{action}", status_code=202)
def pools_action(request: Request, name: str, action: Action, host: HostRef, who: Principal = Depends(operator),
                 s: Session = Depends(session)) -> JSONResponse:
    """Start, stop (refused while running VMs use it), refresh, autostart or no-autostart a pool."""
    h = s.host(host)
    kind = "pool.autostart" if action is Action.no_autostart else f"pool.{action.value}"
    return submit(request, who, kind, f"{h.name}/{name}", lambda js: _ACTIONS[action.value](js, name, h.name))


@router.delete("/{name}", status_code=202)
def pools_delete(request: Request, name: str, host: HostRef, wipe: bool = False,
                 who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Stop and undefine a pool (refused while VMs have disks in it); `wipe=true` also deletes its
    volumes and what build made — the CLI asks first, here asking for it is the confirmation."""
    h = s.host(host)
    return submit(request, who, "pool.delete", f"{h.name}/{name}",
                  lambda js: storage_ops.pool_delete(js, name, h.name, wipe=wipe))
