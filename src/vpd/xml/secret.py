"""``<secret>``: a libvirt secret (a password kept by libvirtd, e.g. for iSCSI CHAP)."""
from __future__ import annotations

from typing import Literal

from pydantic_xml import attr, element

from .base import LibvirtXml


class SecretUsage(LibvirtXml, tag="usage"):
    """What the secret is for; pools and disks find it by `target` (its usage id)."""

    type: Literal["volume", "ceph", "iscsi", "tls", "vtpm"] = attr()
    target: str | None = element(default=None)


class Secret(LibvirtXml, tag="secret"):
    ephemeral: Literal["yes", "no"] = attr(default="no")
    private: Literal["yes", "no"] = attr(default="yes")
    """'yes': libvirt never hands the value back to any client."""
    uuid: str | None = element(default=None)
    description: str | None = element(default=None)
    usage: SecretUsage = element()


def iscsi_secret(usage_id: str, description: str) -> Secret:
    """A persistent, private CHAP secret that pools and disks name by `usage_id`."""
    return Secret(usage=SecretUsage(type="iscsi", target=usage_id), description=description)
