"""Template operations as front ends run them: the VM is found across the inventory (or on
the host given) and sealed or unsealed inside an Operation. The rules live in vm.template."""
from __future__ import annotations

from ..ops import Operation, Session
from ..ops.locks import vm_key
from .inventory import locate_vm
from .template import TemplateInfo, list_templates, seal, unseal

_CHANGES = {"create": seal, "unseal": unseal}


def change(session: Session, action: str, name: str, host_ref: str | None = None) -> dict:
    """`create` (seal a shut-off VM into a template) or `unseal`."""
    fn = _CHANGES[action]
    # A template is a persistent definition: with two hosts defining the name, the user says which.
    vm = locate_vm(session, name, host_ref, prefer_running=False)
    with Operation(session, f"template.{action}", target=f"{vm.host.name}/{name}", locks=[vm_key(name)]) as op:
        op.result = {"host": vm.host.name, "action": action, **session.call(vm.host, lambda _c: fn(vm.domain))}
    return op.result


def list_(session: Session, host_refs: list[str] | tuple[str, ...] | None = None) -> dict:
    found: list[TemplateInfo]
    found, errors = list_templates(session.conns, session.hosts(host_refs))
    return {"templates": [t.to_dict() for t in found], "errors": errors}
