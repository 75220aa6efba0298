"""The inventory: which hosts vpd manages and how to reach them (TOML).

    [[hosts]]
    name = "hosta"
    uri = "qemu+ssh://root@hosta.example.org/system"
    address = "192.0.2.11"          # optional: for firewall rules and probes
    fqdn = "hosta.example.org"      # optional: its fully qualified name (else the URI's host name)
    ssh_identity = "~/.ssh/id_ed25519"  # optional
    incus = "https://192.0.2.11:8443"   # optional: its incusd (containers); default: the local
                                        # socket for a local host, else https://ADDRESS:8443

Which file: --inventory, else $VPD_INVENTORY, else the lab's while a lab is
up, else ~/.config/vpd/inventory.toml, else the local qemu:///system alone.
"""
from __future__ import annotations

import ipaddress
import socket
import tomllib
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..core import paths
from ..core.errors import NotFound, UsageError
from ..core.names import check_name, is_dns_name

# The query parameters vpd lets through to libvirt, per transport (libvirt's remote URI
# parameters, https://libvirt.org/uri.html#remote-uris). Left out on purpose: `command`
# (the ssh binary libvirt runs locally), `netcat` and `proxy` (programs run on the other end
# through its shell), `name` (another URI behind this one): an inventory entry must not make
# vpd run programs. `no_verify` passes only where the user wrote it.
_SSH_PARAMS = {"keyfile", "known_hosts", "known_hosts_verify", "no_verify", "no_tty", "sshauth", "socket", "mode"}
URI_PARAMS: dict[str, set[str]] = {
    "": {"socket", "mode"}, "unix": {"socket", "mode"}, "ssh": _SSH_PARAMS, "libssh2": _SSH_PARAMS,
    "libssh": _SSH_PARAMS, "tls": {"pkipath", "no_verify", "tls_priority", "mode"}, "tcp": {"mode"},
}
_URI_VALUES = {
    "no_verify": {"0", "1"}, "no_tty": {"0", "1"}, "mode": {"auto", "legacy", "direct"},
    "known_hosts_verify": {"normal", "auto", "ignore"},
}
_URI_PATHS = {"keyfile", "known_hosts", "socket", "pkipath"}
_SSHAUTH = {"agent", "privkey", "password", "keyboard-interactive"}


def check_uri_query(scheme: str, query: str) -> None:
    """ValueError naming the parameter when `query` holds one vpd does not pass to libvirt."""
    transport = scheme.partition("+")[2]
    allowed = URI_PARAMS.get(transport, set()) if scheme != "test" else set()
    seen: set[str] = set()
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key not in allowed:
            raise ValueError(f"URI parameter {key!r} is not allowed for {scheme}://"
                             + (f" (allowed: {', '.join(sorted(allowed))})" if allowed else "")
                             + ("; it makes libvirt run a program" if key in ("command", "netcat", "proxy") else ""))
        if key in seen:
            raise ValueError(f"URI parameter {key!r} is given twice")
        seen.add(key)
        if key in _URI_VALUES and value not in _URI_VALUES[key]:
            raise ValueError(f"URI parameter {key}={value!r}: use one of {', '.join(sorted(_URI_VALUES[key]))}")
        if key in _URI_PATHS and (not value.startswith("/") or any(c.isspace() or c in "'\"`;|&<>$\\" for c in value)
                                  or ".." in value.split("/")):
            raise ValueError(f"URI parameter {key}={value!r}: use an absolute path of plain characters")
        if key == "sshauth" and not set(value.split(",")) <= _SSHAUTH:
            raise ValueError(f"URI parameter sshauth={value!r}: use {', '.join(sorted(_SSHAUTH))}")


ALLOWED_SCHEMES = {"qemu", "qemu+ssh", "qemu+tcp", "qemu+tls", "qemu+unix", "qemu+libssh2", "test"}


