"""Guest network interfaces: attach (to a libvirt network or a host bridge), detach, and list
them with their addresses (the attach-interface / detach-interface / domiflist equivalents)."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Literal

import libvirt

from ..connect.inventory import Host
from ..core.errors import NotFound, UsageError, VpdError
from ..xml.checks import require_choice, require_ifname, require_unicast_mac
from ..xml.devices import Interface, InterfaceModel, InterfaceSource, MacAddress
from ..xml.domain import Domain
from ..xml.edit import DomainEditor, InterfaceEditor
from .hostnet import HostNetwork
from .networks import find_network

NIC_MODELS = ("virtio", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet", "vmxnet3")
# QEMU's OUI, as libvirt and virt-install use for the MACs they make up.
QEMU_OUI = "52:54:00"
UNPLUG_WAIT_S = 15.0


def random_mac(taken: set[str]) -> str:
    while True:
        mac = QEMU_OUI + "".join(f":{b:02x}" for b in secrets.token_bytes(3))
        if mac not in taken:
            return mac


def _flags(dom: libvirt.virDomain, live: bool | None, config: bool | None) -> tuple[int, bool, bool]:
    """virsh's flags, with a default that keeps both views in step: live if the VM runs,
    config if it is defined (persistent)."""
    running, persistent = bool(dom.isActive()), bool(dom.isPersistent())
    if live is None and config is None:
        live, config = running, persistent
    live, config = bool(live), bool(config)
    if live and not running:
        raise UsageError(f"--live: VM {dom.name()} is not running", hint="use --config to change its definition")
    if config and not persistent:
        raise UsageError(f"--config: VM {dom.name()} is transient (no definition to change)")
    if not (live or config):
        raise UsageError("nothing to change: neither --live nor --config applies")
    flags = (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0) | (libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0)
    return flags, live, config


def _interfaces(dom: libvirt.virDomain, inactive: bool = False) -> list[Interface]:
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
    return Domain.from_xml(dom.XMLDesc(flags).encode()).interfaces


def _source(i: Interface) -> str | None:
    return (i.source.network or i.source.bridge or i.source.dev) if i.source is not None else None


@dataclass
class AttachRequest:
    network: str | None = None
    bridge: str | None = None
    model: str = "virtio"
    mac: str | None = None
    live: bool | None = None
    config: bool | None = None

    def __post_init__(self) -> None:
        if (self.network is None) == (self.bridge is None):
            raise UsageError("give exactly one of --network or --bridge")
        if self.bridge is not None:
            require_ifname(self.bridge, "bridge name")
        require_choice(self.model, "NIC model", NIC_MODELS)
        if self.mac is not None:
            self.mac = require_unicast_mac(self.mac, "MAC address")

    @property
    def kind(self) -> Literal["network", "bridge"]:
        return "network" if self.network else "bridge"

    @property
    def source(self) -> str:
        return self.network or self.bridge  # type: ignore[return-value]


def attach(conn: libvirt.virConnect, host: Host, dom: libvirt.virDomain, req: AttachRequest, *,
           macs_elsewhere: set[str], hostnet: HostNetwork | None) -> dict:
    """Attach a NIC. The same MAC on the same source again is a no-op; on another source, refused."""
    flags, live, config = _flags(dom, req.live, req.config)
    if req.mac is not None:
        current = {i.mac.address.lower(): i for i in _interfaces(dom) + _interfaces(dom, inactive=True)
                   if i.mac is not None}
        if req.mac in current:
            have = current[req.mac]
            if have.type == req.kind and _source(have) == req.source:
                return {"changed": False, "vm": dom.name(), "host": host.name, "mac": req.mac, "type": req.kind,
                        "source": req.source, "model": have.model.type if have.model else None}
            raise UsageError(f"VM {dom.name()} already has a NIC with MAC {req.mac} on {have.type} {_source(have)}",
                             hint="detach it first, or give another --mac")
        if req.mac in macs_elsewhere:
            raise UsageError(f"MAC {req.mac} is already used by another VM of the inventory")
    if req.network is not None:
        net = find_network(conn, host, req.network)
        if live and not net.isActive():
            raise UsageError(f"network {req.network} on {host.name} is not active: a running guest cannot join it",
                             hint=f"vpd net start {req.network} --host {host.name}")
    elif hostnet is not None and req.bridge is not None:
        link = hostnet.links.get(req.bridge)
        if link is None or link.kind != "bridge":
            raise UsageError(f"{req.bridge} is not a bridge on {host.name}",
                             hint=f"create it: vpd host bridge create {req.bridge} --iface IF --host {host.name}")
    mac = req.mac or random_mac(macs_elsewhere | {i.mac.address.lower() for i in _interfaces(dom) if i.mac})
    device = Interface(
        type=req.kind, mac=MacAddress(address=mac),
        source=InterfaceSource(network=req.network) if req.network else InterfaceSource(bridge=req.bridge),
        model=InterfaceModel(type=req.model),
    )
    try:
        dom.attachDeviceFlags(device.to_xml_string(), flags)
    except libvirt.libvirtError as exc:
        raise VpdError(f"cannot attach the NIC to {dom.name()} on {host.name}: {exc.get_error_message()}") from None
    # Validate: the NIC is where it was asked to be.
    where = ([("running VM", _interfaces(dom))] if live else []) + \
            ([("definition", _interfaces(dom, inactive=True))] if config else [])
    for what, nics in where:
        if not any(i.mac is not None and i.mac.address.lower() == mac for i in nics):
            raise VpdError(f"libvirt accepted the NIC but the {what} of {dom.name()} does not show MAC {mac}")
    target = next((i.target.dev for i in _interfaces(dom) if i.mac and i.mac.address.lower() == mac and i.target),
                  None)
    return {"changed": True, "vm": dom.name(), "host": host.name, "mac": mac, "type": req.kind, "source": req.source,
            "model": req.model, "target": target, "live": live, "config": config}


def detach(dom: libvirt.virDomain, host: Host, *, mac: str | None = None, network: str | None = None,
           bridge: str | None = None, live: bool | None = None, config: bool | None = None) -> dict:
    """Detach the one NIC matching the MAC (or the network/bridge, when that is unambiguous)."""
    if mac is None and network is None and bridge is None:
        raise UsageError("say which NIC: --mac, --network or --bridge")
    if mac is not None:
        mac = require_unicast_mac(mac, "MAC address")
    defaults = live is None and config is None
    flags, live, config = _flags(dom, live, config)

    def matches(i: Interface) -> bool:
        if mac is not None and (i.mac is None or i.mac.address.lower() != mac):
            return False
        if network is not None and not (i.type == "network" and _source(i) == network):
            return False
        if bridge is not None and not (i.type == "bridge" and _source(i) == bridge):
            return False
        return True

    in_live = [i for i in _interfaces(dom) if matches(i)] if live else []
    in_config = [i for i in _interfaces(dom, inactive=True) if matches(i)] if config else []
    if defaults:
        # By default the NIC leaves wherever it is: a NIC plugged --live only is not in the
        # definition, and one attached --config only is not in the running VM.
        live, config = bool(in_live), bool(in_config)
        flags = (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0) | (libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0)
    found = in_live or in_config
    if not found:
        raise NotFound(f"VM {dom.name()} on {host.name} has no such NIC", hint=f"vpd vm iface list {dom.name()}")
    if len(found) > 1:
        macs = ", ".join(i.mac.address for i in found if i.mac)
        raise UsageError(f"{len(found)} NICs of {dom.name()} match: {macs}", hint="name one with --mac")
    nic = found[0]
    nic_mac = nic.mac.address.lower() if nic.mac else None
    device = Interface(type=nic.type, mac=nic.mac, source=nic.source)
    try:
        dom.detachDeviceFlags(device.to_xml_string(), flags)
    except libvirt.libvirtError as exc:
        raise VpdError(f"cannot detach NIC {nic_mac} from {dom.name()}: {exc.get_error_message()}") from None
    pending = False
    if live:
        # A live unplug needs the guest's cooperation (ACPI hot-unplug): wait until it is gone.
        deadline = time.monotonic() + UNPLUG_WAIT_S
        while any(i.mac and i.mac.address.lower() == nic_mac for i in _interfaces(dom)):
            if time.monotonic() > deadline:
                pending = True
                break
            time.sleep(0.2)
    return {"changed": True, "vm": dom.name(), "host": host.name, "mac": nic_mac, "type": nic.type,
            "source": _source(nic), "live": live, "config": config, "unplug_pending": pending}


LINK_STATES = ("up", "down")


def _find_nic(dom: libvirt.virDomain, host: Host, ref: str, flags: int) -> InterfaceEditor:
    """The NIC named by MAC or by its host-side device (vnet0...), as virsh domif-setlink takes it."""
    wanted = ref.lower()
    editor = DomainEditor.from_xml(dom.XMLDesc(flags))
    found = [n for n in editor.interfaces() if (n.mac or "").lower() == wanted or n.target == ref]
    if not found:
        raise NotFound(f"VM {dom.name()} on {host.name} has no NIC {ref}", hint=f"vpd vm iface list {dom.name()}")
    if len(found) > 1:
        raise UsageError(f"{len(found)} NICs of {dom.name()} match {ref}", hint="name one by its MAC")
    return found[0]


def set_link(dom: libvirt.virDomain, host: Host, ref: str, state: str, *, live: bool | None = None,
             config: bool | None = None) -> dict:
    """virsh domif-setlink: plug or unplug the NIC's virtual cable (<link state=.../>) through
    updateDeviceFlags, in the running VM and/or its definition. The same state again is a no-op."""
    require_choice(state, "link state", LINK_STATES)
    if ":" in ref:
        ref = require_unicast_mac(ref, "MAC address")
    else:
        require_ifname(ref, "interface")
    flags, live, config = _flags(dom, live, config)
    if ":" not in ref:
        # A host-side device (vnet0) exists only in the running VM: name the NIC by its MAC from there.
        by_dev = _find_nic(dom, host, ref, 0)
        ref = (by_dev.mac or "").lower() or ref
    views = ([("running VM", 0, libvirt.VIR_DOMAIN_AFFECT_LIVE)] if live else []) + \
            ([("definition", libvirt.VIR_DOMAIN_XML_INACTIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG)] if config else [])
    before: dict[str, str] = {}
    mac = None
    for what, xml_flags, affect in views:
        nic = _find_nic(dom, host, ref, xml_flags)
        mac = nic.mac.lower() if nic.mac else mac
        before[what] = nic.link_state
        if nic.link_state == state:
            continue
        nic.link_state = state
        try:
            dom.updateDeviceFlags(nic.to_xml(), affect)
        except libvirt.libvirtError as exc:
            raise VpdError(f"cannot set the link of NIC {ref} of {dom.name()} {state} ({what}): "
                           f"{exc.get_error_message()}") from None
        if _find_nic(dom, host, mac or ref, xml_flags).link_state != state:
            raise VpdError(f"libvirt accepted the change but the {what} of {dom.name()} does not show link {state}")
    return {"vm": dom.name(), "host": host.name, "mac": mac, "state": state,
            "changed": any(s != state for s in before.values()), "before": before, "live": live, "config": config}


def list_interfaces(dom: libvirt.virDomain, host: Host) -> list[dict]:
    """domiflist, plus the addresses libvirt knows: DHCP leases first, else the host's ARP table."""
    running = bool(dom.isActive())
    nics = _interfaces(dom) if running else _interfaces(dom, inactive=True)
    addresses: dict[str, list[str]] = {}
    if running:
        for source in (libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
                       libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP):
            try:
                found = dom.interfaceAddresses(source, 0) or {}
            except libvirt.libvirtError:
                continue
            for entry in found.values():
                hw = (entry.get("hwaddr") or "").lower()
                for a in entry.get("addrs") or []:
                    known = addresses.setdefault(hw, [])
                    # ARP entries carry no prefix: only addresses the leases did not give are added.
                    if hw and not any(k.split("/")[0] == a["addr"] for k in known):
                        known.append(f"{a['addr']}/{a['prefix']}" if a.get("prefix") else a["addr"])
    rows = []
    for i in nics:
        mac = i.mac.address.lower() if i.mac else None
        rows.append({"vm": dom.name(), "host": host.name, "interface": i.target.dev if i.target else None,
                     "type": i.type, "source": _source(i), "model": i.model.type if i.model else None,
                     "mac": mac, "link": i.link.state if i.link else "up",
                     "addresses": addresses.get(mac or "", [])})
    return rows
