"""/api/v1/jobs: the state and result of a job, and its progress as Server-Sent Events."""
from __future__ import annotations

import asyncio
import dataclasses
import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ..auth import viewer
from ..errors import HttpError
from ..jobs import Job
from .common import ERRORS

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(viewer)], responses=ERRORS)


def _job(request: Request, job_id: str) -> Job:
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise HttpError(404, f"no job {job_id!r} on this server",
                        hint="jobs live as long as the server; `vpd journal` keeps every operation")
    return job


@router.get("")
def jobs_list(request: Request) -> list[dict]:
    """This server's jobs, newest first."""
    return [j.to_dict() for j in request.app.state.jobs.list()]


@router.get("/{job_id}")
def jobs_detail(request: Request, job_id: str) -> dict:
    """state: queued, running, succeeded or failed; `result` or `error` (message, hint, report)."""
    return _job(request, job_id).to_dict()


def _sse(kind: str, data: dict, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`progress` events (operation, step, done, total, unit, at, "
                                            "and `data`: structured fields such as a migration tick's "
                                            "data_remaining, dirty_rate_bps, throughput_bps), `state` on each "
                                            "change, and `end` with the job when it is done"}})
async def jobs_events(request: Request, job_id: str) -> StreamingResponse:
    """The job's progress events as Server-Sent Events: those already emitted first (or those
    after `Last-Event-ID`), then live ones; the stream ends with an `end` event."""
    job = _job(request, job_id)
    try:
        start = int(request.headers.get("last-event-id", "-1")) + 1
    except ValueError:
        start = 0

    async def stream():
        flag = job.watch()
        sent, state = start, None
        try:
            while True:
                flag.clear()
                while sent < len(job.events):
                    yield _sse("progress", dataclasses.asdict(job.events[sent]), sent)
                    sent += 1
                if job.state != state:
                    state = job.state
                    if job.done:
                        yield _sse("end", job.to_dict())
                        return
                    yield _sse("state", {"state": state})
                try:
                    await asyncio.wait_for(flag.wait(), timeout=15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    return
        finally:
            job.unwatch(flag)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
