"""cloud-init's NoCloud seed for a VM's first boot: user-data, meta-data (a fresh instance-id, so
cloud-init treats every seed as a new machine) and optional network-config, in an ISO 9660 image
whose volume label is `cidata` — the label cloud-init's NoCloud datasource looks for on a
read-only drive. The image is built in Python (pycdlib, with Rock Ridge and Joliet names, as
`cloud-localds` does with genisoimage), so no tool has to be installed on the host.

Everything a user gives is checked here, before anything is made: the user name, the hostname,
that an SSH key file holds public keys (not a private key), that a password is a crypt(3) hash,
and that user-data and network-config files are valid YAML of the expected shape.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..core.errors import UsageError

if TYPE_CHECKING:
    import libvirt

    from ..core.undo import Undo

SEED_LABEL = "cidata"
FILES = ("user-data", "meta-data", "network-config")
_ISO_NAMES = {"user-data": "/USERDATA.;1", "meta-data": "/METADATA.;1", "network-config": "/NETWORKC.;1"}
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_CRYPT = re.compile(r"^\$(1|5|6|y|gy|7|2[abxy])\$[./A-Za-z0-9$=,]{8,}$")
_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
              "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")


@dataclass(frozen=True)
class Seed:
    """The three NoCloud files, as text."""

    user_data: str
    meta_data: str
    network_config: str | None = None
    hostname: str | None = None
    user: str | None = None
    """The user cloud-init creates (None with a user-data file of one's own): `vpd vm ssh`'s default."""
    ssh_keys: tuple[str, ...] = ()
    ssh_key_file: str | None = None
    """Where the public keys were read (on vpd's machine): `vm ssh` uses the private key beside it."""

    def files(self) -> dict[str, str]:
        out = {"user-data": self.user_data, "meta-data": self.meta_data}
        if self.network_config is not None:
            out["network-config"] = self.network_config
        return out


def check_hostname(hostname: str) -> str:
    if len(hostname) > 253 or not _HOSTNAME.match(hostname):
        raise UsageError(f"hostname {hostname!r} is not a valid host name",
                         hint="letters, digits and '-' in dot-separated labels of at most 63 characters")
    return hostname


def check_user(user: str) -> str:
    if not _USER.match(user):
        raise UsageError(f"user name {user!r} is not a valid Linux user name",
                         hint="lower-case letters, digits, '_' and '-', starting with a letter or '_'")
    return user


def check_password_hash(value: str) -> str:
    if not _CRYPT.match(value):
        raise UsageError("password-hash must be a crypt(3) hash such as $6$... or $y$..., never the password itself",
                         hint="make one with `mkpasswd -m sha-512` or `openssl passwd -6`")
    return value


def public_keys(text: str, source: str) -> list[str]:
    """The public keys of an authorized_keys-style text (comments and blank lines skipped)."""
    if "PRIVATE KEY" in text:
        raise UsageError(f"{source} is a private key", hint="give the .pub file")
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2 or parts[0] not in _KEY_TYPES:
            raise UsageError(f"{source}: not an SSH public key: {line[:40]!r}...")
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{source}: the key's base64 is damaged") from None
        if parts[0].encode() not in blob[:64]:
            raise UsageError(f"{source}: the key data does not match its type {parts[0]}")
        keys.append(line)
    if not keys:
        raise UsageError(f"{source} holds no SSH public key")
    return keys


def read_key_file(path: str) -> list[str]:
    try:
        return public_keys(Path(path).expanduser().read_text(), path)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read SSH key file {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _read_yaml(path: str, what: str) -> tuple[str, object]:
    try:
        text = Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return text, yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{what} {path} is not valid YAML: {exc}") from None


def user_data_file(path: str) -> str:
    """A #cloud-config file (a YAML mapping) or a script (#!...), as cloud-init accepts them."""
    text, data = _read_yaml(path, "user-data")
    if text.startswith("#!"):
        return text
    if not text.startswith("#cloud-config") or not isinstance(data, dict):
        raise UsageError(f"user-data {path} must start with '#cloud-config' and be a YAML mapping "
                         "(or be a script starting with '#!')")
    return text


def network_config_file(path: str) -> str:
    """Network config version 1 or 2, at the top or under `network:`."""
    text, data = _read_yaml(path, "network-config")
    inner = data.get("network", data) if isinstance(data, dict) else None
    if not isinstance(inner, dict) or inner.get("version") not in (1, 2):
        raise UsageError(f"network-config {path} must be a YAML mapping with version: 1 or 2",
                         hint="e.g. version: 2 / ethernets: {eth0: {dhcp4: true}}")
    return text


def user_data(user: str | None, keys: list[str], hostname: str | None, password_hash: str | None) -> str:
    """#cloud-config for one user with sudo and the given keys (password login only with a hash)."""
    config: dict[str, object] = {}
    if hostname:
        config.update(hostname=hostname.split(".")[0], manage_etc_hosts=True)
        if "." in hostname:
            config["fqdn"] = hostname
    if user:
        entry: dict[str, object] = {"name": user, "groups": ["sudo"], "shell": "/bin/bash",
                                    "sudo": "ALL=(ALL) NOPASSWD:ALL"}
        if keys:
            entry["ssh_authorized_keys"] = keys
        if password_hash:
            entry["passwd"] = password_hash
            entry["lock_passwd"] = False
        config["users"] = ["default", entry]
    elif keys:
        config["ssh_authorized_keys"] = keys
    elif password_hash:
        raise UsageError("password-hash needs user=NAME")
    config["ssh_pwauth"] = bool(password_hash)
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=2**16)


def meta_data(vm_name: str, hostname: str | None) -> str:
    """A new instance-id each time: cloud-init runs its per-instance modules again."""
    return yaml.safe_dump({"instance-id": f"{vm_name}-{uuid.uuid4()}",
                           "local-hostname": (hostname or vm_name).split(".")[0]}, sort_keys=False)


def build_iso(seed: Seed) -> bytes:
    """The seed as an ISO 9660 image labelled `cidata`."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=SEED_LABEL, sys_ident="LINUX", joliet=3, rock_ridge="1.09")
    for name, text in seed.files().items():
        data = text.encode()
        iso.add_fp(io.BytesIO(data), len(data), _ISO_NAMES[name], rr_name=name, joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_iso(data: bytes) -> tuple[str, dict[str, str]]:
    """(volume label, {file name: text}) of a seed image, through its Rock Ridge names."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files = {}
        for name in FILES:
            out = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            except pycdlib.pycdlibexception.PyCdlibInvalidInput:
                continue
            files[name] = out.getvalue().decode()
        return label, files
    finally:
        iso.close()


def upload_seed(pool: libvirt.virStoragePool, name: str, image: bytes, undo: Undo) -> str:
    """A raw volume `name` in `pool` holding the seed image (its deletion pushed on `undo`); its path."""
    import tempfile

    from ..storage.streams import upload_volume
    from ..xml.volume import volume as volume_xml

    vol = pool.createXML(volume_xml(name, len(image), fmt="raw").to_xml_string(), 0)
    undo.push(lambda: vol.delete(0), f"delete seed volume {name}")
    with tempfile.NamedTemporaryFile(prefix="vpd-seed-", suffix=".iso") as f:
        f.write(image)
        f.flush()
        upload_volume(vol, Path(f.name))
    return vol.path()
