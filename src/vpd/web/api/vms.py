"""/api/v1/vms: VMs across the inventory (or one host), their details, XML and lifecycle
actions. Actions run `vm.operations.act` — the CLI's `vpd vm start|shutdown|...` — in a job."""
from __future__ import annotations

from enum import StrEnum

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...ops import Session
from ...vm import operations as vm_ops
from ...vm.inventory import list_vms
from ..auth import Principal, operator, viewer
from .common import ERRORS, accepted, run_in_job, session

router = APIRouter(prefix="/vms", tags=["vms"], dependencies=[Depends(viewer)], responses=ERRORS)


class Action(StrEnum):
    start = "start"
    shutdown = "shutdown"
    destroy = "destroy"  # force off
    reboot = "reboot"
    pause = "pause"
    resume = "resume"


class ActionOptions(BaseModel):
    wait_boot: bool | None = Field(None, description="start: wait for the lab guest's boot marker")
    timeout: float | None = Field(None, gt=0, le=3600, description="shutdown: seconds to wait")
    force: bool | None = Field(None, description="shutdown: power off after the timeout")


_OPTIONS = {"start": {"wait_boot"}, "shutdown": {"timeout", "force"}}


def vm_rows(s: Session, hosts: list[str] | None = None, include_inactive: bool = True) -> dict:
    per_host = list_vms(s.conns, s.hosts(hosts), include_inactive)
    return {"vms": [v.to_dict() for h in per_host for v in h.vms],
            "hosts": [{"host": h.host, "error": h.error} for h in per_host]}


@router.get("")
def vms_list(host: list[str] = Query(default=[], description="Only these hosts (repeatable)"),
             all: bool = Query(True, description="Include VMs that are not running"),
             s: Session = Depends(session)) -> dict:
    """Every VM of every host (one bulk-stats call per host); a host that does not answer is
    listed in `hosts` with its error."""
    return vm_rows(s, host, all)


@router.get("/{name}")
def vms_detail(name: str, host: str | None = None, s: Session = Depends(session)) -> dict:
    """State, vCPUs, memory, disks, interfaces, autostart and persistence (found across the
    inventory unless `host` is given)."""
    return vm_ops.info(s, name, host)


@router.get("/{name}/xml")
def vms_xml(name: str, host: str | None = None, inactive: bool = False, s: Session = Depends(session)) -> dict:
    """The VM's libvirt XML (the persistent definition with `inactive`)."""
    return vm_ops.dumpxml(s, name, host, inactive)


class XmlEdit(BaseModel):
    xml: str = Field(description="The whole edited definition (as `vm edit` hands an editor)")


@router.put("/{name}/xml", status_code=202)
def vms_edit(request: Request, name: str, body: XmlEdit, host: str | None = None,
             who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Replace the persistent definition (`vpd vm edit`): checked before it is applied (it parses,
    keeps name and UUID, passes libvirt's validation); a rejected edit fails the job with 400."""
    located = vm_ops.locate(s, name, host, prefer_running=False)

    def edit(js: Session) -> dict:
        again, current = vm_ops.editable_xml(js, name, located.host.name)
        if body.xml.strip() == current.strip():
            return {"host": located.host.name, "name": name, "changed": False}
        return vm_ops.apply_edit(js, again, body.xml)

    return accepted(run_in_job(request, who, "vm.edit", f"{located.host.name}/{name}", edit))


def submit_action(request: Request, who: Principal, s: Session, name: str, action: str, host: str | None,
                  options: dict):
    """Check the request now (unknown VM: 404, ambiguous: 400), then run the action in a job."""
    unknown = set(options) - _OPTIONS.get(action, set())
    if unknown:
        from ...core.errors import UsageError

        raise UsageError(f"{action} takes no option {', '.join(sorted(unknown))}")
    found = vm_ops.locate(s, name, host, prefer_running=vm_ops.prefers_running(action))
    return run_in_job(request, who, f"vm.{action}", f"{found.host.name}/{name}",
                      lambda js: vm_ops.act(js, action, name, host, **options))


@router.post("/{name}/actions/{action}", status_code=202)
def vms_action(request: Request, name: str, action: Action, host: str | None = None,
               options: ActionOptions = Body(default_factory=ActionOptions),
               who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Start, shut down, force off (destroy), reboot, pause or resume a VM: 202 and a job."""
    job = submit_action(request, who, s, name, action.value, host, options.model_dump(exclude_none=True))
    return accepted(job)
