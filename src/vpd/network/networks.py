"""libvirt virtual networks: create (checked, validated after, undone on failure), start, stop,
autostart, delete, list over every host, DHCP leases.

Checks before anything changes: a well-formed IPv4 subnet, a DHCP range inside it, and no
overlap with the host's own addresses and routes or with the host's other libvirt networks
(libvirt itself notices a clash only when the network starts, and not with every kind)."""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import cast, get_args

import libvirt

from ..connect.inventory import Host
from ..connect.libvirt_conn import Connections, lookup
from ..connect.ssh import runner_for
from ..core.errors import NotFound, UsageError, VpdError
from ..core.names import check_name
from ..core.undo import Undo
from ..xml.checks import require_choice, require_ifname
from ..xml.domain import Domain
from ..xml.network import Network, VpdNetworkMode, virtual_network
from .hostnet import HostNetwork, has_host_behind, host_network, read_link

MODES = get_args(VpdNetworkMode)
MIN_PREFIX, MAX_PREFIX = 8, 30  # /30 still leaves the host one address and a guest another


def parse_subnet(text: str) -> ipaddress.IPv4Interface:
    """'198.19.40.0/24' -> the host's address on it (198.19.40.1/24); '198.19.40.254/24' keeps .254."""
    try:
        iface = ipaddress.ip_interface(text.strip())
    except (ValueError, AttributeError):
        raise UsageError(f"invalid subnet {text!r}", hint="use CIDR form, e.g. 198.19.40.0/24") from None
    if "/" not in text:
        raise UsageError(f"subnet {text!r} has no prefix length", hint="use CIDR form, e.g. 198.19.40.0/24")
    if iface.version != 4:
        raise UsageError(f"subnet {text!r} is IPv6: vpd creates IPv4 networks", hint="use e.g. 198.19.40.0/24")
    net = iface.network
    if not MIN_PREFIX <= net.prefixlen <= MAX_PREFIX:
        raise UsageError(f"subnet {text!r}: prefix must be /{MIN_PREFIX} to /{MAX_PREFIX}")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified or net.is_reserved:
        raise UsageError(f"subnet {text!r} is a loopback, multicast, link-local or reserved range")
    if iface.ip == net.network_address:
        iface = ipaddress.IPv4Interface(f"{net.network_address + 1}/{net.prefixlen}")
    elif iface.ip == net.broadcast_address:
        raise UsageError(f"{iface.ip} is the broadcast address of {net}: the host cannot take it")
    return iface


def parse_dhcp_range(text: str,
                     gateway: ipaddress.IPv4Interface) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """'START-END' inside the subnet, not its network or broadcast address, not the host's own."""
    start_text, sep, end_text = text.partition("-")
    try:
        if not sep:
            raise ValueError
        start, end = ipaddress.IPv4Address(start_text.strip()), ipaddress.IPv4Address(end_text.strip())
    except ValueError:
        raise UsageError(f"invalid DHCP range {text!r}",
                         hint="use START-END, e.g. 198.19.40.10-198.19.40.100") from None
    net = gateway.network
    hosts_first, hosts_last = net.network_address + 1, net.broadcast_address - 1
    for ip in (start, end):
        if not hosts_first <= ip <= hosts_last:
            raise UsageError(f"DHCP range {text!r}: {ip} is outside the usable addresses of {net} "
                             f"({hosts_first}-{hosts_last})")
    if start > end:
        raise UsageError(f"DHCP range {text!r} ends before it starts")
    if start <= gateway.ip <= end:
        raise UsageError(f"DHCP range {text!r} contains the host's own address {gateway.ip}",
                         hint="start the range after it, or give the host another address in --subnet")
    return start, end


