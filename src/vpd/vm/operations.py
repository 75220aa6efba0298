"""VM operations as front ends run them (CLI, web API, scripts): each resolves its host
(or finds the VM across the inventory), runs inside an Operation (journal, lock, undo,
progress) and returns a plain result. The work itself lives in lifecycle, create, clone."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import libvirt

from ..core import paths
from ..core.errors import NotFound, UsageError
from ..core.names import check_name
from ..host import maintenance
from ..ops import Operation, Session
from ..ops.locks import vm_key
from . import identity
from .inventory import LocatedVm, locate_vm

# Actions on a running guest may pick the host where it runs when two hosts define it;
# the others need the user to say which definition they mean.
_ON_RUNNING_GUEST = {"shutdown", "destroy", "reboot", "pause", "resume"}

# action -> its function in vm.lifecycle (looked up when run: `vpd vm list` need not import it)
ACTIONS: dict[str, str] = {
    "start": "start",
    "destroy": "destroy",
    "undefine": "undefine",
    "shutdown": "shutdown",
    "reboot": "reboot",
    "pause": "pause",
    "resume": "resume",
    "autostart": "set_autostart",
}


def prefers_running(action: str) -> bool:
    """Whether `action` picks the running copy of a VM that two hosts define (front ends that
    check a request before queueing it find the VM the way `act` will)."""
    return action in _ON_RUNNING_GUEST


def locate(session: Session, name: str, host_ref: str | None = None, prefer_running: bool = True) -> LocatedVm:
    return locate_vm(session, name, host_ref, prefer_running)


def act(session: Session, action: str, name: str, host_ref: str | None = None, **options: Any) -> dict:
    """start, destroy, undefine, shutdown, reboot, pause, resume, autostart."""
    from . import lifecycle

    fn: Callable[..., Any] = getattr(lifecycle, ACTIONS[action])
    vm = locate(session, name, host_ref, prefer_running=action in _ON_RUNNING_GUEST)
    with Operation(session, f"vm.{action}", target=f"{vm.host.name}/{name}", locks=[vm_key(name)], **options) as op:
        op.result = {"host": vm.host.name, "vm": name, "action": action,
                     "result": session.call(vm.host, lambda _c: fn(vm.domain, **options))}
    return op.result


def info(session: Session, name: str, host_ref: str | None = None) -> dict:
    from . import lifecycle

    vm = locate(session, name, host_ref)
    return {"host": vm.host.name, **session.call(vm.host, lambda _c: lifecycle.info(vm.domain))}


def dumpxml(session: Session, name: str, host_ref: str | None = None, inactive: bool = False) -> dict:
    vm = locate(session, name, host_ref)
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
    return {"host": vm.host.name, "vm": name, "xml": session.call(vm.host, lambda _c: vm.domain.XMLDesc(flags))}


def define(session: Session, xml: str, host_ref: str, replace: bool = False, source: str = "-") -> dict:
    from . import lifecycle

    host = session.host(host_ref)
    with Operation(session, "vm.define", target=f"{host.name}/{source}", replace=replace) as op:
        op.result = {"host": host.name, **session.call(host, lambda c: lifecycle.define(c, host, xml, replace))}
    return op.result


def editable_xml(session: Session, name: str, host_ref: str | None = None) -> tuple[LocatedVm, str]:
    """The persistent definition to hand an editor (secrets included, as virsh edit does)."""
    vm = locate(session, name, host_ref, prefer_running=False)
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
    return vm, session.call(vm.host, lambda _c: vm.domain.XMLDesc(flags))


def apply_edit(session: Session, vm: LocatedVm, edited: str) -> dict:
    from . import lifecycle

    """Apply an edited definition; a rejected edit is kept in a file so the user's work survives."""
    name = vm.domain.name()
    with Operation(session, "vm.edit", target=f"{vm.host.name}/{name}", locks=[vm_key(name)]) as op:
        try:
            result = session.call(vm.host, lambda _c: lifecycle.apply_edit(vm.domain, vm.host, edited))
        except UsageError as exc:
            kept = paths.state_dir() / "rejected-edits" / f"{vm.host.name}-{name}.xml"
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(edited)
            exc.hint = (f"your edit is kept in {kept}; fix it and run "
                        f"`vpd vm define {kept} --replace --host {vm.host.name}`")
            raise
        op.result = {"host": vm.host.name, **result, "changed": True}
    return op.result


