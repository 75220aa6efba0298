"""firewalld as a grader reads it: `firewall-cmd [--permanent] --list-all-zones`
parsed, the zone that really applies to a peer's packets, and whether a port is
open to that peer, or to anyone, there.

The zone trap: `firewall-cmd --add-port=...` without --zone= changes the default
zone; when the interface that reaches the peer is bound to another zone, the
rule is there but never applies. Pure functions; tests feed recorded outputs."""
from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

# Services of firewalld's own catalogue that cover the ports Práctica 4 needs.
SERVICE_PORTS: dict[str, tuple[tuple[int, int, str], ...]] = {
    "ssh": ((22, 22, "tcp"),),
    "libvirt": ((16509, 16509, "tcp"),),
    "libvirt-tls": ((16514, 16514, "tcp"),),
}
# An address no peer has: what "the whole world" is tested with.
WORLD = {4: "192.0.2.254", 6: "2001:db8::fe"}

_HEADER = re.compile(r"^(\S+)(?:\s+\(([^)]*)\))?\s*$")
_ATTR = re.compile(r'(\w[\w-]*)="([^"]*)"')


@dataclass
class RichRule:
    text: str
    family: int | None = None  # 4, 6 or None (both)
    source: str | None = None  # address or network
    source_invert: bool = False
    source_other: bool = False  # ipset= / mac=: not modelled, never matches here
    ports: list[tuple[int, int, str]] = field(default_factory=list)  # empty: every port
    service: str | None = None
    action: str | None = None  # accept, reject, drop, or None (log/audit only)


@dataclass
class Zone:
    name: str
    default: bool = False
    active: bool = False
    target: str = "default"
    interfaces: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    ports: list[tuple[int, int, str]] = field(default_factory=list)
    rich_rules: list[RichRule] = field(default_factory=list)


def _port_spec(text: str, proto: str) -> tuple[int, int, str]:
    first, _, last = text.partition("-")
    return int(first), int(last or first), proto


def parse_rich_rule(text: str) -> RichRule:
    rule = RichRule(text.strip())
    attrs = _ATTR.findall(text)
    words = text.split()
    family = dict(attrs).get("family")
    rule.family = {"ipv4": 4, "ipv6": 6}.get(family or "")
    # Walk the elements in order: "source [NOT] address=...", "port port=... protocol=...", "service name=...".
    for i, word in enumerate(words):
        if word == "source":
            rest = " ".join(words[i + 1:i + 3])
            rule.source_invert = rest.startswith("NOT ")
            m = re.search(r'^(?:NOT )?address="([^"]+)"', rest)
            if m:
                rule.source = m.group(1)
            else:
                rule.source_other = True
        elif word == "port" and i + 1 < len(words) and words[i + 1].startswith("port="):
            port = re.search(r'port="([^"]+)"', " ".join(words[i + 1:i + 2]))
            proto = re.search(r'protocol="([^"]+)"', " ".join(words[i + 2:i + 3]))
            if port:
                rule.ports.append(_port_spec(port.group(1), proto.group(1) if proto else "tcp"))
        elif word == "service":
            m = re.search(r'name="([^"]+)"', " ".join(words[i + 1:i + 2]))
            rule.service = m.group(1) if m else None
    for action in ("accept", "reject", "drop"):
        if re.search(rf"(^|\s){action}(\s|$)", text):
            rule.action = action
    return rule


def parse_zones(text: str) -> list[Zone]:
    """`firewall-cmd [--permanent] --list-all-zones` (or one zone's `--list-all`)."""
    zones: list[Zone] = []
    key = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            m = _HEADER.match(line)
            if not m:
                continue
            flags = {f.strip() for f in (m.group(2) or "").split(",")}
            zones.append(Zone(m.group(1), default="default" in flags, active="active" in flags))
            key = None
            continue
        if not zones:
            continue
        zone = zones[-1]
        stripped = line.strip()
        if key == "rich rules" and stripped.startswith("rule"):
            zone.rich_rules.append(parse_rich_rule(stripped))
            continue
        key, _, value = stripped.partition(":")
        values = value.split()
        if key == "target":
            zone.target = value.strip()
        elif key == "interfaces":
            zone.interfaces = values
        elif key == "sources":
            zone.sources = values
        elif key == "services":
            zone.services = values
        elif key == "ports":
            zone.ports = [_port_spec(*v.split("/", 1)) for v in values if "/" in v]
        elif key == "rich rules" and stripped.startswith("rich rules:") and value.strip().startswith("rule"):
            zone.rich_rules.append(parse_rich_rule(value.strip()))
    return zones


