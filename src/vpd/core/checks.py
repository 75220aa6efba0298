"""Named checks: what preflight and host preparation report, each with the fix."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Check:
    name: str  # e.g. "fqdn-resolution hosta->hostb"
    ok: bool
    detail: str = ""
    fix: str | None = None  # what to do when not ok
    blocking: bool = True  # a failed non-blocking check is a warning

    def to_dict(self) -> dict:
        return asdict(self)


def failed(checks: list[Check]) -> list[Check]:
    """The checks that stop an operation."""
    return [c for c in checks if not c.ok and c.blocking]
