"""Finding, starting, stopping, inspecting and (re)defining VMs."""
from __future__ import annotations

import time

import libvirt

from ..connect.hostfiles import HostFiles
from ..connect.inventory import Host
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from ..xml.checks import explain_parse_error
from ..xml.domain import Domain
from ..xml.edit import DomainEditor
from .clone import linked_dependents
from .console import ConsoleStream
from .inventory import STATE_NAMES, is_template, undefine_flags, volume_by_path


def start(dom: libvirt.virDomain, wait_boot: bool = False, timeout: float = 60.0) -> dict:
    """Start a VM. With wait_boot, start it paused, attach to its serial console,
    resume, and wait for the guest's boot marker, so no byte of the boot is missed."""
    if dom.isActive():
        raise VpdError(f"VM {dom.name()} is already running")
    if is_template(dom):
        raise UsageError(f"{dom.name()} is a template: templates do not run",
                         hint=f"create a VM from it (vpd vm create NEW --template {dom.name()}) "
                              "or unseal it (vpd template unseal)")
    _refuse_if_linked(dom, "start")
    if not wait_boot:
        dom.create()
        return {"started": True}
    from .guest_channel import ConsoleReader

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


def _refuse_if_linked(dom: libvirt.virDomain, action: str) -> None:
    dependents = linked_dependents(dom.connect(), dom)
    if dependents:
        raise UsageError(f"cannot {action} {dom.name()}: linked clones are based on its disks "
                         f"({', '.join(dependents)})",
                         hint="remove those clones first; their disks read unwritten blocks from this VM's")


def start_new(dom: libvirt.virDomain, wait_boot: bool = False) -> dict:
    """Start a VM vpd just made; if it does not start, it is removed with its disks,
    so nothing half-made stays behind."""
    try:
        return start(dom, wait_boot=wait_boot)
    except BaseException:
        undefine(dom, remove_storage=True)
        raise


def destroy(dom: libvirt.virDomain) -> None:
    if not dom.isActive():
        raise VpdError(f"VM {dom.name()} is not running")
    dom.destroy()


def owned_storage(domain: Domain) -> list[str]:
    """What `undefine --remove-storage` may delete (those that are pool volumes): the disks; a
    kernel and initrd that are pool volumes (an imported VM's) — host files such as /boot/vmlinuz
    are no volume and stay; of the CD-ROMs only the cloud-init seed vpd made for this VM — an
    installer ISO is the user's, even in a pool."""
    seed = f"{domain.name}-cidata.iso"
    paths = [ref for d in domain.disks if d.source is not None and (ref := d.source.reference) is not None
             and (d.device != "cdrom" or ref.rsplit("/", 1)[-1] == seed)]
    return paths + [str(p) for p in (domain.os.kernel, domain.os.initrd) if p]


def undefine(dom: libvirt.virDomain, remove_storage: bool = False) -> list[str]:
    """Undefine a stopped VM; with remove_storage also delete its disk volumes."""
    if dom.isActive():
        raise VpdError(f"VM {dom.name()} is running", hint="stop it first (`vpd vm destroy`)")
    if remove_storage:
        _refuse_if_linked(dom, "remove the storage of")
    removed = []
    paths = []
    if remove_storage:
        paths = owned_storage(Domain.from_xml(dom.XMLDesc(0)))
    conn = dom.connect()
    dom.undefineFlags(undefine_flags(dom))
    for path in paths:
        vol = volume_by_path(conn, str(path))
        if vol is None:
            continue  # not a managed volume: leave files vpd does not own
        try:
            vol.delete(0)
            removed.append(str(path))
        except libvirt.libvirtError:
            pass  # gone meanwhile
    return removed


def _state(dom: libvirt.virDomain) -> int:
    return dom.state()[0]


