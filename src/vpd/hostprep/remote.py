"""Commands on a host, as argument lists, through the inventory's runner."""
from __future__ import annotations

from dataclasses import dataclass

from ..connect.inventory import Host
from ..connect.ssh import CommandResult, exec_step, runner_for
from ..core import steps
from ..core.errors import UsageError
from ..ops import explain


def address_of(host: Host) -> str:
    """`host`'s inventory address: firewall rules, probes and /etc/hosts lines need it."""
    if not host.address:
        raise UsageError(f"no address in the inventory for {host.name}",
                         hint='add address = "..." to its [[hosts]] entry')
    return host.address


@dataclass(frozen=True)
class Command:
    """One command vpd runs (or, in a dry run, would run) on a host."""

    argv: tuple[str, ...]
    input: str | None = None  # its standard input

    def display(self) -> str:
        """As typed on the host itself, standard input included byte for byte."""
        return explain.shell(explain.hands(exec_step("", None, list(self.argv), self.input)))

    def record_dry_run(self, host: Host) -> None:
        """A dry run's step: what vpd would have run on `host` (for --explain)."""
        if steps.active():
            steps.record(exec_step(host.name, runner_for(host).ssh_target(), list(self.argv), self.input,
                                   dry_run=True))


def run(host: Host, argv: list[str] | tuple[str, ...], *, input: str | None = None, check: bool = True,
        timeout: float | None = None, reads: bool = False) -> CommandResult:
    return runner_for(host).run(list(argv), input=input, check=check, timeout=timeout, reads=reads)


def run_command(host: Host, command: Command) -> CommandResult:
    return run(host, command.argv, input=command.input)
