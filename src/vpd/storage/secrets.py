"""CHAP passwords: read from a file, the environment or a prompt, kept in libvirt secrets.

A password is never an argument on vpd's command line, never journaled, never printed:
libvirt keeps it in a private secret that pools and disks name by its usage id.
"""
from __future__ import annotations

import os
from pathlib import Path

import libvirt

from ..core.errors import UsageError
from ..xml.secret import iscsi_secret

ENV_VAR = "VPD_CHAP_SECRET"
MIN_LENGTH, MAX_LENGTH = 12, 16  # RFC 3720 §8.2.1 asks at least 12 bytes; tgt and LIO take 16 at most


def check_password(password: str) -> str:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH or not password.isprintable() or " " in password:
        raise UsageError(f"a CHAP secret must be {MIN_LENGTH}-{MAX_LENGTH} printable characters without spaces",
                         hint="RFC 3720 asks at least 12; iSCSI targets accept at most 16")
    return password


def read_password(secret_file: str | None) -> str | None:
    """From --chap-secret-file, else $VPD_CHAP_SECRET; None when neither is given."""
    if secret_file:
        try:
            text = Path(secret_file).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read the CHAP secret file {secret_file}: {exc.strerror}") from None
        return check_password(text.strip("\n"))
    if os.environ.get(ENV_VAR):
        return check_password(os.environ[ENV_VAR])
    return None


def pool_usage_id(pool_name: str) -> str:
    return f"vpd-chap-{pool_name}"


def find(conn: libvirt.virConnect, usage_id: str) -> libvirt.virSecret | None:
    try:
        return conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_ISCSI, usage_id)
    except libvirt.libvirtError:
        return None


def store(conn: libvirt.virConnect, usage_id: str, password: str, description: str) -> bool:
    """Create (or update) the secret `usage_id` holding `password`; True if it was created."""
    found = find(conn, usage_id)
    created = found is None
    secret = found if found is not None else conn.secretDefineXML(
        iscsi_secret(usage_id, description).to_xml_string())
    try:
        secret.setValue(password.encode())
    except libvirt.libvirtError:
        if created:
            secret.undefine()
        raise
    return created


def remove(conn: libvirt.virConnect, usage_id: str) -> bool:
    secret = find(conn, usage_id)
    if secret is None:
        return False
    secret.undefine()
    return True