def shutdown(dom: libvirt.virDomain, timeout: float = 60.0, force: bool = False) -> dict:
    """Ask the guest to power off (ACPI) and wait until it has; past `timeout`, destroy it if `force`.

    The guest must listen for ACPI (e.g. acpid): otherwise the request is silently ignored,
    which is why the wait has a deadline and the error says so."""
    if not 0 < timeout <= 3600:
        raise UsageError(f"--timeout {timeout} is out of range (0-3600 s)")
    if not dom.isActive():
        raise VpdError(f"VM {dom.name()} is not running")
    began = time.monotonic()
    dom.shutdown()
    while time.monotonic() - began < timeout:
        if not dom.isActive():
            return {"state": "shut off", "seconds": round(time.monotonic() - began, 2), "forced": False}
        time.sleep(0.2)
    if not force:
        raise VpdError(f"{dom.name()} did not shut down within {timeout:g} s",
                       hint="the guest may ignore ACPI (no acpid?): retry with --force to power it off")
    dom.destroy()
    return {"state": "shut off", "seconds": round(time.monotonic() - began, 2), "forced": True}


def reboot(dom: libvirt.virDomain) -> dict:
    if not dom.isActive():
        raise VpdError(f"VM {dom.name()} is not running")
    dom.reboot(0)
    return {"rebooting": True}


def pause(dom: libvirt.virDomain) -> dict:
    if _state(dom) != libvirt.VIR_DOMAIN_RUNNING:
        raise VpdError(f"VM {dom.name()} is {STATE_NAMES.get(_state(dom), 'not running')}, not running")
    dom.suspend()
    return {"state": STATE_NAMES[_state(dom)]}


def resume(dom: libvirt.virDomain) -> dict:
    if _state(dom) != libvirt.VIR_DOMAIN_PAUSED:
        raise VpdError(f"VM {dom.name()} is {STATE_NAMES.get(_state(dom), 'not paused')}, not paused")
    dom.resume()
    return {"state": STATE_NAMES[_state(dom)]}


def set_autostart(dom: libvirt.virDomain, disable: bool = False) -> dict:
    if not disable and is_template(dom):
        raise UsageError(f"{dom.name()} is a template: templates do not run, so they do not autostart")
    if not dom.isPersistent():
        raise UsageError(f"{dom.name()} is transient: only a defined VM can autostart")
    dom.setAutostart(0 if disable else 1)
    return {"autostart": bool(dom.autostart())}


def info(dom: libvirt.virDomain) -> dict:
    """What `virsh dominfo`, `domblklist` and `domiflist` tell, in one record."""
    parsed = Domain.from_xml(dom.XMLDesc(0))
    state, max_kib, cur_kib, vcpus, _ = dom.info()
    return {
        "name": dom.name(),
        "uuid": dom.UUIDString(),
        "state": STATE_NAMES.get(state, "unknown"),
        "vcpus": vcpus,
        "memory_mib": (cur_kib or max_kib) // 1024,
        "max_memory_mib": max_kib // 1024,
        "autostart": bool(dom.autostart()) if dom.isPersistent() else False,
        "persistent": bool(dom.isPersistent()),
        "template": is_template(dom),
        "disks": [{"target": d.target.dev, "device": d.device,
                   "path": d.source.reference if d.source is not None else None,
                   "format": d.driver.type if d.driver is not None else None} for d in parsed.disks],
        "interfaces": [{"type": i.type, "mac": i.mac.address if i.mac is not None else None,
                        "source": (i.source.network or i.source.bridge or i.source.dev) if i.source else None,
                        "model": i.model.type if i.model is not None else None} for i in parsed.interfaces],
        "linked_clones": linked_dependents(dom.connect(), dom),
        "security": security(dom),
    }


def security(dom: libvirt.virDomain) -> dict:
    """What `virsh dominfo` says of sVirt: the host's security model and DOI, and the running guest's
    label (SELinux: svirt_t with its MCS pair; AppArmor: its libvirt-UUID profile) and whether it
    is enforced. A stopped guest has no label; a driver that tells none gives None."""
    try:
        model, doi = dom.connect().getSecurityModel()
    except libvirt.libvirtError:
        model, doi = "", ""
    label, enforcing = None, None
    if dom.isActive():
        try:
            text, enforced = dom.securityLabel()
            label, enforcing = text or None, bool(enforced) if text else None
        except libvirt.libvirtError:
            pass
    return {"model": model or "none", "doi": doi or None, "label": label, "enforcing": enforcing}


