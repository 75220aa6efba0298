"""The console's pages: server-rendered HTML (Jinja2) that shows the state without JavaScript;
htmx (served from the package, installed from npm at set-up) refreshes tables and sends the
actions — the same job submission the REST API uses."""
from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..core import journal
from ..core.errors import VpdError
from ..ct import operations as ct_ops
from ..host.facts import list_hosts
from ..ops import Session
from ..snapshot import operations as snap_ops
from ..vm import operations as vm_ops
from .api.common import run_in_job, session
from .api.vms import Action, submit_action, vm_rows
from .auth import COOKIE, Principal, form_token, identify, operator, operator_form, viewer
from .errors import HttpError, error_body
from .jobs import Job

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["when"] = lambda t: datetime.datetime.fromtimestamp(t).strftime("%F %T") if t else ""
templates.env.filters["q"] = lambda s: quote(str(s), safe="")


def add_templates(directory: Path) -> None:
    """Let a package that plugs in pages (`vpd.web.pages`) keep its templates beside it; they
    extend this package's base.html."""
    from jinja2 import ChoiceLoader, FileSystemLoader

    loaders = [FileSystemLoader(str(directory)), templates.env.loader]
    templates.env.loader = ChoiceLoader([x for x in loaders if x is not None])
router = APIRouter(include_in_schema=False)

# Which buttons a VM in each state gets (the CLI refuses the others with a message anyway).
ACTIONS_BY_STATE = {
    "shut off": ["start"], "crashed": ["start", "destroy"],
    "running": ["shutdown", "reboot", "pause", "destroy"], "blocked": ["shutdown", "reboot", "pause", "destroy"],
    "paused": ["resume", "destroy"], "shutting down": ["destroy"], "suspended": ["destroy"],
}
LABELS = {"start": "Start", "shutdown": "Shut down", "reboot": "Reboot", "pause": "Pause", "resume": "Resume",
          "destroy": "Force off"}
SORTS = ("name", "host", "state")


def render(request: Request, name: str, who: Principal | None, status: int = 200, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {
        "who": who, "read_only": request.app.state.read_only, "assets": request.app.state.assets,
        "csrf": form_token(request), "nav": request.app.state.nav,
        "actions_by_state": ACTIONS_BY_STATE, "labels": LABELS, **context}, status_code=status)


def _local(path: str | None) -> str:
    """Only a path of this site after login (no `//evil.example`)."""
    return path if path and path.startswith("/") and not path.startswith("//") else "/vms"


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/vms", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None):
    return render(request, "login.html", identify(request), next=_local(next))


@router.post("/login")
def login(request: Request, token: str = Form(""), next: str = Form("/vms")):
    info = request.app.state.tokens.verify(token.strip())
    if info is None:
        return render(request, "login.html", None, status=401, next=_local(next),
                      error="that token is not valid (revoked, mistyped, or from another vpd)")
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(COOKIE, token.strip(), max_age=12 * 3600, httponly=True, samesite="strict",
                        secure=request.app.state.secure_cookies, path="/")
    return response


@router.post("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/hosts")
def hosts_page(request: Request, who: Principal = Depends(viewer), s: Session = Depends(session)):
    return render(request, "hosts.html", who, hosts=list_hosts(s.conns, s.hosts()), source=s.inventory.source)


def _vm_table(s: Session, host: str | None, sort: str, state: str | None) -> dict:
    data = vm_rows(s, [host] if host else None)
    vms = [v for v in data["vms"] if not state or v["state"] == state]
    key = sort if sort in SORTS else "name"
    vms.sort(key=lambda v: (str(v[key]), v["name"], v["host"]))
    return {"vms": vms, "host_errors": [h for h in data["hosts"] if h["error"]],
            "host": host or "", "sort": key, "state": state or "",
            "query": "&".join(f"{k}={quote(v)}" for k, v in (("host", host), ("sort", key), ("state", state)) if v)}


def _ct_table(s: Session, host: str | None) -> dict:
    """Containers beside the VMs: every host's incusd, one request each; the hosts whose incusd
    does not answer are named once (most inventories run Incus on some hosts only)."""
    data = ct_ops.list_cts(s, (host,) if host else ())
    cts = sorted((c for h in data["hosts"] for c in h["containers"]), key=lambda c: (c["name"], c["host"]))
    return {"containers": cts, "ct_hosts_down": [h["host"] for h in data["hosts"] if h["error"]],
            "ct_query": f"host={quote(host)}" if host else ""}


@router.get("/vms")
def vms_page(request: Request, host: str | None = None, sort: str = "name", state: str | None = None,
             who: Principal = Depends(viewer), s: Session = Depends(session)):
    return render(request, "vms.html", who, hosts=[h.name for h in s.hosts()], states=list(ACTIONS_BY_STATE),
                  **_vm_table(s, host or None, sort, state or None), **_ct_table(s, host or None))


@router.get("/fragments/ct-rows")
def ct_rows(request: Request, host: str | None = None, who: Principal = Depends(viewer),
            s: Session = Depends(session)):
    """The containers table's body alone, for htmx's polling refresh."""
    return render(request, "ct_rows.html", who, **_ct_table(s, host or None))


@router.get("/fragments/vm-rows")
def vms_rows(request: Request, host: str | None = None, sort: str = "name", state: str | None = None,
             who: Principal = Depends(viewer), s: Session = Depends(session)):
    """The table's body alone, for htmx's polling refresh."""
    return render(request, "vm_rows.html", who, **_vm_table(s, host or None, sort, state or None))


