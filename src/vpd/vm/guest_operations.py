"""What front ends run to reach inside a guest: `vpd vm ip`, `vm exec`, `vm fs` (the guest
agent, vm/agent.py) and `vm ssh` (vm/guest_ssh.py). The VM is found across the inventory (the
running copy when two hosts define it)."""
from __future__ import annotations

from ..ops import Operation, Session
from ..ops.results import WithExitCode
from . import agent
from .operations import locate


def ip(session: Session, name: str, host_ref: str | None = None) -> dict:
    """The guest's addresses: the agent first, then DHCP leases, then ARP (which one answered is said)."""
    vm = locate(session, name, host_ref)
    found = session.call(vm.host, lambda _c: agent.addresses(vm.domain))
    return {"host": vm.host.name, **found}


def fs(session: Session, name: str, host_ref: str | None = None) -> dict:
    """The guest's mounted filesystems with their size and use (guest-get-fsinfo): `df -h` from outside."""
    vm = locate(session, name, host_ref)
    filesystems = session.call(vm.host, lambda _c: agent.GuestAgent(vm.domain).filesystems())
    return {"host": vm.host.name, "vm": name, "filesystems": [f.to_dict() for f in filesystems]}


def exec_(session: Session, name: str, argv: list[str], host_ref: str | None = None,
          timeout: float = 60.0) -> WithExitCode:
    """Run a program in the guest through the agent (no shell, no SSH); its exit code becomes
    the result's. Journaled as an operation; no VM lock: a command in the guest does not race
    vpd's own changes to the VM (a backup or migration may run meanwhile)."""
    argv = agent.check_argv(argv)
    vm = locate(session, name, host_ref)
    with Operation(session, "vm.exec", target=f"{vm.host.name}/{name}", argv=argv) as op:
        result = session.call(vm.host, lambda _c: agent.GuestAgent(vm.domain).run(argv, timeout=timeout))
        op.result = {"exit_code": result.exit_code, "signal": result.signal, "seconds": result.seconds}
    return WithExitCode({"host": vm.host.name, "vm": name, **result.to_dict()}, result.exit_code)
