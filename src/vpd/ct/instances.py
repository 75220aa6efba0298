"""Containers on one host's incusd: listing, finding, state changes, exec and files.
Everything takes an IncusClient; the Session-level operations are in operations.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import NotFound, UsageError
from .client import IncusClient, create_body, exec_body, file_headers, path, state_body

# vpd's words for the seed's actions, and what Incus calls them.
ACTIONS = {"start": "start", "stop": "stop", "restart": "restart", "pause": "freeze", "resume": "unfreeze"}


@dataclass
class CtSummary:
    host: str
    name: str
    state: str
    image: str
    addresses: list[str] = field(default_factory=list)
    memory_limit: str | None = None
    cpu_limit: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _addresses(state: dict | None) -> list[str]:
    out = []
    for ifname, net in ((state or {}).get("network") or {}).items():
        if ifname == "lo":
            continue
        out += [a["address"] for a in net.get("addresses") or [] if a.get("family") == "inet"]
    return out


def summary(host: str, inst: dict) -> CtSummary:
    config = inst.get("config") or {}
    return CtSummary(host, inst["name"], (inst.get("status") or "").lower(),
                     config.get("image.description") or config.get("volatile.base_image", "")[:12],
                     _addresses(inst.get("state")), config.get("limits.memory"), config.get("limits.cpu"))


def list_containers(client: IncusClient, host: str) -> list[CtSummary]:
    """One request: recursion=2 brings each container's state (addresses) along."""
    return [summary(host, i) for i in client.get(path("instances"), recursion=2) or []
            if i.get("type", "container") == "container"]


def names(client: IncusClient) -> list[str]:
    return [ref.rsplit("/", 1)[-1] for ref in client.get(path("instances")) or []]


def get(client: IncusClient, name: str) -> dict:
    try:
        return client.get(path("instances", name))
    except NotFound:
        raise NotFound(f"no container {name!r} on {client.name}", hint="`vpd ct list` shows them") from None


def status(client: IncusClient, name: str) -> str:
    return (get(client, name).get("status") or "").lower()


def create(client: IncusClient, name: str, fingerprint: str, config: dict[str, str]) -> None:
    client.request("POST", path("instances"), json=create_body(name, fingerprint, config, ["default"]))


def change_state(client: IncusClient, name: str, action: str, *, force: bool = False,
                 timeout: int | None = None) -> None:
    body = state_body(ACTIONS[action], force=force, timeout=timeout)
    client.request("PUT", path("instances", name, "state"), json=body,
                   wait=(timeout or 30) + 30)


def delete(client: IncusClient, name: str) -> None:
    client.request("DELETE", path("instances", name))


def set_config(client: IncusClient, name: str, values: dict[str, str]) -> None:
    client.request("PATCH", path("instances", name), json={"config": values})


@dataclass
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str


def run(client: IncusClient, name: str, argv: list[str], timeout: float = 600) -> ExecResult:
    """Run argv in the container, wait for it, and fetch what it wrote (incusd records the
    output in log files, which are removed once read)."""
    op = client.request("POST", path("instances", name, "exec"), json=exec_body(argv), wait=timeout)
    meta = op.get("metadata") or {}
    out: dict[str, str] = {}
    for fd, log in (meta.get("output") or {}).items():
        log_name = log.rsplit("/", 1)[-1]
        url = path("instances", name, "logs", "exec-output", log_name)
        out[fd] = client.raw("GET", url).content.decode(errors="replace")
        client.request("DELETE", url)
    return ExecResult(int(meta.get("return", -1)), out.get("1", ""), out.get("2", ""))


def pull(client: IncusClient, name: str, ct_path: str) -> bytes:
    resp = client.raw("GET", path("instances", name, "files", path=ct_path))
    if resp.headers.get("X-Incus-type", "file") != "file":
        raise UsageError(f"{name}{ct_path} is a {resp.headers.get('X-Incus-type')}, not a file")
    return resp.content


def push(client: IncusClient, name: str, ct_path: str, data: bytes, mode: int = 0o644) -> None:
    client.request("POST", path("instances", name, "files", path=ct_path), content=data,
                   headers=file_headers(mode))


def exists(client: IncusClient, name: str) -> bool:
    try:
        client.get(path("instances", name))
        return True
    except NotFound:
        return False


def info(client: IncusClient, name: str) -> dict[str, Any]:
    inst = get(client, name)
    state = client.get(path("instances", name, "state")) or {}
    snaps = client.get(path("instances", name, "snapshots")) or []
    config = inst.get("config") or {}
    memory = state.get("memory") or {}
    return {
        "name": name, "status": (inst.get("status") or "").lower(), "type": inst.get("type"),
        "image": config.get("image.description") or config.get("volatile.base_image", ""),
        "created": inst.get("created_at"), "pid": state.get("pid"), "processes": state.get("processes"),
        "addresses": _addresses(state),
        "memory_usage_bytes": memory.get("usage"), "memory_peak_bytes": memory.get("usage_peak"),
        "cpu_usage_ns": (state.get("cpu") or {}).get("usage"),
        "limits": {k: v for k, v in config.items() if k.startswith("limits.")},
        "snapshots": [s.rsplit("/", 1)[-1] for s in snaps],
    }