def last_migration(name: str, scan: int = 200) -> dict | None:
    """The newest journal entry of a migration (or its dry run) of VM `name` that kept its
    report: what the VM page shows without JavaScript."""
    for entry in journal.entries(scan, "migrate"):
        target, result = entry.get("target") or "", entry.get("result")
        if isinstance(result, dict) and "preflight" not in result:
            result = result.get("report")  # a failed migration: {"error", "report"}
        if f"/{name}->" in target and isinstance(result, dict) and "preflight" in result:
            return {**entry, "report": result}
    return None


@router.get("/vms/{name}/console")
def vm_console_page(request: Request, name: str, host: str | None = None, lines: int = Query(500, ge=1, le=100_000),
                    who: Principal = Depends(viewer), s: Session = Depends(session)):
    """The serial console: its history (the log virtlogd keeps) for everyone, and for operators
    the live console in xterm.js over the websocket /api/v1/vms/{name}/console."""
    found = vm_ops.locate(s, name, host)
    try:
        history, history_error = vm_ops.console_log(s, name, found.host.name, lines), None
    except VpdError as exc:  # the page still offers the live console
        history, history_error = None, exc.message
    return render(request, "console.html", who, vm_name=name, host=found.host.name, history=history,
                  history_error=history_error, running=bool(found.domain.isActive()), lines=lines)


def _migration_report(job: Job) -> dict | None:
    if job.kind != "migrate":
        return None
    report = job.result if isinstance(job.result, dict) else (job.error or {}).get("report")
    return report if isinstance(report, dict) and "preflight" in report else None


@router.get("/fragments/jobs/{job_id}/migration-report")
def migration_report(request: Request, job_id: str, who: Principal = Depends(viewer)):
    """A migration job's report as HTML, for the migrate dialog once the job's stream ended."""
    job = request.app.state.jobs.get(job_id)
    report = _migration_report(job) if job is not None else None
    if job is None or (report is None and job.done and job.error):
        return render(request, "job_fragment.html", who, status=404 if job is None else 200, job=job,
                      error=job.error if job else {"error": f"no job {job_id!r} on this server"})
    if report is None:
        return render(request, "job_fragment.html", who, job=job, error=None)
    return render(request, "migration_report.html", who, report=report)


def job_response(request: Request, csrf: str, submit: Callable[[Principal], Job]) -> Response:
    """Run a form's change in a job. htmx: the job's fragment (errors too, with their status);
    a plain form: a redirect to the job's page, or the error page."""
    htmx = request.headers.get("HX-Request") == "true"
    try:
        who = operator_form(request, csrf)
        job = submit(who)
    except (VpdError, HttpError) as exc:
        body = error_body(exc)
        return render(request, "job_fragment.html" if htmx else "error.html", identify(request),
                      status=body["status"], job=None, error=body)
    if htmx:
        return render(request, "job_fragment.html", who, status=202, job=job, error=None)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def _job_fragment(request: Request, submit: Callable[[Principal], Job]) -> Response:
    """The pages' buttons (htmx, with the CSRF header): a fragment naming the job, which then
    follows it. Errors come back as a fragment too, with their HTTP status."""
    try:
        who = operator(request)
        job = submit(who)
    except (VpdError, HttpError) as exc:
        return render(request, "job_fragment.html", identify(request), status=error_body(exc)["status"],
                      job=None, error=error_body(exc))
    return render(request, "job_fragment.html", who, status=202, job=job, error=None)


@router.post("/vms/{name}/actions/{action}")
def vm_action(request: Request, name: str, action: Action, host: str | None = Query(None),
              s: Session = Depends(session)) -> Response:
    return _job_fragment(request, lambda who: submit_action(request, who, s, name, action.value, host, {}))


@router.post("/vms/{name}/snapshots")
def vm_snapshot(request: Request, name: str, host: str | None = Query(None), snapshot: str = Form(""),
                s: Session = Depends(session)) -> Response:
    """Take a snapshot (the name from the form, or one made from the time)."""
    def submit(who: Principal) -> Job:
        from ..snapshot import snapshot_name

        chosen = snapshot_name(snapshot.strip() or None)
        found = vm_ops.locate(s, name, host)
        return run_in_job(request, who, "snapshot.create", f"{found.host.name}/{name}",
                          lambda js: snap_ops.create(js, name, chosen, found.host.name))

    return _job_fragment(request, submit)


@router.post("/vms/{name}/snapshots/{snapshot}/revert")
def vm_snapshot_revert(request: Request, name: str, snapshot: str, host: str | None = Query(None),
                       s: Session = Depends(session)) -> Response:
    def submit(who: Principal) -> Job:
        found = vm_ops.locate(s, name, host, prefer_running=False)
        return run_in_job(request, who, "snapshot.revert", f"{found.host.name}/{name}",
                          lambda js: snap_ops.revert(js, name, snapshot, found.host.name))

    return _job_fragment(request, submit)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, partial: bool = False, who: Principal = Depends(viewer)):
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise HttpError(404, f"no job {job_id!r} on this server")
    response = render(request, "job_fragment.html" if partial else "job.html", who, job=job, error=job.error,
                      report=None if partial else _migration_report(job))
    if partial and job.done:  # the followed job ended: the VM table refreshes now, not at its next poll
        response.headers["HX-Trigger"] = "vpd-refresh"
    return response


@router.get("/journal")
def journal_page(request: Request, limit: int = Query(50, ge=1, le=1000), operation: str | None = None,
                 who: Principal = Depends(viewer)):
    return render(request, "journal.html", who, rows=journal.entries(limit, operation or None),
                  operation=operation or "", limit=limit)