def display(session: Session, name: str, host_ref: str | None = None) -> dict:
    """The VM's VNC/SPICE URI and, for a loopback listener, the SSH tunnel to reach it."""
    from .display import display_of

    vm = locate(session, name, host_ref)
    return display_of(session.call(vm.host, lambda _c: vm.domain.XMLDesc(0)), vm.host, name)


def display_endpoint(session: Session, name: str, host_ref: str | None = None) -> dict:
    """Where a running VM's VNC server listens on its host, and its password: for a console that
    bridges to it (the password is a secret: never shown, never journaled). UsageError when the
    VM has no VNC display or does not run."""
    from ..core.errors import VpdError
    from ..xml.domain import Domain
    from .display import display_of

    vm = locate(session, name, host_ref)
    xml = session.call(vm.host, lambda _c: vm.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))
    shown = display_of(xml, vm.host, name)
    if shown["type"] != "vnc":
        raise UsageError(f"VM {name} on {vm.host.name} has a {shown['type'].upper()} display: the browser "
                         "console speaks VNC", hint="`vpd vm display` gives its URI for a SPICE client")
    if shown["port"] is None:
        raise VpdError(f"VM {name} on {vm.host.name} is not running: its display is off",
                       hint=f"`vpd vm start {name}`")
    graphics = next(g for g in Domain.from_xml(xml).devices.graphics if g.type == "vnc")
    return {"host": vm.host, "vm": name, "listen": shown["listen"], "port": shown["port"],
            "password": graphics.passwd}


def console_log(session: Session, name: str, host_ref: str | None = None, lines: int | None = None) -> dict:
    from . import lifecycle

    vm = locate(session, name, host_ref)
    return {"host": vm.host.name, "vm": name,
            **session.call(vm.host, lambda _c: lifecycle.console_log(vm.domain, vm.host, lines))}


def create(session: Session, name: str, host_ref: str, request, start: bool = False, wait_boot: bool = False,
           dirty: tuple[int, int] | None = None, spec_file: str | None = None) -> dict:
    """Define a VM from a VmRequest (flags or spec file), optionally start it. Name, MACs and
    imported images are checked against every host first; a failure removes what was made."""
    from . import lifecycle
    from .create import create_vm

    check_name(name, "VM name")
    host = session.host(host_ref)
    maintenance.refuse_new_guests(host.name)
    kernel = initrd = None
    cmdline = ""
    bond = request.guest_bond()
    if request.lab_guest:
        from .guest_image import build_guest_image, build_iperf3_image

        build = build_iperf3_image if request.iperf3 else build_guest_image
        image = build(paths.cache_dir() / "guest")
        kernel, initrd, cmdline = str(image.kernel), str(image.initrd), image.cmdline
        if dirty:
            cmdline = image.cmdline_with_dirtier(*dirty)
        if bond is not None:
            cmdline = f"{cmdline} {bond.kernel_arg()}"
    elif request.debian_guest:
        from .debian_image import ensure_debian_image

        debian = ensure_debian_image(paths.cache_dir())
        kernel, initrd, cmdline = str(debian.kernel), str(debian.initrd), debian.cmdline
        request = request.with_debian_root(str(debian.disk))
    ids = identity.gather(session)
    network_config = None
    if bond is not None and request.cloud_init is not None:
        # The network-config names NICs by MAC, so every NIC gets its MAC now rather than at define.
        request = request.with_all_macs(ids.taken_macs())
        network_config = bond.network_config([n.mac or "" for n in request.networks])
    spec = request.to_spec(name, kernel, initrd, cmdline, network_config)
    spec.lab_guest = request.lab_guest
    ids.require_new_name(name)
    ids.require_free_macs([n.mac for n in spec.nics if n.mac])
    ids.require_unused_images([d.import_image for d in spec.disks if d.import_image])
    with Operation(session, "vm.create", target=f"{host.name}/{name}", locks=[vm_key(name)],
                   memory_mib=spec.memory_mib, vcpus=spec.vcpus, disks=[vars(d) for d in spec.disks],
                   nics=[vars(n) for n in spec.nics], start=start, spec=spec_file, cdrom=spec.cdrom,
                   graphics=spec.graphics, cloud_init=spec.seed is not None,
                   bond=bond.spec.options() | {"ports": list(bond.spec.ports)} if bond else None) as op:
        op.plan("domain", name, host.name)
        dom, created = session.call(host, lambda c: create_vm(c, host, spec, taken_macs=ids.taken_macs()))
        result = vars(created)
        if start:
            result.update(session.call(host, lambda _c: lifecycle.start_new(dom, wait_boot=wait_boot)))
        # The display password is shown once, to the caller: the journal keeps no copy.
        op.result = {**result, "graphics": {**result["graphics"], "password": "(not kept)"}} \
            if result.get("graphics") else result
    return result