def define(conn: libvirt.virConnect, host: Host, xml: str, replace: bool = False) -> dict:
    """Define a domain from XML after checking it, so a bad file never reaches libvirt half-read.

    With `replace` an existing definition of the same name is updated in place (its UUID
    kept, as libvirt requires); without it an existing name is refused."""
    try:
        parsed = Domain.from_xml(xml.encode())
    except Exception as exc:  # pydantic or lxml: any parse failure is the file's fault
        raise UsageError(f"not a valid domain definition: {explain_parse_error(exc)}",
                         hint="add the missing elements; `vpd vm dumpxml VM` shows a complete definition") from None
    name = check_name(parsed.name, "domain name")
    try:
        existing = conn.lookupByName(name)
    except libvirt.libvirtError:
        existing = None
    if existing is not None and not replace:
        raise UsageError(f"a VM named {name!r} already exists on {host.name}", hint="--replace updates it")
    if existing is not None:
        if parsed.uuid and parsed.uuid.lower() != existing.UUIDString():
            raise UsageError(f"{name} on {host.name} has UUID {existing.UUIDString()}, the file says {parsed.uuid}")
        if not parsed.uuid:
            ed = DomainEditor.from_xml(xml)
            ed.uuid = existing.UUIDString()
            xml = ed.to_xml()
    dom = conn.defineXML(xml)
    return {"name": name, "uuid": dom.UUIDString(), "replaced": existing is not None}


def apply_edit(dom: libvirt.virDomain, host: Host, edited: str) -> dict:
    """Apply an edited definition (`virsh edit`), checked first: it must parse, keep the VM's
    name and UUID, and pass libvirt's own schema validation, so a typo never replaces a
    working definition. A running VM gets the change at its next boot."""
    try:
        parsed = Domain.from_xml(edited.encode())
    except Exception as exc:  # pydantic or lxml: any parse failure is the edit's fault
        raise UsageError(f"the edited definition is not valid: {explain_parse_error(exc)}") from None
    if parsed.name != dom.name():
        raise UsageError(f"the edit renames {dom.name()} to {parsed.name}: renaming is not an edit",
                         hint="keep <name>; clone the VM to get another name")
    if parsed.uuid and parsed.uuid.lower() != dom.UUIDString():
        raise UsageError(f"the edit changes the UUID of {dom.name()}", hint="keep <uuid> as it was")
    try:
        dom.connect().defineXMLFlags(edited, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    except libvirt.libvirtError as exc:
        raise UsageError(f"libvirt rejects the edited definition: {exc.get_error_message()}") from None
    return {"name": dom.name(), "uuid": dom.UUIDString(), "applies": "at next boot" if dom.isActive() else "now"}


def console_log(dom: libvirt.virDomain, host: Host, lines: int | None = None, listen: float = 1.5,
                files: HostFiles | None = None) -> dict:
    """What the guest wrote on serial0: its whole history from the log file virtlogd keeps on
    the host (read over the host's runner), or, for a VM without one, what it writes during
    `listen` seconds on the live console (a pty keeps no history)."""
    path = DomainEditor.from_xml(dom.XMLDesc(0)).serial_log
    if path is not None:
        files = files or HostFiles(host)
        if files.exists(path):
            return {"source": path, "output": _last_lines(files.read(path).decode(errors="replace"), lines)}
        if not dom.isActive():
            return {"source": path, "output": ""}
    if not dom.isActive():
        raise VpdError(f"VM {dom.name()} is not running and keeps no serial log: there is nothing to show")
    out = bytearray()
    with ConsoleStream(dom, "serial0") as stream:
        deadline = time.monotonic() + listen
        while (left := deadline - time.monotonic()) > 0:
            out += stream.recv(left)
    return {"source": "live console", "output": _last_lines(out.decode(errors="replace"), lines)}


def _last_lines(text: str, lines: int | None) -> str:
    return text if lines is None else "".join(text.splitlines(keepends=True)[-lines:])
