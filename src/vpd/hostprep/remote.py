"""Commands on a host, as argument lists, through the inventory's runner."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..connect.inventory import Host
from ..connect.ssh import CommandResult, runner_for
from ..core.errors import UsageError


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
        text = shlex.join(self.argv)
        if self.input is not None:
            text += f"  <<< {self.input!r}"
        return text


def run(host: Host, argv: list[str] | tuple[str, ...], *, input: str | None = None, check: bool = True,
        timeout: float | None = None) -> CommandResult:
    return runner_for(host).run(list(argv), input=input, check=check, timeout=timeout)


def run_command(host: Host, command: Command) -> CommandResult:
    return run(host, command.argv, input=command.input)