def _check_customs(session: Session, host, source: str, customs, ids: identity.Identities) -> list[str]:
    """The static addresses against the network of the source's first NIC (its subnet, DHCP range,
    leases, the host's own address) and every vpd clone's on every host; notes for the result."""
    from .customize import check_addresses

    if not customs or not any(c.ip for c in customs.values()):
        return []
    facts, leased = session.call(host, lambda c: _first_nic_network(c, source))
    return check_addresses(customs, facts, leased, ids.addresses)


def _first_nic_network(conn: libvirt.virConnect, source: str):
    from lxml import etree

    from .customize import network_facts

    tree = etree.fromstring(conn.lookupByName(source).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    nic = tree.find("devices/interface")
    if nic is None:
        raise UsageError(f"{source} has no network interface: --ip has nothing to configure")
    if nic.get("type") != "network":
        return None, {}
    name = nic.find("source").get("network")
    net = conn.networkLookupByName(name)
    try:
        leases = net.DHCPLeases() if net.isActive() else []
    except libvirt.libvirtError:
        leases = []  # a driver without dnsmasq (the test driver): its DHCP range is still refused
    leased = {lease["ipaddr"]: f"{lease.get('hostname') or lease['mac']} (DHCP)" for lease in leases
              if lease.get("ipaddr")}
    return network_facts(name, net.XMLDesc(0)), leased


def create_from_template(session: Session, name: str, host_ref: str, template: str, linked: bool = False,
                         start: bool = False, wait_boot: bool = False, customise: dict | None = None) -> dict:
    """A clone of `template`; `customise` (customize.plan's keywords: hostname, ip, gateway, dns,
    user, ssh_key_file) gives it its own cloud-init seed."""
    from . import lifecycle
    from .clone import clone_vm
    from .customize import plan
    from .template import find_template

    check_name(name, "VM name")
    host = session.host(host_ref)
    maintenance.refuse_new_guests(host.name)
    customs = plan([name], **(customise or {}))
    ids = identity.gather(session)
    ids.require_new_name(name)
    session.call(host, lambda c: find_template(c, host, template))
    notes = _check_customs(session, host, template, customs, ids)
    with Operation(session, "vm.create", target=f"{host.name}/{name}", locks=[vm_key(name), vm_key(template)],
                   template=template, linked=linked, start=start,
                   customised={k: str(v) for k, v in (customise or {}).items() if v}) as op:
        session.call(host, lambda c: find_template(c, host, template))
        op.plan("domain", name, host.name)
        cloned = session.call(host, lambda c: clone_vm(c, host, template, name, linked=linked,
                                                       taken_macs=ids.taken_macs(),
                                                       custom=(customs or {}).get(name)))
        result = {**vars(cloned), "template": template, "linked": linked, "notes": notes}
        if start:
            dom = session.call(host, lambda c: c.lookupByName(name))
            result.update(session.call(host, lambda _c: lifecycle.start_new(dom, wait_boot=wait_boot)))
        op.result = result
    return op.result


def tag(session: Session, name: str, host_ref: str | None = None, anti_affinity: str | None = None) -> dict:
    """Set (a group name) or clear (None) the VM's anti-affinity group: vpd's element in its
    libvirt <metadata>, in the running guest and its persistent definition, so it travels with
    the VM (migration, dumpxml). Placement keeps a group's VMs on different hosts."""
    from ..xml.edit import ANTI_AFFINITY_NS, anti_affinity_element, anti_affinity_of

    if anti_affinity is not None:
        check_name(anti_affinity, "anti-affinity group")
    vm = locate(session, name, host_ref, prefer_running=True)
    dom = vm.domain

    def apply(_conn: libvirt.virConnect) -> dict:
        before = anti_affinity_of(dom.XMLDesc(0))
        flags = ((libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
                 | (libvirt.VIR_DOMAIN_AFFECT_CONFIG if dom.isPersistent() else 0))
        if anti_affinity is None:
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, ANTI_AFFINITY_NS, flags)
        else:
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, anti_affinity_element(anti_affinity), "vpd",
                            ANTI_AFFINITY_NS, flags)
        return {"host": vm.host.name, "vm": name, "anti_affinity": anti_affinity, "was": before}

    with Operation(session, "vm.tag", target=f"{vm.host.name}/{name}", locks=[vm_key(name)],
                   anti_affinity=anti_affinity) as op:
        op.result = session.call(vm.host, apply)
    return op.result


