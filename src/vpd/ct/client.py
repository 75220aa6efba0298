"""A thin typed client of Incus's REST API (LXD's, as Incus forked it), over httpx.

    client = IncusClient(Endpoint.parse("unix:/var/lib/incus/unix.socket"))
    client.get("/1.0/instances", recursion=1)           # sync answers: their metadata
    client.request("PUT", path, json=...)               # async answers: waited for, then their metadata

Why our own and not pylxd: pylxd targets LXD (its checks and defaults follow LXD releases,
not Incus's), pulls in requests, requests-unixsocket and ws4py, and runs exec over
websockets; vpd needs a dozen endpoints, and httpx speaks both the unix socket and HTTPS
with a client certificate. The request building (paths, bodies, headers) is pure and
unit-tested; only `IncusClient._send` touches the network.

Errors: Incus's "not found" becomes NotFound (exit 2), anything else IncusError (exit 1)
with Incus's own message; an unreachable daemon says where it was looked for."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ..core import steps
from ..core.errors import NotFound, UsageError, VpdError

API = "/1.0"
DEFAULT_SOCKET = "/var/lib/incus/unix.socket"
DEFAULT_PORT = 8443


class IncusError(VpdError):
    """incusd refused or failed a request."""


class IncusUnreachable(VpdError):
    """No incusd answered at the host's endpoint."""


@dataclass(frozen=True)
class Endpoint:
    """Where a host's incusd listens: a unix socket (this machine, or a lab host's socket seen
    from it) or HTTPS (another host; vpd's client certificate must be trusted there)."""

    kind: str  # "unix" or "https"
    address: str  # socket path, or host:port

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        if text.startswith("unix:"):
            path = text.removeprefix("unix:")
            path = "/" + path.lstrip("/") if path.startswith("//") else path
            if not path.startswith("/"):
                raise UsageError(f"incus endpoint {text!r}: the socket path must be absolute")
            return cls("unix", path)
        parts = urlsplit(text)
        if parts.scheme == "https" and parts.hostname and not parts.path.strip("/"):
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            return cls("https", f"{host}:{parts.port or DEFAULT_PORT}")
        raise UsageError(f"invalid incus endpoint {text!r}",
                         hint="use unix:/path/to/unix.socket or https://HOST[:PORT]")

    def __str__(self) -> str:
        return f"unix:{self.address}" if self.kind == "unix" else f"https://{self.address}"


def endpoint_for(host: Any) -> Endpoint:
    """The inventory's `incus` key, else the local socket for a local host, else HTTPS on the
    host's address (or its URI's host name) at Incus's port."""
    given = getattr(host, "incus", None)
    if given:
        return Endpoint.parse(given)
    if host.is_local:
        return Endpoint("unix", DEFAULT_SOCKET)
    return Endpoint.parse(f"https://{host.address or host.hostname}")


# --- pure request building --------------------------------------------------------------

def path(*segments: str, **query: Any) -> str:
    """/1.0/seg1/seg2?query: every segment quoted (names never add path components)."""
    out = API + "".join("/" + quote(str(s), safe="") for s in segments)
    pairs = [(k, v) for k, v in query.items() if v is not None]
    if pairs:
        out += "?" + "&".join(f"{quote(k)}={quote(str(_query_value(v)), safe='')}" for k, v in pairs)
    return out


def _query_value(v: Any) -> Any:
    return str(v).lower() if isinstance(v, bool) else v


def operation_id(op_path: str) -> str:
    """'/1.0/operations/UUID' -> 'UUID'."""
    prefix = API + "/operations/"
    if not op_path.startswith(prefix) or "/" in op_path[len(prefix):] or not op_path[len(prefix):]:
        raise IncusError(f"unexpected operation reference from incusd: {op_path!r}")
    return op_path[len(prefix):]


