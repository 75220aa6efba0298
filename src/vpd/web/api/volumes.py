"""/api/v1/volumes: volumes in the pools of the inventory's hosts (`vpd vol ...`), through
storage.operations. Upload and download are not here yet: they move a file between the
caller and the host, which wants a streamed body rather than a path on the server."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...ops import Session
from ...storage import operations as storage_ops
from ...storage.volumes import FORMATS
from ..auth import Principal, operator, viewer
from .common import ERRORS, HostRef, HostRefs, session, submit

router = APIRouter(prefix="/volumes", tags=["volumes"], dependencies=[Depends(viewer)], responses=ERRORS)


class VolumeCreate(BaseModel):
    host: str
    pool: str
    name: str
    size: str | int | None = Field(None, description="e.g. 10G (default with backing: the backing volume's size)")
    format: Literal[FORMATS] = "qcow2"
    backing: str | None = Field(None, description="A volume of the same pool: the new one is its qcow2 overlay")


class VolumeClone(BaseModel):
    new_name: str
    to_pool: str | None = Field(None, description="Another pool of the same host")


class VolumeResize(BaseModel):
    size: str | int = Field(description="e.g. 20G")
    shrink: bool = Field(False, description="Allow a smaller size (data past it is lost)")


@router.get("")
def volumes_list(pool: str | None = None, host: HostRefs = None, s: Session = Depends(session)) -> dict:
    """Volumes of every running pool (or of `pool`) on every host."""
    return storage_ops.vol_list(s, pool, host)


@router.get("/{pool}/{name}")
def volumes_info(pool: str, name: str, host: HostRef, s: Session = Depends(session)) -> dict:
    """One volume, and the VMs of its host that have it as a disk (`used_by`)."""
    return storage_ops.vol_info(s, pool, name, host)


@router.post("", status_code=202)
def volumes_create(request: Request, body: VolumeCreate, who: Principal = Depends(operator),
                   s: Session = Depends(session)) -> JSONResponse:
    """Create a volume (vol-create-as), or a qcow2 overlay on `backing`."""
    h = s.host(body.host)
    return submit(request, who, "vol.create", f"{h.name}/{body.pool}/{body.name}", lambda js: storage_ops.vol_create(
        js, body.pool, body.name, h.name, body.size, body.format, body.backing))


@router.post("/{pool}/{name}/clone", status_code=202)
def volumes_clone(request: Request, pool: str, name: str, host: HostRef, body: VolumeClone,
                  who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Full copy of a volume into the same pool or `to_pool`."""
    h = s.host(host)
    return submit(request, who, "vol.clone", f"{h.name}/{pool}/{name}", lambda js: storage_ops.vol_clone(
        js, pool, name, body.new_name, h.name, body.to_pool))


@router.post("/{pool}/{name}/resize", status_code=202)
def volumes_resize(request: Request, pool: str, name: str, host: HostRef, body: VolumeResize,
                   who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    h = s.host(host)
    return submit(request, who, "vol.resize", f"{h.name}/{pool}/{name}", lambda js: storage_ops.vol_resize(
        js, pool, name, body.size, h.name, body.shrink))


@router.delete("/{pool}/{name}", status_code=202)
def volumes_delete(request: Request, pool: str, name: str, host: HostRef, who: Principal = Depends(operator),
                   s: Session = Depends(session)) -> JSONResponse:
    """Delete a volume and its data (refused while a VM has it as a disk)."""
    h = s.host(host)
    return submit(request, who, "vol.delete", f"{h.name}/{pool}/{name}",
                  lambda js: storage_ops.vol_delete(js, pool, name, h.name))
