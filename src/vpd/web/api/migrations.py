"""/api/v1/migrations: run `migration.operations.migrate_vm` (what `vpd migrate` runs:
preflight, temporary access, job, validation, report) in a job; list past migrations."""
from __future__ import annotations

import dataclasses
import typing

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model

from ...core import journal
from ...migration.migrate import MigrateOptions
from ...migration.operations import migrate_vm
from ...ops import Session
from ...vm import operations as vm_ops
from ..auth import Principal, operator, viewer
from .common import ERRORS, accepted, run_in_job, session

router = APIRouter(prefix="/migrations", tags=["migrations"], dependencies=[Depends(viewer)], responses=ERRORS)


class _MigrationTarget(BaseModel):
    vm: str = Field(description="The VM to migrate")
    to: str = Field(description="Destination host (inventory name, FQDN or address)")
    source: str | None = Field(None, alias="from", description="Source host (default: where the VM runs)")

    model_config = {"populate_by_name": True}


def _option_fields() -> dict:
    """`MigrateOptions`' fields, types and defaults as request fields: the CLI and the API share
    one definition of what a migration can be asked for, so they cannot drift apart."""
    hints = typing.get_type_hints(MigrateOptions)
    return {f.name: (hints[f.name], f.default) for f in dataclasses.fields(MigrateOptions)}


MigrationRequest = create_model("MigrationRequest", __base__=_MigrationTarget, **_option_fields())


@router.post("", status_code=202)
def migrations_create(request: Request, body: MigrationRequest, who: Principal = Depends(operator),
                      s: Session = Depends(session)) -> JSONResponse:
    """Migrate a VM: 202 and a job whose result is the migration report (a failed migration's
    job has the report in `error.report`)."""
    opts = MigrateOptions(**body.model_dump(exclude={"vm", "to", "source"}))  # UsageError -> 400
    dst = s.host(body.to)  # unknown host -> 404 now, not in the job
    src = s.host(body.source).name if body.source else vm_ops.locate(s, body.vm, prefer_running=True).host.name
    return accepted(run_in_job(request, who, "migrate", f"{src}/{body.vm}->{dst.name}",
                               lambda js: migrate_vm(js, body.vm, body.to, opts, body.source)))


@router.get("")
def migrations_list(limit: int = Query(10, ge=1, le=1000)) -> list[dict]:
    """Past migrations with their reports, newest first (from the journal: `vpd history`)."""
    return journal.entries(limit, "migrate")