@dataclass
class NetworkSpec:
    """What `vpd net create` is asked for, validated on construction (UsageError)."""

    name: str
    mode: str
    subnet: str | None = None
    dhcp: str | None = None
    bridge: str | None = None
    forward_dev: str | None = None
    gateway: ipaddress.IPv4Interface | None = field(init=False, default=None)
    dhcp_range: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        check_name(self.name, "network name")
        require_choice(self.mode, "network mode", MODES)
        if self.bridge is not None:
            require_ifname(self.bridge, "bridge name")
        if self.forward_dev is not None:
            require_ifname(self.forward_dev, "forward device")
        if self.mode == "bridge":
            if not self.bridge:
                raise UsageError("bridge mode needs --bridge: the host bridge guests join",
                                 hint="make one with `vpd host bridge create`")
            extra = [flag for flag, value in (("--subnet", self.subnet), ("--dhcp", self.dhcp),
                                              ("--forward-dev", self.forward_dev)) if value]
            if extra:
                raise UsageError(f"{', '.join(extra)} cannot go with bridge mode: the LAN behind the bridge "
                                 "has its own addressing")
            return
        if not self.subnet:
            raise UsageError(f"{self.mode} mode needs --subnet CIDR (the host's side of the network)")
        if self.forward_dev and self.mode not in ("nat", "routed"):
            raise UsageError(f"--forward-dev applies to nat and routed networks, not {self.mode}")
        self.gateway = parse_subnet(self.subnet)
        if self.dhcp:
            self.dhcp_range = parse_dhcp_range(self.dhcp, self.gateway)

    def to_xml(self) -> Network:
        mode = cast(VpdNetworkMode, self.mode)  # checked against MODES on construction
        return virtual_network(self.name, mode, gateway=self.gateway, dhcp=self.dhcp_range,
                               bridge=self.bridge, forward_dev=self.forward_dev)

    def settings(self) -> dict:
        return {"mode": self.mode, "subnet": str(self.gateway) if self.gateway else None,
                "dhcp": f"{self.dhcp_range[0]}-{self.dhcp_range[1]}" if self.dhcp_range else None,
                "bridge": self.bridge, "forward_dev": self.forward_dev}


# --- reading what exists ---------------------------------------------------------

@dataclass
class NetworkInfo:
    host: str
    name: str
    active: bool
    autostart: bool
    persistent: bool
    mode: str
    bridge: str | None
    subnet: str | None
    dhcp: str | None
    forward_dev: str | None

    def to_dict(self) -> dict:
        return asdict(self)

    def settings(self) -> dict:
        return {"mode": self.mode, "subnet": self.subnet, "dhcp": self.dhcp, "forward_dev": self.forward_dev}


def describe(host: Host, net: libvirt.virNetwork) -> NetworkInfo:
    parsed = Network.from_xml(net.XMLDesc(0).encode())
    ip = next((i for i in parsed.ips if (iface := i.interface()) is not None and iface.version == 4), None)
    dhcp = None
    if ip is not None and ip.dhcp is not None and ip.dhcp.ranges:
        dhcp = f"{ip.dhcp.ranges[0].start}-{ip.dhcp.ranges[0].end}"
    return NetworkInfo(
        host=host.name, name=net.name(), active=bool(net.isActive()),
        autostart=bool(net.autostart()) if net.isPersistent() else False, persistent=bool(net.isPersistent()),
        mode=parsed.mode, bridge=parsed.bridge.name if parsed.bridge is not None else None,
        subnet=str(ip.interface()) if ip is not None else None, dhcp=dhcp,
        forward_dev=parsed.forward.dev if parsed.forward is not None else None,
    )


def find_network(conn: libvirt.virConnect, host: Host, name: str) -> libvirt.virNetwork:
    """The network `name` (NotFound, exit 2, when libvirt has none; a dropped connection is a failure)."""
    check_name(name, "network name")
    return lookup(host, lambda: conn.networkLookupByName(name), f"no network named {name!r} on {host.name}",
                  hint="`vpd net list` lists them")


def existing_network(conn: libvirt.virConnect, host: Host, name: str) -> libvirt.virNetwork | None:
    """The network `name`, or None when there is none (other libvirt errors are failures)."""
    try:
        return find_network(conn, host, name)
    except NotFound:
        return None


# --- checks ----------------------------------------------------------------------

