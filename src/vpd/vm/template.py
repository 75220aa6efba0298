"""Templates: a shut-off VM kept as a mould for new VMs, never run itself.

The mark is a vpd element in the domain's libvirt <metadata>, so it travels with
the definition (dumpxml, migration, another vpd client) and needs no local state.
A template's disks are the base that its linked clones read: starting it would
change them under the clones, which is why vpd refuses to start a template and
turns its autostart off. To change a template: unseal, change, shut down, create."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import libvirt

from ..connect.inventory import Host
from ..connect.libvirt_conn import Connections
from ..core.errors import UsageError, VpdError
from ..xml.edit import TEMPLATE_MARKER, TEMPLATE_NS, disk_files
from .clone import linked_dependents
from .inventory import is_template

_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG


def check_can_template(dom: libvirt.virDomain) -> None:
    """What `seal` refuses, checked alone (before a `--seal` generalises the disk)."""
    name = dom.name()
    if is_template(dom):
        raise UsageError(f"{name} is already a template")
    if dom.isActive():
        raise UsageError(f"{name} is running: a template is made from a shut-off VM",
                         hint=f"vpd vm shutdown {name} --host ...")
    if not dom.isPersistent():
        raise UsageError(f"{name} is transient: only a defined VM can become a template")


def seal(dom: libvirt.virDomain) -> dict:
    """Turn a shut-off, persistent VM into a template."""
    name = dom.name()
    check_can_template(dom)
    # libvirt's autostart would boot the template behind vpd's back.
    autostart_was = bool(dom.autostart())
    if autostart_was:
        dom.setAutostart(0)
    # libvirt's own metadata call, not a redefine: it changes the marker and nothing else.
    # DomainEditor.set_metadata makes the same edit to a definition vpd holds as text.
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, TEMPLATE_MARKER, "vpd", TEMPLATE_NS, _CONFIG)
    return {"template": name, "autostart_disabled": autostart_was}


def unseal(dom: libvirt.virDomain) -> dict:
    """Turn a template back into an ordinary VM (to change it, then create the template again)."""
    name = dom.name()
    if not is_template(dom):
        raise UsageError(f"{name} is not a template", hint="`vpd template list` lists them")
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, TEMPLATE_NS, _CONFIG)
    dependents = linked_dependents(dom.connect(), dom)
    return {"vm": name, "linked_clones": dependents}


def find_template(conn: libvirt.virConnect, host: Host, name: str) -> libvirt.virDomain:
    from ..connect.libvirt_conn import lookup
    from ..core.names import check_name

    check_name(name, "VM name")
    dom = lookup(host, lambda: conn.lookupByName(name), f"no VM named {name!r} on {host.name}",
                 hint="`vpd template list` lists the templates")
    if not is_template(dom):
        raise UsageError(f"{name} on {host.name} is not a template",
                         hint=f"vpd template create {name} --host {host.name}")
    return dom


@dataclass
class TemplateInfo:
    host: str
    name: str
    disks: list[str]
    linked_clones: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def _templates(host: Host, conn: libvirt.virConnect) -> list[TemplateInfo]:
    out = []
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT):
        if is_template(dom):
            out.append(TemplateInfo(host.name, dom.name(), disk_files(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)),
                                    linked_dependents(conn, dom)))
    return sorted(out, key=lambda t: t.name)


def list_templates(conns: Connections, hosts: list[Host]) -> tuple[list[TemplateInfo], dict[str, str]]:
    """Templates of every host, and the error of each host that could not be asked."""
    found: list[TemplateInfo] = []
    errors: dict[str, str] = {}
    for host in hosts:
        try:
            found += conns.call(host, lambda c, host=host: _templates(host, c))
        except VpdError as exc:
            errors[host.name] = exc.message
    return found, errors