def _in_network(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False  # a MAC or an ipset: not modelled


def zone_for(zones: list[Zone], address: str, interface: str | None) -> tuple[Zone | None, str]:
    """The zone firewalld applies to packets from `address` arriving on `interface`,
    and why: a zone bound to a source containing the address wins, then the zone
    bound to the interface, then the default zone."""
    for z in zones:
        if any(_in_network(address, s) for s in z.sources):
            return z, f"source {address} is bound to zone {z.name}"
    if interface:
        for z in zones:
            if interface in z.interfaces:
                return z, f"interface {interface} is in zone {z.name}"
    for z in zones:
        if z.default:
            return z, f"interface {interface or '?'} is in no zone: the default zone {z.name} applies"
    return None, "no zone applies"


def _covers(specs: list[tuple[int, int, str]], port: int, proto: str = "tcp") -> bool:
    return any(a <= port <= b and p == proto for a, b, p in specs)


def _rule_matches(rule: RichRule, address: str, port: int) -> bool:
    version = ipaddress.ip_address(address).version
    if rule.family is not None and rule.family != version:
        return False
    if rule.source_other:
        return False
    if rule.source is not None and _in_network(address, rule.source) == rule.source_invert:
        return False
    if rule.service is not None:
        return _covers(list(SERVICE_PORTS.get(rule.service, ())), port)
    return not rule.ports or _covers(rule.ports, port)


def port_open(zone: Zone, address: str, port: int) -> tuple[bool, str]:
    """Whether `zone` admits a new TCP connection from `address` to `port`, and by what."""
    for rule in zone.rich_rules:  # deny rules are applied before allow ones
        if rule.action in ("reject", "drop") and _rule_matches(rule, address, port):
            return False, f"rich rule {rule.text!r}"
    for rule in zone.rich_rules:
        if rule.action == "accept" and _rule_matches(rule, address, port):
            return True, f"rich rule {rule.text!r}"
    for service in zone.services:
        if _covers(list(SERVICE_PORTS.get(service, ())), port):
            return True, f"service {service}"
    if _covers(zone.ports, port):
        return True, f"port {port}/tcp"
    if zone.target.upper() == "ACCEPT":
        return True, "zone target ACCEPT"
    return False, f"nothing in zone {zone.name} admits it"


@dataclass
class PortVerdict:
    port: int
    zone: str | None
    why_zone: str
    open_to_peer: bool
    peer_by: str
    open_to_world: bool
    world_by: str
    elsewhere: list[str]  # other zones where it would be open to the peer: the zone trap


def verdict(zones: list[Zone], peer: str, interface: str | None, port: int) -> PortVerdict:
    zone, why = zone_for(zones, peer, interface)
    world = WORLD[ipaddress.ip_address(peer).version]
    world_zone, _ = zone_for(zones, world, interface)
    if zone is None:
        return PortVerdict(port, None, why, False, why, False, why, [])
    ok, by = port_open(zone, peer, port)
    w_ok, w_by = port_open(world_zone, world, port) if world_zone else (False, "no zone")
    elsewhere = [z.name for z in zones if z is not zone and port_open(z, peer, port)[0]] if not ok else []
    return PortVerdict(port, zone.name, why, ok, by, w_ok, w_by, elsewhere)


def rich_rule_fix(zone: str, peer: str, ports: list[tuple[int, int]]) -> list[str]:
    """The firewall-cmd commands that admit `peer` to `ports` in `zone` only, permanently and now."""
    family = "ipv4" if ipaddress.ip_address(peer).version == 4 else "ipv6"
    out = []
    for a, b in ports:
        rule = f'rule family="{family}" source address="{peer}" port port="{a if a == b else f"{a}-{b}"}" ' \
               f'protocol="tcp" accept'
        out.append(f"firewall-cmd --permanent --zone={zone} --add-rich-rule={shlex.quote(rule)}")
    out.append("firewall-cmd --reload")
    return out