def file_headers(mode: int = 0o644, uid: int = 0, gid: int = 0) -> dict[str, str]:
    """Headers of a file push: a regular file, replaced whole."""
    return {"X-Incus-type": "file", "X-Incus-mode": f"{mode & 0o7777:04o}", "X-Incus-uid": str(uid),
            "X-Incus-gid": str(gid), "X-Incus-write": "overwrite", "Content-Type": "application/octet-stream"}


def exec_body(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> dict:
    """A non-interactive exec whose output incusd records in log files (no websockets)."""
    body: dict[str, Any] = {"command": list(argv), "environment": dict(env or {}), "interactive": False,
                            "wait-for-websocket": False, "record-output": True}
    if cwd:
        body["cwd"] = cwd
    return body


def interactive_exec_body(argv: list[str], env: dict[str, str], width: int, height: int) -> dict:
    """An exec on a terminal: incusd gives a pty and two websockets (data, control)."""
    return {"command": list(argv), "environment": dict(env), "interactive": True, "wait-for-websocket": True,
            "record-output": False, "width": width, "height": height}


def migration_source_body(live: bool = False) -> dict:
    """Asked of the source: a migration operation whose websockets the target pulls from."""
    return {"migration": True, "live": live, "instance_only": False}


# Config keys that belong to one host's copy of a container and are made afresh on the other.
_VOLATILE_KEPT = ("volatile.base_image",)


def migration_target_body(name: str, inst: dict, source_url: str, certificate: str, secrets: dict,
                          keep_identity: bool) -> dict:
    """Asked of the target: create `name` by pulling the source's operation (`source_url`,
    HTTPS on the source's core.https_address; the secrets authorise the websockets, so the
    target needs no trust on the source). A move keeps the container's MAC addresses (its
    DHCP lease follows it); a copy gets new ones."""
    config = {k: v for k, v in (inst.get("config") or {}).items()
              if not k.startswith("volatile.") or k in _VOLATILE_KEPT
              or (keep_identity and k.endswith(".hwaddr"))}
    return {"name": name, "type": "container", "architecture": inst.get("architecture"), "config": config,
            "devices": inst.get("devices") or {}, "profiles": inst.get("profiles") or ["default"],
            "ephemeral": bool(inst.get("ephemeral")),
            "source": {"type": "migration", "mode": "pull", "operation": source_url, "certificate": certificate,
                       "secrets": dict(secrets), "live": False, "instance_only": False}}


def resize_message(width: int, height: int) -> str:
    return json.dumps({"command": "window-resize", "args": {"width": str(width), "height": str(height)}})


def state_body(action: str, *, force: bool = False, timeout: int | None = None) -> dict:
    if action not in ("start", "stop", "restart", "freeze", "unfreeze"):
        raise ValueError(f"unknown instance action {action!r}")
    body: dict[str, Any] = {"action": action, "force": force}
    if timeout is not None:
        body["timeout"] = timeout
    return body


def create_body(name: str, fingerprint: str, config: dict[str, str], profiles: list[str]) -> dict:
    """A container from a local image, named by its fingerprint (resolved from an alias first,
    so the journal records exactly which image): no image server here."""
    return {"name": name, "type": "container", "source": {"type": "image", "fingerprint": fingerprint},
            "config": dict(config), "profiles": list(profiles)}


def error_of(status: int, body: Any) -> VpdError:
    """Incus's error answer as a vpd error: 404 is NotFound (a usage error: nothing changed)."""
    message = body.get("error") if isinstance(body, dict) else None
    message = message or f"HTTP {status}"
    code = body.get("error_code", status) if isinstance(body, dict) else status
    return (NotFound if code == 404 else IncusError)(f"incusd: {message}")


# --- the client -------------------------------------------------------------------------

class IncusClient:
    def __init__(self, endpoint: Endpoint, *, name: str = "", cert: tuple[Path, Path] | None = None,
                 server_cert: Path | None = None, timeout: float = 30.0):
        self.endpoint = endpoint
        self.name = name or str(endpoint)
        self._cert, self._server_cert = cert, server_cert
        if endpoint.kind == "unix":
            transport = httpx.HTTPTransport(uds=endpoint.address)
            self._http = httpx.Client(transport=transport, base_url="http://incus", timeout=timeout)
        else:
            from .trust import ssl_context

            self._http = httpx.Client(base_url=f"https://{endpoint.address}", timeout=timeout,
                                      verify=ssl_context(server_cert, cert))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IncusClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, url, **kw)
        except httpx.TransportError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise IncusUnreachable(f"incusd on {self.name} at {self.endpoint}: its certificate is not one vpd "
                                       f"knows ({exc})",
                                       hint=f"on {self.name}: incus config trust add vpd; then here: "
                                            f"vpd ct trust --host {self.name} --token TOKEN") from None
            raise IncusUnreachable(f"incusd on {self.name} did not answer at {self.endpoint}: {exc}",
                                   hint="`vpd ct init --host HOST` sets it up (in the lab it starts with `vpd lab up`"
                                        " when Incus is installed: scripts/setup.sh)") from None
        if method != "GET" and steps.active():  # a change: its `incus query` equivalent, for --explain
            content = kw.get("content")
            steps.record({"kind": "incus", "host": self.name, "method": method, "url": url,
                          "json": kw.get("json"),
                          "input_bytes": len(content) if isinstance(content, (bytes, str)) else None,
                          "status": resp.status_code})
        return resp

    def raw(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """A request whose answer is not Incus's JSON envelope (file contents)."""
        resp = self._send(method, url, **kw)
        if resp.status_code >= 400:
            raise error_of(resp.status_code, _json_or_none(resp))
        return resp

    def request(self, method: str, url: str, *, wait: float | None = 600, **kw: Any) -> Any:
        """Send; an async answer is waited for (`wait` seconds) and its operation's metadata
        returned; a sync answer's metadata is returned as it is."""
        resp = self._send(method, url, **kw)
        body = _json_or_none(resp)
        if resp.status_code >= 400 or not isinstance(body, dict) or body.get("type") == "error":
            raise error_of(resp.status_code, body)
        if body.get("type") == "async" and wait is not None:
            return self.wait(body["operation"], wait)
        return body.get("metadata")

    def wait(self, op_path: str, timeout: float) -> dict:
        op = self.request("GET", path("operations", operation_id(op_path), "wait", timeout=int(timeout)),
                          wait=None, timeout=timeout + 10)
        if op.get("status_code") != 200:
            raise IncusError(f"incusd: {op.get('err') or op.get('status') or 'operation failed'}")
        return op

    def get(self, url: str, **query: Any) -> Any:
        return self.request("GET", url + _query(url, query))

    def start(self, method: str, url: str, **kw: Any) -> dict:
        """An async request not waited for: its operation (id, metadata with the websockets'
        secrets), so the caller can connect before incusd goes on."""
        op = self.request(method, url, wait=None, **kw)
        if not isinstance(op, dict) or not op.get("id"):
            raise IncusError(f"incusd on {self.name} did not start an operation for {method} {url}")
        return op

    def websocket(self, op_id: str, secret: str):
        """A sync websocket to an operation's stream (a context manager)."""
        from websockets.sync.client import connect, unix_connect  # only interactive commands need it

        url = path("operations", op_id, "websocket", secret=secret)
        try:
            if self.endpoint.kind == "unix":
                return unix_connect(self.endpoint.address, uri=f"ws://incus{url}", max_size=None)
            from .trust import ssl_context

            return connect(f"wss://{self.endpoint.address}{url}", ssl=ssl_context(self._server_cert, self._cert),
                           max_size=None)
        except OSError as exc:
            raise IncusUnreachable(f"incusd on {self.name}: websocket of operation {op_id}: {exc}") from None


def _query(url: str, query: dict[str, Any]) -> str:
    pairs = [(k, v) for k, v in query.items() if v is not None]
    if not pairs:
        return ""
    return ("&" if "?" in url else "?") + "&".join(f"{quote(k)}={quote(str(_query_value(v)), safe='')}"
                                                   for k, v in pairs)


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except (ValueError, json.JSONDecodeError):
        return None
