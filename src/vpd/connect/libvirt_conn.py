"""libvirt connections: opened once per host, with a timeout, closed together,
and libvirt's errors turned into messages that name the host and the fix."""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import libvirt

from ..core.errors import HostUnreachable, NotFound, VpdError
from . import libvirt_steps  # noqa: F401  (records changing libvirt calls as steps, for --explain)
from .inventory import Host

T = TypeVar("T")

# libvirt prints every error to stderr by default; vpd reports them itself.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_event_loop_started = False
_event_lock = threading.Lock()


def ensure_event_loop() -> None:
    """Run libvirt's default event loop in a daemon thread (needed for console
    streams, keepalive and domain events). Must happen before the first open."""
    global _event_loop_started
    with _event_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def loop() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=loop, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


_REMOTE_URI = re.compile(r"\b[a-z0-9+]+\+ssh://(?:[^@/\s]+@)?(\[[^\]]+\]|[^/:?\s]+)")


def host_key_problem(host: Host, msg: str) -> tuple[str, str, bool] | None:
    """(message, hint, vpd's own hop) when `msg` says an SSH host key was not trusted, naming the hop: `host`'s
    own connection to a peer named in the message (a migration's, which libvirtd on `host`
    opens as root), or else vpd's connection to `host`."""
    if "host key verification failed" not in msg.lower():
        return None
    peer = _REMOTE_URI.search(msg)
    if peer and peer.group(1) not in (host.hostname, host.address):
        name = peer.group(1)
        return (f"{host.name} -> {name}: SSH host key verification failed: root on {host.name} does not "
                f"trust {name}'s host key (this hop is {host.name}'s own, e.g. its libvirtd carrying a "
                f"migration, not vpd's): {msg}",
                f"add {name}'s host key to root's known_hosts on {host.name}; after a rename, "
                f"`vpd host prepare HOST --set-fqdn {name}` adds it on every peer", False)
    return (f"vpd -> {host.name}: SSH host key verification failed ({host.uri}): {msg}",
            "the inventory's ssh_known_hosts (or your ~/.ssh/known_hosts) lacks or has another key "
            f"for {host.hostname or host.name}", True)


def explain(host: Host, exc: libvirt.libvirtError) -> VpdError:
    """Translate a libvirt error into a VpdError naming the host and what to do."""
    msg = exc.get_error_message() or str(exc)
    code = exc.get_error_code()
    low = msg.lower()
    where = f"host {host.name} ({host.uri})"
    hop = host_key_problem(host, msg)
    if hop:
        return (HostUnreachable if hop[2] else VpdError)(hop[0], hint=hop[1])
    if code == libvirt.VIR_ERR_AUTH_FAILED or "authentication" in low or "permission denied" in low:
        return HostUnreachable(f"{where}: authentication refused: {msg}",
                               hint="check the SSH identity in the inventory and that its key is in root's authorized_keys")
    if "connection refused" in low:
        return HostUnreachable(f"{where}: libvirt daemon is not listening: {msg}",
                               hint="start libvirtd on that host (or `vpd lab up` for the lab)")
    if "no such file" in low or "failed to connect socket" in low:
        return HostUnreachable(f"{where}: libvirt daemon is not running: {msg}",
                               hint="start libvirtd (e.g. `libvirtd -d`) or bring the lab up with `vpd lab up`")
    if "no route" in low or "timed out" in low or "unreachable" in low or "resolve" in low:
        return HostUnreachable(f"{where}: unreachable: {msg}",
                               hint="check the address/name in the inventory and the network path to it")
    return VpdError(f"{where}: {msg}")


# libvirt's "no such object" codes; any other error in a lookup (a dropped connection, a
# daemon restarting) is not evidence that the object is missing.
NOT_FOUND_CODES = frozenset(getattr(libvirt, code) for code in (
    "VIR_ERR_NO_DOMAIN", "VIR_ERR_NO_STORAGE_POOL", "VIR_ERR_NO_STORAGE_VOL", "VIR_ERR_NO_NETWORK",
    "VIR_ERR_NO_DOMAIN_SNAPSHOT", "VIR_ERR_NO_DOMAIN_CHECKPOINT", "VIR_ERR_NO_SECRET", "VIR_ERR_NO_INTERFACE",
    "VIR_ERR_NO_NWFILTER", "VIR_ERR_NO_NODE_DEVICE", "VIR_ERR_NO_NETWORK_PORT", "VIR_ERR_NO_DOMAIN_BACKUP",
) if hasattr(libvirt, code))


