"""What `prepare` and `unprepare` did (or, in a dry run, would do) to each host."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..connect.inventory import Host
from ..core.checks import Check, failed
from .remote import Command


@dataclass
class Change:
    """One change to one host, with the exact commands that make it."""

    on: Host  # the host the commands run on (a peer, for /etc/hosts lines of a renamed host)
    kind: str  # nft-rule, firewalld-rules, hosts-lines, hostname, sysctl
    summary: str
    commands: list[Command]
    record: dict = field(default_factory=dict)  # what the state file keeps so unprepare can undo it
    backup: tuple[str, str] | None = None  # (path, content) of a file to copy before changing it

    def to_dict(self) -> dict:
        return {"on": self.on.name, "kind": self.kind, "summary": self.summary,
                "commands": [c.display() for c in self.commands]}


@dataclass
class HostPrepReport:
    host: str
    dry_run: bool = False
    backend: str | None = None  # the host firewall found: nftables, firewalld or none
    checks: list[Check] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # made, or planned in a dry run
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not failed(self.checks)

    def to_dict(self) -> dict:
        return {"host": self.host, "ok": self.ok, "dry_run": self.dry_run, "backend": self.backend,
                "checks": [c.to_dict() for c in self.checks], "changes": [c.to_dict() for c in self.changes],
                "notes": self.notes, "error": self.error}
