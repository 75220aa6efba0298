"""/api/v1/vms/{name}/snapshots: a VM's snapshot tree (`vpd snapshot ...`), through
snapshot.operations."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...ops import Session
from ...snapshot import operations as snap_ops
from ...vm import operations as vm_ops
from ..auth import Principal, operator, viewer
from .common import ERRORS, MaybeHost, session, submit

router = APIRouter(prefix="/vms", tags=["snapshots"], dependencies=[Depends(viewer)], responses=ERRORS)


class SnapshotCreate(BaseModel):
    name: str | None = Field(None, description="Default: snap-DATE-TIME")
    disk_only: bool = Field(False, description="External overlay per disk, no memory")
    description: str | None = None


@router.get("/{name}/snapshots")
def snapshots_list(name: str, host: MaybeHost = None, s: Session = Depends(session)) -> dict:
    """The VM's snapshot tree, oldest first; `current` names the current one."""
    return snap_ops.list_(s, name, host)


@router.post("/{name}/snapshots", status_code=202)
def snapshots_create(request: Request, name: str, host: MaybeHost = None,
                     body: SnapshotCreate | None = None, who: Principal = Depends(operator),
                     s: Session = Depends(session)) -> JSONResponse:
    """Take a snapshot (internal, with memory when running; or external with disk_only)."""
    from ...snapshot import snapshot_name

    body = body or SnapshotCreate()
    if body.name is not None:
        snapshot_name(body.name)  # a bad name: 400 now
    found = vm_ops.locate(s, name, host)
    return submit(request, who, "snapshot.create", f"{found.host.name}/{name}", lambda js: snap_ops.create(
        js, name, body.name, host, body.disk_only, body.description))


@router.post("/{name}/snapshots/{snapshot}/revert", status_code=202)
def snapshots_revert(request: Request, name: str, snapshot: str, host: MaybeHost = None,
                     who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Bring the VM's disks, and its memory when saved, back to the snapshot."""
    found = vm_ops.locate(s, name, host, prefer_running=False)
    return submit(request, who, "snapshot.revert", f"{found.host.name}/{name}",
                  lambda js: snap_ops.revert(js, name, snapshot, host))


@router.delete("/{name}/snapshots/{snapshot}", status_code=202)
def snapshots_delete(request: Request, name: str, snapshot: str, host: MaybeHost = None,
                     who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Delete a snapshot; an external one is merged back into its base first."""
    found = vm_ops.locate(s, name, host, prefer_running=False)
    return submit(request, who, "snapshot.delete", f"{found.host.name}/{name}",
                  lambda js: snap_ops.delete(js, name, snapshot, host))
