"""Template operations as front ends run them: the VM is found across the inventory (or on
the host given) and sealed or unsealed inside an Operation. The rules live in vm.template."""
from __future__ import annotations

from ..core.errors import UsageError
from ..ops import Operation, Session
from ..ops.locks import vm_key
from .inventory import locate_vm
from .template import TemplateInfo, check_can_template, list_templates, seal, unseal

_CHANGES = {"create": seal, "unseal": unseal}


def change(session: Session, action: str, name: str, host_ref: str | None = None, seal_with: str | None = None) -> dict:
    """`create` (turn a shut-off VM into a template) or `unseal`. `seal_with` (create only: auto,
    virt-sysprep or mount) first generalises the VM's system disk (vm.generalise)."""
    fn = _CHANGES[action]
    if seal_with is not None:
        from .generalise import METHODS

        if action != "create":
            raise UsageError("--seal goes with template create")
        if seal_with not in METHODS:
            raise UsageError(f"seal method {seal_with!r}: use {', '.join(METHODS)}")
    # A template is a persistent definition: with two hosts defining the name, the user says which.
    vm = locate_vm(session, name, host_ref, prefer_running=False)
    with Operation(session, f"template.{action}", target=f"{vm.host.name}/{name}", locks=[vm_key(name)],
                   seal=seal_with) as op:
        sealed = None
        if seal_with is not None:
            from .generalise import generalise

            # seal's own refusals (already a template, transient) before the disk is touched.
            session.call(vm.host, lambda _c: check_can_template(vm.domain))
            sealed = session.call(vm.host, lambda c: generalise(c, vm.host, vm.domain, seal_with)).to_dict()
        op.result = {"host": vm.host.name, "action": action, **session.call(vm.host, lambda _c: fn(vm.domain)),
                     **({"sealed": sealed} if sealed else {})}
    return op.result


def list_(session: Session, host_refs: list[str] | tuple[str, ...] | None = None) -> dict:
    found: list[TemplateInfo]
    found, errors = list_templates(session.conns, session.hosts(host_refs))
    return {"templates": [t.to_dict() for t in found], "errors": errors}
