"""Customised clones (seed 002's "customise the clone"): each clone gets its own NoCloud seed —
a fresh instance-id, so cloud-init runs its per-instance modules again on a guest that already
ran them in the template — with its hostname, users and keys, and a network-config (version 2)
that gives its first NIC, matched by MAC, a static address.

The rules are pure here (numbering with --count, addresses inside the subnet, the YAML); the
checks that need libvirt (the network's subnet, its DHCP range and leases) take its XML and
leases as arguments. Addresses vpd gave are kept in the clone's libvirt <metadata> (vpd's
`address` element), so later clones on any host avoid them without a database."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import yaml
from lxml import etree

from ..core.errors import UsageError
from ..xml.edit import VPD_NS_PREFIX
from . import cloudinit

ADDRESS_NS = VPD_NS_PREFIX + "address"
"""`<vpd:address ip="A/P"/>` under a VM's <metadata>: the static address its seed gave it."""


def address_element(ip: ipaddress.IPv4Interface) -> str:
    return f'<address ip="{ip.with_prefixlen}"/>'


@dataclass(frozen=True)
class Customisation:
    """What one clone's seed says. `ip` with its prefix; `gateway` and `dns` only with `ip`."""

    hostname: str
    ip: ipaddress.IPv4Interface | None = None
    gateway: ipaddress.IPv4Address | None = None
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    user: str | None = None
    keys: tuple[str, ...] = field(default_factory=tuple)

    def network_config(self, mac: str | None) -> str | None:
        """Network config v2 for the first NIC, found by its MAC: the name a NIC gets depends on
        its PCI slot (enp1s0, ens3...), its MAC is what vpd chose. None without --ip (DHCP)."""
        if self.ip is None:
            return None
        if mac is None:
            raise UsageError("--ip needs a network interface on the clone: its source has none")
        nic: dict[str, object] = {"match": {"macaddress": mac}, "set-name": "eth0",
                                  "addresses": [self.ip.with_prefixlen]}
        if self.gateway is not None:
            # gateway4, not routes/to:default: the cloud-init of Debian 12 (22.4) renders it to
            # ifupdown's `gateway` line; later ones still accept it.
            nic["gateway4"] = str(self.gateway)
        if self.dns:
            nic["nameservers"] = {"addresses": [str(d) for d in self.dns]}
        return yaml.safe_dump({"version": 2, "ethernets": {"eth0": nic}}, sort_keys=False)

    def seed(self, vm_name: str, mac: str | None) -> cloudinit.Seed:
        return cloudinit.Seed(cloudinit.user_data(self.user, list(self.keys), self.hostname, None),
                              cloudinit.meta_data(vm_name, self.hostname), self.network_config(mac), self.hostname)


def _numbered(hostname: str, i: int) -> str:
    """web.lab.example, 2 -> web-2.lab.example (the first label numbered, as the VM names are)."""
    first, dot, rest = hostname.partition(".")
    return cloudinit.check_hostname(f"{first}-{i}{dot}{rest}")


def parse_interface(text: str) -> ipaddress.IPv4Interface:
    if "/" not in text:
        raise UsageError(f"--ip {text!r} needs its prefix length", hint="e.g. --ip 198.19.6.10/24")
    try:
        ip = ipaddress.IPv4Interface(text)
    except ValueError:
        raise UsageError(f"--ip {text!r} is not an IPv4 address with a prefix length",
                         hint="e.g. --ip 198.19.6.10/24") from None
    if ip.network.prefixlen > 30:
        raise UsageError(f"--ip {text}: a /{ip.network.prefixlen} leaves no room for a host and its gateway")
    return ip