def check_fits_host(spec: NetworkSpec, host: Host, conn: libvirt.virConnect, hostnet: HostNetwork | None) -> None:
    """Refuse (UsageError) what would collide on this host: subnets, bridge names, missing devices."""
    others = [Network.from_xml(n.XMLDesc(0).encode()) for n in conn.listAllNetworks() if n.name() != spec.name]
    if spec.gateway is not None:
        mine = spec.gateway.network
        for other in others:
            for sub in other.subnets():
                if sub.version == 4 and mine.overlaps(sub):
                    raise UsageError(f"subnet {mine} overlaps {sub} of libvirt network {other.name!r} on {host.name}",
                                     hint="pick a subnet no other network of that host uses")
        if hostnet is not None:
            for used, where in hostnet.occupied():
                if used.version == 4 and mine.overlaps(used):
                    raise UsageError(f"subnet {mine} overlaps the host's own {where} on {host.name}",
                                     hint="a virtual network must not shadow a network the host is on")
    if spec.mode != "bridge" and spec.bridge:
        for other in others:
            if other.bridge is not None and other.bridge.name == spec.bridge:
                raise UsageError(f"bridge {spec.bridge} is already used by network {other.name!r} on {host.name}")
        if hostnet is not None and spec.bridge in hostnet.links:
            raise UsageError(f"an interface named {spec.bridge} already exists on {host.name}",
                             hint="libvirt creates the bridge of a nat/isolated/routed network itself: "
                                  "give a new name, or use --mode bridge to join an existing bridge")
    if hostnet is not None:
        if spec.mode == "bridge" and spec.bridge is not None:  # bridge mode has one (checked on construction)
            link = hostnet.links.get(spec.bridge)
            if link is None or link.kind != "bridge":
                raise UsageError(f"{spec.bridge} is not a bridge on {host.name}",
                                 hint="create it first: vpd host bridge create "
                                      f"{spec.bridge} --iface IF --host {host.name}")
        if spec.forward_dev and spec.forward_dev not in hostnet.links:
            raise UsageError(f"forward device {spec.forward_dev} does not exist on {host.name}",
                             hint="known: " + ", ".join(sorted(hostnet.links)))


def users(conn: libvirt.virConnect, name: str, running_only: bool = True) -> list[str]:
    """VMs (running ones, or all defined) with an interface on network `name`."""
    flags = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE if running_only else 0
    out = []
    for dom in conn.listAllDomains(flags):
        parsed = Domain.from_xml(dom.XMLDesc(0).encode())
        if any(i.type == "network" and i.source is not None and i.source.network == name for i in parsed.interfaces):
            out.append(dom.name())
    return out


# --- operations --------------------------------------------------------------------

def create(conn: libvirt.virConnect, host: Host, spec: NetworkSpec, *, start: bool = True,
           autostart: bool = False, hostnet: HostNetwork | None = None, probe_host: bool = True,
           undo: Undo | None = None, plan: Callable[[], None] | None = None) -> dict:
    """Define (and start) a network; an existing one with the same settings is left as is.

    A failure after the definition removes it again: through `undo` (an Operation's, which runs
    and journals it) when given, else here before the error goes on. `plan` is called once the
    network is known to be new, just before it is defined (an Operation journals it there)."""
    if probe_host and hostnet is None:
        hostnet = host_network(host)
    existing = existing_network(conn, host, spec.name)
    if existing is not None:
        info = describe(host, existing)
        want = spec.settings()
        have = {"mode": info.mode, "subnet": info.subnet, "dhcp": info.dhcp, "bridge": info.bridge,
                "forward_dev": info.forward_dev}
        differ = {k: (have[k], v) for k, v in want.items() if (k != "bridge" or v is not None) and have[k] != v}
        if differ:
            detail = "; ".join(f"{k}: has {h}, asked {w}" for k, (h, w) in differ.items())
            raise UsageError(f"network {spec.name!r} already exists on {host.name} with other settings ({detail})",
                             hint=f"delete it first (vpd net delete {spec.name} --host {host.name}) "
                                  "or use another name")
        notes = []
        if start and not info.active:
            existing.create()
            notes.append("started")
        if autostart and not info.autostart:
            existing.setAutostart(1)
            notes.append("autostart set")
        return {"created": False, "changed": bool(notes), "notes": notes, **describe(host, existing).to_dict()}
    check_fits_host(spec, host, conn, hostnet)
    if plan is not None:
        plan()
    steps_undo = undo if undo is not None else Undo()
    with steps_undo if undo is None else nullcontext():
        net = conn.networkDefineXML(spec.to_xml().to_xml_string())
        steps_undo.push(lambda: _remove(net), f"stop and undefine network {spec.name}")
        if start:
            try:
                net.create()
            except libvirt.libvirtError as exc:
                raise VpdError(f"network {spec.name} on {host.name} did not start: {exc.get_error_message()}",
                               hint="its definition was removed again; nothing was changed") from None
            _validate_started(net, host, spec)
        if autostart:
            net.setAutostart(1)
    return {"created": True, "changed": True, "notes": [], **describe(host, net).to_dict()}


