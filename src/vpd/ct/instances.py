"""Containers on one host's incusd: listing, finding, state changes, exec and files.
Everything takes an IncusClient; the Session-level operations are in operations.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import NotFound, UsageError
from .client import (
    IncusClient,
    IncusError,
    create_body,
    exec_body,
    file_headers,
    interactive_exec_body,
    migration_source_body,
    migration_target_body,
    path,
    state_body,
)

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


def create(client: IncusClient, name: str, fingerprint: str, config: dict[str, str],
           profiles: list[str] | None = None) -> None:
    client.request("POST", path("instances"), json=create_body(name, fingerprint, config, profiles or ["default"]))


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
    return pull_file(client, name, ct_path)[0]


def pull_file(client: IncusClient, name: str, ct_path: str) -> tuple[bytes, int, int, int]:
    """A file's bytes, mode, uid and gid (as the container sees them)."""
    resp = client.raw("GET", path("instances", name, "files", path=ct_path))
    if resp.headers.get("X-Incus-type", "file") != "file":
        raise UsageError(f"{name}{ct_path} is a {resp.headers.get('X-Incus-type')}, not a file")
    h = resp.headers
    return (resp.content, int(h.get("X-Incus-mode", "644"), 8), int(h.get("X-Incus-uid", "0")),
            int(h.get("X-Incus-gid", "0")))


def push(client: IncusClient, name: str, ct_path: str, data: bytes, mode: int = 0o644, uid: int = 0,
         gid: int = 0) -> None:
    client.request("POST", path("instances", name, "files", path=ct_path), content=data,
                   headers=file_headers(mode, uid, gid))


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


# --- snapshots ----------------------------------------------------------------------------

def snapshots(client: IncusClient, name: str) -> list[dict[str, Any]]:
    get(client, name)
    return [{"name": s["name"].rsplit("/", 1)[-1], "created": s.get("created_at", ""),
             "stateful": bool(s.get("stateful")), "size": s.get("size")}
            for s in client.get(path("instances", name, "snapshots"), recursion=1) or []]


def snapshot_create(client: IncusClient, name: str, snap: str) -> None:
    client.request("POST", path("instances", name, "snapshots"), json={"name": snap, "stateful": False})


def snapshot_restore(client: IncusClient, name: str, snap: str) -> None:
    client.request("PUT", path("instances", name), json={"restore": snap})


def snapshot_delete(client: IncusClient, name: str, snap: str) -> None:
    client.request("DELETE", path("instances", name, "snapshots", snap))


# --- profiles -----------------------------------------------------------------------------

def profiles(client: IncusClient) -> list[dict[str, Any]]:
    return [{"name": p["name"], "description": p.get("description", ""), "config": p.get("config") or {},
             "devices": p.get("devices") or {},
             "used_by": [u.rsplit("/", 1)[-1].split("?")[0] for u in p.get("used_by") or []]}
            for p in client.get(path("profiles"), recursion=1) or []]


def profile(client: IncusClient, name: str) -> dict[str, Any]:
    try:
        p = client.get(path("profiles", name))
    except NotFound:
        raise NotFound(f"no profile {name!r} on {client.name}", hint="`vpd ct profile list` shows them") from None
    return {"description": p.get("description", ""), "config": p.get("config") or {},
            "devices": p.get("devices") or {}}


def profile_create(client: IncusClient, name: str, body: dict) -> None:
    client.request("POST", path("profiles"), json={"name": name, **body})


def profile_put(client: IncusClient, name: str, body: dict) -> None:
    client.request("PUT", path("profiles", name), json=body)


def profile_delete(client: IncusClient, name: str) -> None:
    client.request("DELETE", path("profiles", name))


def set_profiles(client: IncusClient, name: str, names: list[str]) -> None:
    client.request("PATCH", path("instances", name), json={"profiles": list(names)})


# --- console and interactive exec ---------------------------------------------------------

def console_log(client: IncusClient, name: str) -> str:
    """What the container's init wrote on its console since it started."""
    get(client, name)
    return client.raw("GET", path("instances", name, "console")).content.decode(errors="replace")


def console_start(client: IncusClient, name: str, width: int, height: int) -> tuple[str, dict[str, str]]:
    op = client.start("POST", path("instances", name, "console"),
                      json={"width": width, "height": height, "type": "console"})
    return op["id"], (op.get("metadata") or {}).get("fds") or {}


def exec_start(client: IncusClient, name: str, argv: list[str], env: dict[str, str], width: int,
               height: int) -> tuple[str, dict[str, str]]:
    op = client.start("POST", path("instances", name, "exec"),
                      json=interactive_exec_body(argv, env, width, height))
    return op["id"], (op.get("metadata") or {}).get("fds") or {}


# --- migration between two incusd ---------------------------------------------------------

def migrate(source: IncusClient, target: IncusClient, name: str, new_name: str, *, keep_identity: bool,
            timeout: float = 600) -> None:
    """Copy `name` from source to target as `new_name`, snapshots included. The source offers a
    migration operation; the target pulls it over HTTPS from the source's core.https_address."""
    inst = get(source, name)
    server = source.get(path())
    addresses = (server.get("environment") or {}).get("addresses") or []
    if not addresses:
        raise UsageError(f"incusd on {source.name} does not listen on the network (core.https_address)",
                         hint=f"`vpd ct init --host {source.name} --https-address ADDR:8443`")
    op = source.start("POST", path("instances", name), json=migration_source_body())
    secrets = op.get("metadata") or {}
    url = f"https://{addresses[0]}{path('operations', op['id'])}"
    body = migration_target_body(new_name, inst, url, server["environment"]["certificate"], secrets, keep_identity)
    try:
        target.request("POST", path("instances"), json=body, wait=timeout)
    except BaseException:
        _cancel(source, op["id"])
        raise
    source.wait(path("operations", op["id"]), timeout)


def _cancel(client: IncusClient, op_id: str) -> None:
    try:
        client.request("DELETE", path("operations", op_id), wait=None)
    except (NotFound, IncusError):
        pass  # already over