def clone(session: Session, source: str, names: list[str], host_ref: str | None = None, pool: str | None = None,
          allow_running: bool = False, linked: bool = False, mac: str | None = None,
          customise: dict | None = None) -> list[dict]:
    """Full or linked clones of `source`, all or nothing; names and MACs unique across the inventory.
    `customise` (customize.plan's keywords): each clone gets its own cloud-init seed, hostnames
    and addresses numbered with several names, every address checked before anything is made."""
    from ..xml.checks import require_unicast_mac
    from .clone import clone_vms
    from .customize import plan

    if mac is not None and len(names) > 1:
        raise UsageError("--mac names one NIC of one VM: it cannot go with --count")
    for n in names:
        check_name(n, "VM name")
    customs = plan(names, **(customise or {}))  # the user's values first: nothing asked of a host yet
    vm = locate(session, source, host_ref, prefer_running=False)
    host = vm.host
    ids = identity.gather(session)
    for n in names:
        ids.require_new_name(n)
    if mac is not None:
        mac = require_unicast_mac(mac, "MAC address")
        ids.require_free_macs([mac])
    notes = _check_customs(session, host, source, customs, ids)
    with Operation(session, "vm.clone", target=f"{host.name}/{source}->{','.join(names)}",
                   locks=[vm_key(source), *map(vm_key, names)], pool=pool, linked=linked, mac=mac,
                   customised={k: str(v) for k, v in (customise or {}).items() if v}) as op:
        for n in names:
            op.plan("domain", n, host.name)
        clones = session.call(host, lambda c: clone_vms(c, host, source, names, pool, allow_running, linked, mac,
                                                        taken_macs=ids.taken_macs(), customs=customs))
        op.result = [{**vars(c), **({"notes": notes} if notes else {})} for c in clones]
    return op.result


def bond_status(session: Session, name: str, bond: str = "bond0", host_ref: str | None = None) -> dict:
    """A bond inside a running guest, as its kernel reports it: /proc/net/bonding/BOND (mode,
    active port, each port's MII status and failures, parsed by network/bond.py) and each port's
    packet counters, read through the lab guest's command channel or the QEMU guest agent."""
    from ..network.bond import parse_proc_bonding
    from ..xml.checks import require_ifname
    from .guest_files import read_files

    require_ifname(bond, "bond name")
    vm = locate(session, name, host_ref, prefer_running=True)

    def read(_conn: libvirt.virConnect) -> dict:
        proc = f"/proc/net/bonding/{bond}"
        how, files = read_files(vm.domain, [proc])
        if files[proc] is None:
            raise NotFound(f"VM {name} has no bond {bond} (no {proc} in the guest)")
        st = parse_proc_bonding(files[proc] or "")
        counters = [f"/sys/class/net/{p.name}/statistics/{c}_packets" for p in st.ports for c in ("rx", "tx")]
        _, values = read_files(vm.domain, counters)

        def count(port: str, c: str) -> int | None:
            text = (values.get(f"/sys/class/net/{port}/statistics/{c}_packets") or "").strip()
            return int(text) if text.isdigit() else None

        return {"host": vm.host.name, "vm": name, "bond": bond, "via": how, "mode": st.mode,
                "mode_text": st.mode_text, "active_port": st.active_port, "primary": st.primary,
                "mii_status": st.mii_status, "miimon": st.miimon,
                "ports": [{**vars(p), "rx_packets": count(p.name, "rx"), "tx_packets": count(p.name, "tx")}
                          for p in st.ports]}

    return session.call(vm.host, read)
