"""Finding, starting and stopping VMs."""
from __future__ import annotations

import time

import libvirt

from ..connect.inventory import Host
from ..core.errors import NotFound, VpdError
from ..core.names import check_name
from .console import ConsoleStream


def find_domain(conn: libvirt.virConnect, host: Host, name: str) -> libvirt.virDomain:
    check_name(name, "VM name")
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        raise NotFound(f"no VM named {name!r} on {host.name}", hint="`vpd vm list --all` lists them") from None


def start(dom: libvirt.virDomain, wait_boot: bool = False, timeout: float = 60.0) -> dict:
    """Start a VM. With wait_boot, start it paused, attach to its serial console,
    resume, and wait for the guest's boot marker, so no byte of the boot is missed."""
    if dom.isActive():
        raise VpdError(f"VM {dom.name()} is already running")
    if not wait_boot:
        dom.create()
        return {"started": True}
    from ..lab.guest_channel import ConsoleReader

    began = time.monotonic()
    dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
    try:
        with ConsoleStream(dom, "serial0") as console:
            dom.resume()
            boot_id = ConsoleReader(console.recv).wait_for_boot(timeout)
    except BaseException:
        # A guest that never showed its marker is not left half-started.
        try:
            dom.destroy()
        except libvirt.libvirtError:
            pass
        raise
    return {"started": True, "boot_id": boot_id, "boot_seconds": round(time.monotonic() - began, 2)}


def destroy(dom: libvirt.virDomain) -> None:
    if not dom.isActive():
        raise VpdError(f"VM {dom.name()} is not running")
    dom.destroy()


def undefine(dom: libvirt.virDomain, remove_storage: bool = False) -> list[str]:
    """Undefine a stopped VM; with remove_storage also delete its disk volumes."""
    from ..xml.domain import Domain

    if dom.isActive():
        raise VpdError(f"VM {dom.name()} is running", hint="stop it first (`vpd vm destroy`)")
    removed = []
    paths = Domain.from_xml(dom.XMLDesc(0)).disk_paths() if remove_storage else []
    conn = dom.connect()
    flags = libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    dom.undefineFlags(flags)
    for path in paths:
        try:
            conn.storageVolLookupByPath(str(path)).delete(0)
            removed.append(str(path))
        except libvirt.libvirtError:
            pass  # not a managed volume: leave files vpd does not own
    return removed
