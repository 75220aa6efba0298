"""Operation results as plain data, for every front end (the CLI's --json, the web API)."""
from __future__ import annotations

import dataclasses
from typing import Any


def jsonable(value: Any) -> Any:
    """A result (dataclass, pydantic model, object with to_dict(), or containers of them) as
    data json.dumps accepts."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


@dataclasses.dataclass
class WithExitCode:
    """A result that also sets the process's exit code: `vpd vm exec` and `vm ssh -- CMD` end
    with the guest command's code, as ssh does, so scripts can test it."""

    data: dict
    exit_code: int

    def to_dict(self) -> dict:
        return self.data
