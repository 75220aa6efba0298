"""`vpd web`: where to listen (loopback by default; elsewhere only with TLS or an explicit
--insecure), the first operator token, and uvicorn."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UsageError
from .tokens import TokenStore


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a name: it may resolve anywhere

    def url(self, tls: bool) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if tls else 'http'}://{host}:{self.port}/"


def parse_listen(text: str) -> Listen:
    """ADDRESS:PORT, [IPv6]:PORT, or :PORT (loopback)."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: use ADDRESS:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    return Listen(host or "127.0.0.1", int(port))


def check_exposure(listen: Listen, cert: str | None, key: str | None, insecure: bool) -> bool:
    """Whether to serve TLS. Off loopback, tokens would cross the network in clear: refuse
    unless there is a certificate or the user said --insecure."""
    if bool(cert) != bool(key):
        raise UsageError("--cert and --key go together")
    for path in filter(None, (cert, key)):
        if not Path(path).is_file():
            raise UsageError(f"no such file: {path}")
    if not listen.loopback and not cert and not insecure:
        raise UsageError(f"--listen {listen.host} is not a loopback address: tokens would cross the network in clear",
                         hint="give --cert and --key (TLS), or --insecure if the network is yours alone")
    return bool(cert)


def first_token(store: TokenStore) -> str | None:
    """On the first start (no token at all) make an operator token; the caller prints it once."""
    if store.list():
        return None
    _, token = store.create("operator", label="created on first start")
    return token


def serve(listen: Listen, inventory: str | None, read_only: bool, cert: str | None, key: str | None,
          log_level: str = "info") -> None:
    import uvicorn

    from .app import create_app

    app = create_app(inventory, read_only=read_only, secure_cookies=bool(cert))
    uvicorn.run(app, host=listen.host, port=listen.port, ssl_certfile=cert, ssl_keyfile=key, log_level=log_level,
                proxy_headers=False, server_header=False)
