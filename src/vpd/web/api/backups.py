"""/api/v1/backups: back a VM up, list and verify backups on a host, restore one as a new VM
(`vpd backup ...`, `vpd restore`), through backup.operations. Paths are on the VM's host."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...backup import operations as backup_ops
from ...ops import Session
from ...vm import operations as vm_ops
from ..auth import Principal, operator, viewer
from .common import ERRORS, HostRef, session, submit

router = APIRouter(prefix="/backups", tags=["backups"], dependencies=[Depends(viewer)], responses=ERRORS)


class BackupCreate(BaseModel):
    vm: str
    to: str = Field(description="Directory on the VM's host; backups go to DIR/VM/ID/")
    host: str | None = Field(None, description="The VM's host (default: found across the inventory)")
    incremental: bool = Field(False, description="Only the blocks written since the last backup in DIR")


class BackupRef(BaseModel):
    path: str = Field(description="The backup's directory (ROOT/VM/ID) on the host")
    host: str


class Restore(BackupRef):
    new_name: str | None = Field(None, alias="as", description="A new name, UUID and MACs (a copy beside it)")
    pool: str | None = None
    start: bool = False
    wait_boot: bool = False

    model_config = {"populate_by_name": True}


@router.get("")
def backups_list(host: HostRef, root: Annotated[str, Query(description="The backup directory on the host")],
                 s: Session = Depends(session)) -> dict:
    """Finished backups under `root` on `host`."""
    return backup_ops.list_(s, root, host)


@router.post("", status_code=202)
def backups_create(request: Request, body: BackupCreate, who: Principal = Depends(operator),
                   s: Session = Depends(session)) -> JSONResponse:
    """Back up a running or stopped VM: XML, disks (qcow2), manifest with checksums."""
    found = vm_ops.locate(s, body.vm, body.host)
    return submit(request, who, "backup.create", f"{found.host.name}/{body.vm}", lambda js: backup_ops.backup(
        js, body.vm, body.to, body.host, body.incremental))


@router.post("/verify", status_code=202)
def backups_verify(request: Request, body: BackupRef, who: Principal = Depends(operator),
                   s: Session = Depends(session)) -> JSONResponse:
    """Recompute the checksums of a backup and of every backup it builds on; a damaged one
    fails the job with the per-file report in `error.report`."""
    h = s.host(body.host)
    return submit(request, who, "backup.verify", f"{h.name}:{body.path}",
                  lambda js: backup_ops.verify(js, body.path, h.name))


@router.post("/restore", status_code=202)
def backups_restore(request: Request, body: Restore, who: Principal = Depends(operator),
                    s: Session = Depends(session)) -> JSONResponse:
    """Restore a backup (its chain, verified first) as a new VM on `host`."""
    h = s.host(body.host)
    return submit(request, who, "backup.restore", f"{h.name}:{body.path}", lambda js: backup_ops.restore(
        js, body.path, h.name, body.new_name, body.pool, body.start, body.wait_boot))
