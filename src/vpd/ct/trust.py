"""Trust between vpd and an incusd reached over HTTPS (a host without a socket vpd can open).

incusd lets in a client whose TLS certificate it trusts. vpd keeps one client certificate
(VPD_HOME/incus/client.crt, made once with openssl) and has it trusted with a token made on the
host (`incus config trust add vpd`, which prints a base64 JSON holding a secret, the server
certificate's SHA-256 fingerprint and its addresses). Before sending anything, vpd fetches the
server's certificate and checks it against the token's fingerprint, then pins it
(VPD_HOME/incus/servers/HOST.crt): later connections verify against that certificate alone."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..core import paths
from ..core.errors import UsageError, VpdError

_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


def cert_dir() -> Path:
    return paths.state_dir() / "incus"


def client_cert_paths() -> tuple[Path, Path]:
    return cert_dir() / "client.crt", cert_dir() / "client.key"


def pinned_server_cert(host_name: str) -> Path:
    return cert_dir() / "servers" / f"{host_name}.crt"


def ensure_client_cert() -> tuple[Path, Path]:
    """vpd's client certificate and key, made on first use (EC P-384, as incus makes its own)."""
    crt, key = client_cert_paths()
    if crt.exists() and key.exists():
        return crt, key
    crt.parent.mkdir(parents=True, exist_ok=True)
    tmp_crt, tmp_key = (p.with_name(f"{p.name}.tmp{os.getpid()}") for p in (crt, key))
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-sha384",
            "-nodes", "-days", "3650", "-subj", f"/CN=vpd@{socket.gethostname()}",
            "-keyout", str(tmp_key), "-out", str(tmp_crt)]
    old = os.umask(0o077)  # the key is never readable by others, not even for a moment
    try:
        done = subprocess.run(argv, capture_output=True, text=True)
    except OSError as exc:
        raise VpdError(f"cannot run openssl to make vpd's client certificate: {exc.strerror}") from None
    finally:
        os.umask(old)
    if done.returncode != 0:
        raise VpdError(f"openssl could not make vpd's client certificate: {done.stderr.strip()}")
    tmp_key.replace(key)
    tmp_crt.replace(crt)
    return crt, key


@dataclass(frozen=True)
class TrustToken:
    client_name: str
    fingerprint: str
    addresses: list[str]
    secret: str
    text: str  # as given: incusd takes the whole token


def parse_token(text: str) -> TrustToken:
    """`incus config trust add NAME`'s token: base64 of a JSON object."""
    raw = (text or "").strip()
    try:
        data = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise UsageError("that is not an Incus trust token",
                         hint="make one on the host: incus config trust add vpd") from None
    if not isinstance(data, dict):
        raise UsageError("that is not an Incus trust token")
    fingerprint = str(data.get("fingerprint", "")).lower()
    secret = data.get("secret")
    if not _HEX64.match(fingerprint) or not isinstance(secret, str) or not secret:
        raise UsageError("the trust token has no server fingerprint or secret")
    addresses = [str(a) for a in data.get("addresses") or []]
    return TrustToken(str(data.get("client_name", "")), fingerprint, addresses, secret, raw)


def fingerprint_of(pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def fetch_server_cert(address: str, timeout: float = 10) -> str:
    """The certificate the server presents (not verified here: the caller compares it with
    what it already knows, the token's fingerprint)."""
    host, _, port = address.rpartition(":")
    try:
        return ssl.get_server_certificate((host.strip("[]"), int(port)), timeout=timeout)
    except (OSError, ValueError) as exc:
        raise VpdError(f"no TLS answer from incusd at {address}: {exc}",
                       hint="is core.https_address set there, and the port open?") from None


def pin(host_name: str, address: str, token: TrustToken) -> Path:
    """Fetch the server's certificate, check it is the token's, keep it for later connections."""
    pem = fetch_server_cert(address)
    got = fingerprint_of(pem)
    if got != token.fingerprint:
        raise VpdError(f"incusd at {address} shows certificate {got[:16]}..., the token names "
                       f"{token.fingerprint[:16]}...: not trusting it",
                       hint="a token is made for one server; check the address in the inventory")
    target = pinned_server_cert(host_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(pem)
    return target


def ssl_context(server_cert: Path | None, client: tuple[Path, Path] | None) -> ssl.SSLContext:
    """A pinned server certificate is the only trust anchor, and names are not checked against
    it (incusd's self-signed certificate names no address); without one, the system's CAs."""
    if server_cert is not None:
        ctx = ssl.create_default_context(cafile=str(server_cert))
        ctx.check_hostname = False
    else:
        ctx = ssl.create_default_context()
    if client is not None:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx
