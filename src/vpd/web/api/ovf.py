"""/api/v1/ovf: export a VM as an OVF package or OVA, import one as a new VM (`vpd export`,
`vpd import`), through ovf.operations. The package paths are on the machine running vpd,
as for the CLI."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...core.errors import UsageError
from ...ops import Session
from ...ovf import operations as ovf_ops
from ...vm import operations as vm_ops
from ..auth import Principal, operator, viewer
from .common import ERRORS, session, submit

router = APIRouter(prefix="/ovf", tags=["ovf"], dependencies=[Depends(viewer)], responses=ERRORS)


class Export(BaseModel):
    vm: str
    host: str | None = None
    ovf_dir: Path | None = Field(None, description="Write an OVF package into this new directory")
    ova_file: Path | None = Field(None, description="Or write a single OVA file")
    disk_format: Literal["vmdk", "qcow2"] = "vmdk"
    allow_running: bool = Field(False, description="Export a running guest (crash-consistent disks)")


class Import(BaseModel):
    package: Path = Field(description="An OVF directory, .ovf or .ova")
    host: str
    name: str | None = None
    pool: str | None = None
    networks: dict[str, str] = Field(default_factory=dict,
                                     description='libvirt network per OVF network; "*" maps every NIC')
    start: bool = False
    wait_boot: bool = False


@router.post("/export", status_code=202)
def ovf_export(request: Request, body: Export, who: Principal = Depends(operator),
               s: Session = Depends(session)) -> JSONResponse:
    """Export a VM as a DMTF OVF 2.0 package with a SHA256 manifest."""
    if bool(body.ovf_dir) == bool(body.ova_file):
        raise UsageError("give exactly one of ovf_dir or ova_file")
    found = vm_ops.locate(s, body.vm, body.host)
    return submit(request, who, "ovf.export", f"{found.host.name}/{body.vm}", lambda js: ovf_ops.export(
        js, body.vm, body.host, body.ovf_dir, body.ova_file, body.disk_format, body.allow_running))


@router.post("/import", status_code=202)
def ovf_import(request: Request, body: Import, who: Principal = Depends(operator),
               s: Session = Depends(session)) -> JSONResponse:
    """Import a package as a new VM (its name checked against every host first)."""
    if body.wait_boot and not body.start:
        raise UsageError("wait_boot needs start")
    h = s.host(body.host)
    return submit(request, who, "ovf.import", f"{h.name}/{body.name or body.package.name}", lambda js: ovf_ops.import_(
        js, body.package, h.name, body.name, body.pool, body.networks, body.start, body.wait_boot))
