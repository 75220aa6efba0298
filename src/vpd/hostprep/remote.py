"""Commands on a host, as argument lists, through the inventory's runner."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..connect.inventory import Host
from ..connect.ssh import CommandResult, runner_for
from ..core.errors import VpdError

NOT_FOUND = 127  # a shell's exit code for a missing program


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
    """Run argv on host. A missing program is exit 127 on every host: over SSH the
    remote shell says so; the local runner execs argv directly and would raise."""
    try:
        return runner_for(host).run(list(argv), input=input, check=check, timeout=timeout)
    except FileNotFoundError:
        if check:
            raise VpdError(f"{host.name}: {argv[0]} is not installed") from None
        return CommandResult(list(argv), NOT_FOUND, "", f"{argv[0]}: command not found")


def run_command(host: Host, command: Command) -> CommandResult:
    return run(host, command.argv, input=command.input)
