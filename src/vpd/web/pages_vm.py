"""The VM page's forms: the XML edit flow of `vpd vm edit`, disks and NICs attached and detached
(`vpd vm disk|iface attach|detach`), the VM's backups. Plain HTML forms that work without
JavaScript (their hidden `csrf` field stands in for the header htmx sends); with htmx, the device
forms answer a job fragment in place instead of a redirect to the job's page."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from ..backup import operations as backup_ops
from ..core import journal
from ..core.errors import UsageError, VpdError
from ..network.ifaces import NIC_MODELS
from ..ops import Session
from ..snapshot import operations as snap_ops
from ..storage.disks import BUSES
from ..vm import devices
from ..vm import operations as vm_ops
from .api.common import run_in_job, session
from .auth import Principal, acting, operator_form, viewer
from .errors import HttpError, error_body
from .jobs import Job
from .pages import job_response, last_migration, render

router = APIRouter(include_in_schema=False)

# What the VM page says after a redirect from the editor (fixed texts: nothing from the URL is shown).
EDITED = {"now": "Definition updated.", "next-boot": "Definition updated: it applies at the VM's next boot.",
          "unchanged": "No changes: the definition is as it was."}


def digest(xml: str) -> str:
    """Names the definition the editor was opened on, to refuse applying over a newer one."""
    return hashlib.sha256(xml.encode()).hexdigest()[:16]


def _vm_url(name: str, host: str, **query: str) -> str:
    extra = "".join(f"&{k}={quote(v, safe='')}" for k, v in query.items())
    return f"/vms/{quote(name, safe='')}?host={quote(host, safe='')}{extra}"


def _editor(request: Request, who: Principal, name: str, host: str, xml: str, base: str, status: int = 200,
            error: dict | None = None):
    return render(request, "vm_edit.html", who, status=status, vm_name=name, host=host, xml=xml, base=base,
                  error=error)


def _may_edit(request: Request) -> Principal:
    """The editor shows the definition with its secrets (as `virsh edit`): operators only."""
    who = acting(request)
    if who is None:
        viewer(request)  # no token at all: log in first
        raise HttpError(403, "editing a definition needs an operator token on a console that is not read-only")
    return who


@router.get("/vms/{name}/edit")
def edit_page(request: Request, name: str, host: str | None = None, s: Session = Depends(session)):
    who = _may_edit(request)
    located, xml = vm_ops.editable_xml(s, name, host)
    return _editor(request, who, name, located.host.name, xml, digest(xml))


@router.post("/vms/{name}/edit")
def edit_apply(request: Request, name: str, host: str | None = Query(None), xml: str = Form(...),
               base: str = Form(""), csrf: str = Form(""), s: Session = Depends(session)):
    """Apply the edited XML through `vm.operations.apply_edit` (the CLI's `vm edit`): checked
    first (it parses, keeps the name and UUID, passes libvirt's validation), then defined. A
    rejected edit comes back in the form with libvirt's or vpd's message, nothing changed."""
    who = operator_form(request, csrf)
    edited = xml.replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
    located, current = vm_ops.editable_xml(s, name, host)
    host_name = located.host.name
    if edited.strip() == current.strip():
        return RedirectResponse(_vm_url(name, host_name, edited="unchanged"), status_code=303)
    if base and base != digest(current):
        return _editor(request, who, name, host_name, edited, base, status=409, error={
            "error": f"the definition of {name} changed since this editor was opened",
            "hint": "copy your change, reload the editor and apply it again"})
    try:
        result = vm_ops.apply_edit(s, located, edited)
    except VpdError as exc:
        body = error_body(exc)
        return _editor(request, who, name, host_name, edited, base, status=body["status"], error=body)
    when = "next-boot" if result.get("applies") == "at next boot" else "now"
    return RedirectResponse(_vm_url(name, host_name, edited=when), status_code=303)


@router.get("/vms/{name}")
def vm_page(request: Request, name: str, host: str | None = None, edited: str | None = None,
            backups_in: str | None = None, who: Principal = Depends(viewer), s: Session = Depends(session)):
    info = vm_ops.info(s, name, host)
    xml = vm_ops.dumpxml(s, name, info["host"])["xml"]
    try:
        snapshots, snapshots_error = snap_ops.list_(s, name, info["host"]), None
    except VpdError as exc:  # the page still shows the VM
        snapshots, snapshots_error = None, exc.message
    return render(request, "vm.html", who, vm=info, xml=xml, snapshots=snapshots, snapshots_error=snapshots_error,
                  migrate_hosts=[h.name for h in s.hosts() if h.name != info["host"]],
                  last_migration=last_migration(name), edited=EDITED.get(edited or ""),
                  backups=vm_backups(s, name, info["host"], (backups_in or "").strip() or None),
                  backups_in=backups_in or "", display=_display(s, name, info["host"]),
                  buses=BUSES, nic_models=NIC_MODELS)


def _display(s: Session, name: str, host: str) -> dict | None:
    """The VM's VNC display (None when it has none): the page links the graphical console."""
    try:
        shown = vm_ops.display(s, name, host)
    except VpdError:
        return None
    return shown if shown["type"] == "vnc" else None


@router.get("/vms/{name}/display")
def display_page(request: Request, name: str, host: str | None = None, who: Principal = Depends(viewer),
                 s: Session = Depends(session)):
    """The graphical console: noVNC (an ES module served from the package) over the websocket
    /api/v1/vms/{name}/vnc. Viewers watch; operators also type and point. Without JavaScript
    the page says where the display is and how to reach it with a VNC client."""
    found = vm_ops.locate(s, name, host)
    try:
        shown, error = vm_ops.display(s, name, found.host.name), None
    except VpdError as exc:
        shown, error = None, exc.message
    running = bool(found.domain.isActive())
    usable = shown is not None and shown["type"] == "vnc" and running
    return render(request, "display.html", who, vm_name=name, host=found.host.name, shown=shown, error=error,
                  running=running, usable=usable, view_only=not who.can_act)


# --- disks and NICs ------------------------------------------------------------------------------


def _in_job(request: Request, s: Session, kind: str, name: str, host: str | None,
            work: Callable[[Session], object]) -> Callable[[Principal], Job]:
    def submit(who: Principal) -> Job:
        found = vm_ops.locate(s, name, host)  # an unknown VM: 404 now, not in the job
        return run_in_job(request, who, kind, f"{found.host.name}/{name}", work)
    return submit


def _flags(mode: str) -> tuple[bool, bool]:
    """The form's "apply to" choice as (live, config); "" is virsh's default (the VM as it is)."""
    choices = {"": (False, False), "live": (True, False), "config": (False, True), "both": (True, True)}
    if mode not in choices:
        raise UsageError(f"apply to {mode!r}: use live, config or both")
    return choices[mode]


@router.post("/vms/{name}/disks")
def disk_attach(request: Request, name: str, host: str | None = Query(None), target: str = Form(""),
                vol: str = Form(""), device: str = Form(""), bus: str = Form(""), readonly: bool = Form(False),
                apply_to: str = Form(""), csrf: str = Form(""), s: Session = Depends(session)) -> Response:
    def work(js: Session) -> object:
        live, config = _flags(apply_to)
        return devices.disk_attach(js, name, host, vol_ref=vol.strip() or None, device=device.strip() or None,
                                   target=target.strip(), bus=bus or None, readonly=readonly, live=live,
                                   config=config)

    def submit(who: Principal) -> Job:
        if bool(vol.strip()) == bool(device.strip()):
            raise UsageError("give exactly one of a volume (POOL/VOL) or a host device (PATH)")
        if bus and bus not in BUSES:
            raise UsageError(f"bus {bus!r}: use one of {', '.join(BUSES)}")
        _flags(apply_to)
        return _in_job(request, s, "vm.disk.attach", name, host, work)(who)

    return job_response(request, csrf, submit)


@router.post("/vms/{name}/disks/{target}/detach")
def disk_detach(request: Request, name: str, target: str, host: str | None = Query(None),
                apply_to: str = Form(""), csrf: str = Form(""), s: Session = Depends(session)) -> Response:
    def submit(who: Principal) -> Job:
        live, config = _flags(apply_to)
        return _in_job(request, s, "vm.disk.detach", name, host, lambda js: devices.disk_detach(
            js, name, host, target=target, live=live, config=config))(who)

    return job_response(request, csrf, submit)


@router.post("/vms/{name}/interfaces")
def iface_attach(request: Request, name: str, host: str | None = Query(None), source_type: str = Form("network"),
                 source: str = Form(""), model: str = Form("virtio"), mac: str = Form(""),
                 csrf: str = Form(""), s: Session = Depends(session)) -> Response:
    def submit(who: Principal) -> Job:
        if source_type not in ("network", "bridge"):
            raise UsageError(f"source type {source_type!r}: use network or bridge")
        if not source.strip():
            raise UsageError(f"name the {source_type} the NIC goes on")
        if model not in NIC_MODELS:
            raise UsageError(f"NIC model {model!r}: use one of {', '.join(NIC_MODELS)}")
        network = source.strip() if source_type == "network" else None
        bridge = source.strip() if source_type == "bridge" else None
        return _in_job(request, s, "vm.iface.attach", name, host, lambda js: devices.iface_attach(
            js, name, host, network=network, bridge=bridge, model=model, mac=mac.strip() or None))(who)

    return job_response(request, csrf, submit)


@router.post("/vms/{name}/interfaces/{mac}/detach")
def iface_detach(request: Request, name: str, mac: str, host: str | None = Query(None), csrf: str = Form(""),
                 s: Session = Depends(session)) -> Response:
    return job_response(request, csrf, _in_job(request, s, "vm.iface.detach", name, host,
                                               lambda js: devices.iface_detach(js, name, host, mac=mac)))


# --- backups -------------------------------------------------------------------------------------


def backup_roots(name: str, host: str, scan: int = 500) -> list[str]:
    """The directories the journal saw backups of this VM go to on its host, newest first."""
    roots: list[str] = []
    for entry in journal.entries(scan, "backup.create"):
        root = (entry.get("args") or {}).get("to")
        if entry.get("target") == f"{host}/{name}" and isinstance(root, str) and root not in roots:
            roots.append(root)
    return roots


def vm_backups(s: Session, name: str, host: str, extra_root: str | None = None) -> dict:
    """The VM's finished backups under each directory it was backed up to (and `extra_root`),
    as `vpd backup list DIR` finds them; a directory that cannot be read keeps its error."""
    roots = backup_roots(name, host)
    if extra_root and extra_root not in roots:
        roots.insert(0, extra_root)
    found, errors = [], []
    for root in roots:
        try:
            listed = backup_ops.list_(s, root, host)
        except VpdError as exc:
            errors.append({"root": root, "error": exc.message})
            continue
        found += [{**b, "root": root} for b in listed["backups"] if b.get("vm") == name]
    found.sort(key=lambda b: str(b.get("created") or b.get("id") or ""), reverse=True)
    return {"roots": roots, "backups": found, "errors": errors}