class Host(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    uri: str
    address: str | None = None
    fqdn: str | None = None
    ssh_user: str = "root"
    ssh_identity: str | None = None
    ssh_known_hosts: str | None = None
    ssh_port: int = 22
    incus: str | None = None  # where its incusd listens: unix:/path/unix.socket or https://HOST[:PORT]
    # What a lab writes about its hosts (lab/layout.inventory_toml), so the product
    # need not read the lab's own state: the link's rate in Mbit/s (the migration
    # policy's bandwidth, when known) and that the host is a lab host (whose nested
    # KVM vm/accel does not trust without a test boot).
    link_mbit: int | None = None
    lab: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "host name")

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        # '&' separates the (allow-listed, checked) query parameters; the rest never belongs.
        if any(c.isspace() or not c.isprintable() or c in "'\"`;|<>\\" for c in v):
            raise ValueError(f"libvirt URI {v!r} contains characters that do not belong in a URI "
                             "(control characters, spaces, quotes, shell punctuation)")
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 - a port that is not a number raises here
        except ValueError as exc:
            raise ValueError(f"libvirt URI {v!r} cannot be parsed: {exc}") from None
        if parts.scheme not in ALLOWED_SCHEMES:
            raise ValueError(f"libvirt URI {v!r}: scheme must be one of {', '.join(sorted(ALLOWED_SCHEMES))}")
        if parts.fragment:
            raise ValueError(f"libvirt URI {v!r}: a URI has no '#' part here")
        check_uri_query(parts.scheme, parts.query)
        return v

    @field_validator("incus")
    @classmethod
    def _incus(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("unix:/", "https://")) or any(c.isspace() or c in "'\"`;|&<>" for c in v):
            raise ValueError(f"incus endpoint {v!r}: use unix:/path/to/unix.socket or https://HOST[:PORT]")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None:
            ipaddress.ip_address(v)  # raises ValueError with a clear message
        return v

    @field_validator("fqdn")
    @classmethod
    def _fqdn(cls, v: str | None) -> str | None:
        if v is not None and not is_dns_name(v):
            raise ValueError(f"{v!r} is not a host name (letters, digits, '-' in dot-separated labels)")
        return v

    def known_as(self) -> set[str]:
        """Every way a user may name this host: inventory name, FQDN, URI host, address
        (the seeds write `hostb.vpd.lab` where the inventory says `hostb`)."""
        names = {self.name.lower()}
        for other in (self.fqdn, self.hostname, self.address):
            if other:
                names.add(other.lower())
        return names

    @property
    def hostname(self) -> str | None:
        """The host part of the URI (None for local URIs)."""
        return urlsplit(self.uri).hostname

    @property
    def is_local(self) -> bool:
        """A URI without a host (qemu:///system, test:///default) is this machine."""
        return self.hostname is None

    def connect_uri(self) -> str:
        """The URI to open: ssh transports get the inventory's identity as libvirt's keyfile."""
        parts = urlsplit(self.uri)
        if "ssh" in parts.scheme and self.ssh_identity:
            query = dict(parse_qsl(parts.query))
            query.setdefault("keyfile", str(Path(self.ssh_identity).expanduser()))
            return urlunsplit(parts._replace(query=urlencode(query)))
        return self.uri


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[Host]
    source: str = "built-in"

    @field_validator("hosts")
    @classmethod
    def _unique(cls, hosts: list[Host]) -> list[Host]:
        if not hosts:
            raise ValueError("the inventory lists no hosts")
        seen: set[str] = set()
        for h in hosts:
            if h.name in seen:
                raise ValueError(f"host {h.name!r} is listed twice")
            seen.add(h.name)
        return hosts

    def get(self, ref: str) -> Host:
        """The host named `ref` by its inventory name, else by its FQDN, URI host or address."""
        for h in self.hosts:
            if h.name == ref:
                return h
        wanted = str(ref).lower().rstrip(".")
        matches = [h for h in self.hosts if wanted in h.known_as()]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(f"{ref!r} names several hosts: {', '.join(h.name for h in matches)}",
                             hint="use the inventory name")
        raise NotFound(
            f"unknown host {ref!r} (inventory: {self.source})",
            hint=f"known hosts: {', '.join(h.name for h in self.hosts)}",
        )

    def select(self, names: list[str] | None) -> list[Host]:
        return [self.get(n) for n in names] if names else list(self.hosts)

    def to_toml(self) -> str:
        lines = []
        for h in self.hosts:
            lines.append("[[hosts]]")
            for key, value in h.model_dump(exclude_defaults=True).items():
                lines.append(f"{key} = {_toml_str(value)}")
            lines.append("")
        return "\n".join(lines)


def _toml_str(value) -> str:
    if isinstance(value, bool):  # before int: bool is an int, and TOML spells it lower-case
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def load(path: Path) -> Inventory:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"inventory {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"inventory {path} is not valid TOML: {exc}") from None
    try:
        return Inventory(**data, source=str(path))
    except (ValidationError, TypeError) as exc:
        raise UsageError(f"inventory {path} is invalid:\n{_explain(exc)}",
                         hint="each [[hosts]] needs name and uri; see the README") from None


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "\n".join(
            f"  {'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in exc.errors()
        )
    return f"  {exc}"


def local_inventory() -> Inventory:
    short = socket.gethostname().split(".")[0] or "localhost"
    try:
        name = check_name(short)
    except UsageError:
        name = "localhost"
    return Inventory(hosts=[Host(name=name, uri="qemu:///system")], source="local qemu:///system")


def resolve(explicit: str | Path | None = None) -> Inventory:
    """The inventory in force (see the module docstring for the order)."""
    if explicit:
        return load(Path(explicit))
    import os

    if os.environ.get("VPD_INVENTORY"):
        return load(Path(os.environ["VPD_INVENTORY"]))
    lab_inv = paths.lab_dir() / "inventory.toml"
    if lab_inv.exists():
        return load(lab_inv)
    user = paths.user_inventory()
    if user.exists():
        return load(user)
    return local_inventory()