def parse_address(text: str, option: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an IPv4 address") from None


def plan(names: list[str], *, hostname: str | None = None, ip: str | None = None, gateway: str | None = None,
         dns: tuple[str, ...] | list[str] = (), user: str | None = None,
         ssh_key_file: str | None = None) -> dict[str, Customisation] | None:
    """One Customisation per clone name, or None when nothing was asked (a plain clone).

    With several names (--count) the hostnames are numbered like the VM names and the
    addresses counted up from `ip`; every address must stay a host address of its subnet."""
    if not any((hostname, ip, gateway, dns, user, ssh_key_file)):
        return None
    if (gateway or dns) and not ip:
        raise UsageError("--gateway and --dns go with --ip (a static address)",
                         hint="without --ip the clone takes its address by DHCP")
    if hostname is not None:
        cloudinit.check_hostname(hostname)
    if user is not None:
        cloudinit.check_user(user)
    keys = tuple(cloudinit.read_key_file(ssh_key_file)) if ssh_key_file else ()
    first = parse_interface(ip) if ip else None
    gw = parse_address(gateway, "--gateway") if gateway else None
    servers = tuple(parse_address(d, "--dns") for d in dns)
    many = len(names) > 1
    out: dict[str, Customisation] = {}
    for i, name in enumerate(names):
        host = (_numbered(hostname, i + 1) if many else hostname) if hostname else name
        addr = None
        if first is not None:
            addr = ipaddress.IPv4Interface(f"{first.ip + i}/{first.network.prefixlen}")
            net = first.network
            if addr.ip not in net or addr.ip in (net.network_address, net.broadcast_address):
                raise UsageError(f"{len(names)} addresses from {first.ip} do not fit in {net}: "
                                 f"{addr.ip} is not a host address of it",
                                 hint="a lower first address, or fewer clones")
            if gw is not None and gw == addr.ip:
                raise UsageError(f"{name} would get {addr.ip}, the gateway's address")
        out[name] = Customisation(cloudinit.check_hostname(host), addr, gw, servers, user, keys)
    if gw is not None and first is not None and gw not in first.network:
        raise UsageError(f"--gateway {gw} is not in {first.network}", hint="a gateway on the clones' own subnet")
    return out


@dataclass(frozen=True)
class NetworkFacts:
    """What a libvirt network says about its addresses (None subnet: it manages none)."""

    name: str
    subnet: ipaddress.IPv4Network | None = None
    own: ipaddress.IPv4Address | None = None
    dhcp_ranges: tuple[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address], ...] = ()
    reserved: tuple[ipaddress.IPv4Address, ...] = ()


def network_facts(name: str, xml: str) -> NetworkFacts:
    """The IPv4 subnet, the host's own address on it, DHCP ranges and reservations of a network."""
    tree = etree.fromstring(xml.encode())
    for ip in tree.findall("ip"):
        if ip.get("family", "ipv4") != "ipv4" or not ip.get("address"):
            continue
        prefix = ip.get("prefix") or ip.get("netmask") or "24"
        iface = ipaddress.IPv4Interface(f"{ip.get('address')}/{prefix}")
        ranges = tuple((ipaddress.IPv4Address(r.get("start")), ipaddress.IPv4Address(r.get("end")))
                       for r in ip.findall("dhcp/range"))
        reserved = tuple(ipaddress.IPv4Address(h.get("ip")) for h in ip.findall("dhcp/host") if h.get("ip"))
        return NetworkFacts(name, iface.network, iface.ip, ranges, reserved)
    return NetworkFacts(name)


def check_addresses(customs: dict[str, Customisation], facts: NetworkFacts | None, leased: dict[str, str],
                    taken: dict[str, str]) -> list[str]:
    """Every static address against the clone's network and what uses it already; returns notes.

    `leased`: address -> who holds a DHCP lease on it; `taken`: address -> the VM whose seed vpd
    gave it (read from every host's VM metadata). A network vpd cannot see into (a host bridge)
    is noted, not refused: its subnet is the user's to know."""
    notes: list[str] = []
    addrs = [c.ip for c in customs.values() if c.ip is not None]
    if not addrs:
        return notes
    if facts is None or facts.subnet is None:
        notes.append(f"the clones' NIC is on {facts.name if facts else 'a bridge'}, whose subnet vpd does not "
                     "know: the addresses were checked only against each other and vpd's other clones")
    for name, c in customs.items():
        if c.ip is None:
            continue
        ip = c.ip.ip
        if facts is not None and facts.subnet is not None:
            if c.ip.network != facts.subnet:
                raise UsageError(f"{name}: {c.ip.with_prefixlen} is not in network {facts.name}'s subnet "
                                 f"{facts.subnet}",
                                 hint=f"an address of {facts.subnet}, with /{facts.subnet.prefixlen}")
            if ip == facts.own:
                raise UsageError(f"{name}: {ip} is the host's own address on network {facts.name}")
            for start, end in facts.dhcp_ranges:
                if start <= ip <= end:
                    raise UsageError(f"{name}: {ip} is inside network {facts.name}'s DHCP range {start}-{end}: "
                                     "dnsmasq may lease it to another guest",
                                     hint="an address outside the DHCP range")
            if ip in facts.reserved:
                raise UsageError(f"{name}: {ip} is reserved for a DHCP host on network {facts.name}")
        if str(ip) in leased:
            raise UsageError(f"{name}: {ip} is leased to {leased[str(ip)]}")
        if str(ip) in taken:
            raise UsageError(f"{name}: {ip} is already the address of VM {taken[str(ip)]}",
                             hint="another address, or remove that VM first")
    return notes