def is_not_found(exc: libvirt.libvirtError) -> bool:
    return exc.get_error_code() in NOT_FOUND_CODES


def lookup(host: Host, fn: Callable[[], T], missing: str, hint: str | None = None) -> T:
    """fn() looks an object up; libvirt's "no such ..." becomes NotFound(missing) (exit 2,
    nothing changed), any other libvirt error is explained as a failure on `host`."""
    try:
        return fn()
    except libvirt.libvirtError as exc:
        if is_not_found(exc):
            raise NotFound(missing, hint=hint) from None
        raise explain(host, exc) from None


# libvirt refuses to refresh a pool while it builds a volume in it (another vpd's create or
# copy): "storage pool 'X' has asynchronous jobs running". Its in-memory list already holds the
# volume being built, so after a short wait the caller goes on with that list.
REFRESH_RETRY_S = 2.0


def pool_busy(exc: libvirt.libvirtError) -> bool:
    """libvirt refused a pool call because it still builds a volume in that pool."""
    return "asynchronous jobs" in (exc.get_error_message() or "")


def refresh_pool(pool: libvirt.virStoragePool, retry_s: float = REFRESH_RETRY_S) -> bool:
    """Re-read a pool's volumes; False when libvirt still builds a volume in it after `retry_s`
    (its list is then libvirt's, which holds that volume). Any other error is raised."""
    deadline = time.monotonic() + retry_s
    while True:
        try:
            pool.refresh(0)
            return True
        except libvirt.libvirtError as exc:
            if not pool_busy(exc):
                raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def open_connection(host: Host, timeout: float = 10.0) -> libvirt.virConnect:
    """Open a connection; give up after `timeout` seconds instead of hanging on a dead host."""
    ensure_event_loop()
    box: dict = {}

    def worker() -> None:
        try:
            box["conn"] = libvirt.open(host.connect_uri())
        except libvirt.libvirtError as exc:
            box["error"] = exc
        except (ValueError, TypeError) as exc:  # a URI the binding refuses (an embedded NUL)
            box["error"] = HostUnreachable(f"host {host.name}: cannot open libvirt URI {host.uri!r}: {exc}",
                                           hint="fix the host's uri in the inventory")

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise HostUnreachable(f"host {host.name} ({host.uri}): no answer within {timeout:g} s",
                              hint="is the host up and its libvirt port reachable?")
    if isinstance(box.get("error"), HostUnreachable):
        raise box["error"]
    if "error" in box:
        raise explain(host, box["error"])
    conn = box["conn"]
    if not host.uri.startswith("test:"):
        try:
            conn.setKeepAlive(5, 3)  # notice a dead peer in ~20 s instead of never
        except libvirt.libvirtError:
            pass
    return conn


class Connections:
    """One connection per host, opened on first use, closed by `close()` or `with`."""

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self._conns: dict[str, libvirt.virConnect] = {}

    def get(self, host: Host) -> libvirt.virConnect:
        conn = self._conns.get(host.name)
        if conn is not None and conn.isAlive():
            return conn
        conn = open_connection(host, self.timeout)
        self._conns[host.name] = conn
        return conn

    def open_hosts(self) -> set[str]:
        """Names of the hosts a connection was opened to (the hosts this request touches)."""
        return set(self._conns)

    def call(self, host: Host, fn: Callable[[libvirt.virConnect], T]) -> T:
        """Run fn(conn) and translate libvirt errors into VpdErrors for this host."""
        try:
            return fn(self.get(host))
        except libvirt.libvirtError as exc:
            raise explain(host, exc) from None

    def close(self) -> None:
        for conn in self._conns.values():
            try:
                conn.close()
            except libvirt.libvirtError:
                pass
        self._conns.clear()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
