"""What the routers share: a Session per request, and submitting a job (202 + its id)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse

from ...ops import Session
from ...ops.results import jsonable
from ..auth import Principal
from ..jobs import Job


def session(request: Request) -> Session:
    """Dependency: this request's Session (shared connections, its own notices)."""
    return request.app.state.backend.session()


def run_in_job(request: Request, who: Principal, kind: str, target: str,
               fn: Callable[[Session], Any]) -> Job:
    """Run fn(session) in a background job with a Session of its own; its result is made JSON."""
    backend = request.app.state.backend
    return request.app.state.jobs.submit(kind, target, who.token_id, lambda: jsonable(fn(backend.session())))


def accepted(job: Job) -> JSONResponse:
    return JSONResponse({"job": job.id, "state": job.state, "kind": job.kind, "target": job.target,
                         "href": f"/api/v1/jobs/{job.id}", "events": f"/api/v1/jobs/{job.id}/events"},
                        status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


def submit(request: Request, who: Principal, kind: str, target: str, fn: Callable[[Session], Any]) -> JSONResponse:
    """run_in_job + accepted: what every mutating route answers (202, the job, its links)."""
    return accepted(run_in_job(request, who, kind, target, fn))


# Query parameters most resources share (a required host, or a filter of hosts).
HostRef = Annotated[str, Query(description="The host (inventory name, FQDN or address)")]
MaybeHost = Annotated[str | None, Query(description="The host (default: found across the inventory)")]
HostRefs = Annotated[list[str] | None, Query(description="Only these hosts (repeatable)")]


ERRORS = {  # for the OpenAPI schema: the shape every error answer has
    400: {"description": "wrong request (the CLI's exit 2): `error`, `hint`"},
    401: {"description": "no valid token"},
    403: {"description": "the token may not do this (viewer, read-only server, missing CSRF header)"},
    404: {"description": "no such host/VM/job"},
    409: {"description": "another operation holds the object (Busy)"},
}