def _validate_started(net: libvirt.virNetwork, host: Host, spec: NetworkSpec) -> None:
    """After start: active, and (on a real host) its bridge exists with the host's address."""
    if not net.isActive():
        raise VpdError(f"network {spec.name} on {host.name} is not active after starting it")
    if spec.mode == "bridge":
        return
    if not has_host_behind(host):
        return
    bridge = net.bridgeName()
    link = read_link(runner_for(host, timeout=20), bridge)
    if link is None:
        raise VpdError(f"network {spec.name} started but its bridge {bridge} is missing on {host.name}")
    if spec.gateway is not None and spec.gateway not in link.addresses:
        raise VpdError(f"network {spec.name} started but {bridge} does not carry {spec.gateway} on {host.name}")


def _remove(net: libvirt.virNetwork) -> None:
    for step in (net.destroy, net.undefine):
        try:
            step()
        except libvirt.libvirtError:
            pass


def start(conn: libvirt.virConnect, host: Host, name: str) -> dict:
    net = find_network(conn, host, name)
    if net.isActive():
        return {"changed": False, **describe(host, net).to_dict()}
    try:
        net.create()
    except libvirt.libvirtError as exc:
        raise VpdError(f"network {name} on {host.name} did not start: {exc.get_error_message()}") from None
    return {"changed": True, **describe(host, net).to_dict()}


def stop(conn: libvirt.virConnect, host: Host, name: str, force: bool = False) -> dict:
    net = find_network(conn, host, name)
    if not net.isActive():
        return {"changed": False, **describe(host, net).to_dict()}
    using = users(conn, name)
    if using and not force:
        raise UsageError(f"running VMs on {host.name} use network {name}: {', '.join(using)}",
                         hint="they would lose their link; stop them or give --force")
    net.destroy()
    return {"changed": True, "cut_off": using, **describe(host, net).to_dict()}


def set_autostart(conn: libvirt.virConnect, host: Host, name: str, disable: bool = False) -> dict:
    net = find_network(conn, host, name)
    if not net.isPersistent():
        raise UsageError(f"network {name} on {host.name} is transient: only a defined network can autostart")
    want = not disable
    changed = bool(net.autostart()) != want
    if changed:
        net.setAutostart(1 if want else 0)
    return {"changed": changed, **describe(host, net).to_dict()}


def delete(conn: libvirt.virConnect, host: Host, name: str, force: bool = False) -> dict:
    net = find_network(conn, host, name)
    using = users(conn, name, running_only=not force)
    running = users(conn, name)
    if running and not force:
        raise UsageError(f"running VMs on {host.name} use network {name}: {', '.join(running)}",
                         hint="detach their interfaces or stop them first, or give --force")
    info = describe(host, net)
    if net.isActive():
        net.destroy()
    if net.isPersistent():
        net.undefine()
    return {"deleted": True, "defined_users": [u for u in using if u not in running], **info.to_dict()}


@dataclass
class HostNetworks:
    host: str
    error: str | None
    networks: list[NetworkInfo]


def list_networks(conns: Connections, hosts: list[Host]) -> list[HostNetworks]:
    """Every host at once (one thread each): a slow or dead host costs its own timeout only."""

    def one(host: Host) -> HostNetworks:
        try:
            nets = conns.call(host, lambda c: [describe(host, n) for n in c.listAllNetworks()])
            return HostNetworks(host.name, None, sorted(nets, key=lambda n: n.name))
        except VpdError as exc:
            return HostNetworks(host.name, exc.message, [])

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        return list(pool.map(one, hosts))


def leases(conn: libvirt.virConnect, host: Host, name: str) -> list[dict]:
    net = find_network(conn, host, name)
    if not net.isActive():
        raise VpdError(f"network {name} on {host.name} is not active: it hands out no leases",
                       hint=f"vpd net start {name} --host {host.name}")
    out = []
    for lease in net.DHCPLeases() or []:
        out.append({"host": host.name, "network": name, "mac": lease.get("mac"), "ip": lease.get("ipaddr"),
                    "prefix": lease.get("prefix"), "hostname": lease.get("hostname"),
                    "expires": lease.get("expirytime"), "iface": lease.get("iface")})
    return out
