"""Removing a VM's cloud-init seed once it has served (`vpd vm seed-remove`): the read-only
CD-ROM `NAME-cidata.iso` is ejected from the running guest, dropped from its definition, and
its volume deleted. Only after cloud-init has finished, unless forced: a guest that has not yet
read its seed would boot as a machine with no user, no key and no hostname.

Whether cloud-init finished is asked of the guest agent (`cloud-init status`) when it answers,
else read from the console, where cloud-init prints `Cloud-init v. X finished at ...`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import libvirt

from ..connect.inventory import Host
from ..core.errors import VpdError
from ..xml.devices import Disk
from ..xml.domain import Domain
from .inventory import volume_by_path

SEED_SUFFIX = "-cidata.iso"
_FINISHED = re.compile(r"Cloud-init v\. \S+ finished at")


@dataclass(frozen=True)
class Evidence:
    finished: bool | None
    """True/False when the source could tell; None when no source could."""
    source: str
    detail: str


def seed_disk(domain: Domain) -> Disk | None:
    """The CD-ROM holding the VM's cloud-init seed (vpd names it NAME-cidata.iso), if attached."""
    for disk in domain.disks:
        ref = disk.source.reference if disk.source is not None else None
        if disk.device == "cdrom" and ref and ref.rsplit("/", 1)[-1].endswith(SEED_SUFFIX):
            return disk
    return None


def finished_on_console(console_text: str) -> bool:
    """cloud-init's final message on the serial console: its last stage ran."""
    return _FINISHED.search(console_text) is not None


def status_says_done(status_output: str) -> bool | None:
    """`cloud-init status`: `status: done` (True), `running`/`not started` (False); else None."""
    match = re.search(r"^status:\s*(\S.*)$", status_output, re.MULTILINE)
    if match is None:
        return None
    state = match.group(1).strip()
    if state == "done":
        return True
    if state in ("running", "not started", "not run"):
        return False
    return None  # error, disabled, degraded...: cloud-init ran, but say so rather than guess


def remove(host: Host, dom: libvirt.virDomain) -> dict:
    """Eject the seed from the running guest, drop its drive from the definition, delete its
    volume. The seed must be attached (VpdError otherwise)."""
    active, persistent = bool(dom.isActive()), bool(dom.isPersistent())
    live_disk = seed_disk(Domain.from_xml(dom.XMLDesc(0)))
    config_disk = seed_disk(Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))) if persistent else None
    disk = live_disk if active else config_disk
    if disk is None or disk.source is None:
        raise VpdError(f"VM {dom.name()} on {host.name} has no cloud-init seed attached")
    path = disk.source.reference
    try:
        if active and live_disk is not None:
            # A SATA/IDE CD-ROM cannot be unplugged from a running guest; its media can be ejected.
            dom.updateDeviceFlags(live_disk.model_copy(update={"source": None}).to_xml_string(),
                                  libvirt.VIR_DOMAIN_AFFECT_LIVE)
        if config_disk is not None:
            dom.detachDeviceFlags(config_disk.to_xml_string(), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError as exc:
        raise VpdError(f"{host.name}: removing the seed from {dom.name()} failed: {exc.get_error_message()}") from None
    deleted = False
    vol = volume_by_path(dom.connect(), path) if path else None
    if vol is not None:
        vol.delete(0)
        deleted = True
    return {"seed": path, "ejected": active, "detached": config_disk is not None, "volume_deleted": deleted}
