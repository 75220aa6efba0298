"""What a host's own network looks like (interfaces, addresses, routes), read with
`ip -j` through the host's Runner, and parsed by pure functions."""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

from ..connect.inventory import Host
from ..connect.ssh import Runner, runner_for
from ..core.errors import VpdError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass
class Link:
    name: str
    kind: str | None  # 'bridge', 'veth', ... (None for plain devices)
    master: str | None
    mac: str | None
    up: bool
    addresses: list[IPInterface] = field(default_factory=list)


@dataclass
class Route:
    dst: IPNetwork
    dev: str | None
    gateway: str | None
    protocol: str | None
    scope: str | None
    raw: dict

    @property
    def is_kernel(self) -> bool:
        """The route the kernel adds by itself for an address's subnet."""
        return self.protocol == "kernel"


def has_host_behind(host: Host) -> bool:
    """libvirt's test driver is a simulation: there is no machine to run `ip` on."""
    return not host.uri.startswith("test:")


def parse_links(addr_json: str, link_json: str) -> dict[str, Link]:
    """`ip -j addr show` + `ip -j -d link show` -> name -> Link."""
    links: dict[str, Link] = {}
    for item in json.loads(link_json or "[]"):
        info = item.get("linkinfo") or {}
        links[item["ifname"]] = Link(
            name=item["ifname"], kind=info.get("info_kind"), master=item.get("master"),
            mac=item.get("address"), up="UP" in item.get("flags", []),
        )
    for item in json.loads(addr_json or "[]"):
        link = links.setdefault(item["ifname"], Link(item["ifname"], None, item.get("master"), item.get("address"),
                                                      "UP" in item.get("flags", [])))
        for a in item.get("addr_info", []):
            if a.get("family") in ("inet", "inet6") and "local" in a:
                link.addresses.append(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}"))
    return links


def parse_routes(route_json: str) -> list[Route]:
    routes = []
    for item in json.loads(route_json or "[]"):
        dst = item.get("dst", "")
        if dst == "default":
            dst = "0.0.0.0/0" if ":" not in item.get("gateway", "") else "::/0"
        try:
            network = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue  # broadcast/local entries with odd forms are not subnets
        routes.append(Route(network, item.get("dev"), item.get("gateway"), item.get("protocol"), item.get("scope"),
                            item))
    return routes


@dataclass
class HostNetwork:
    links: dict[str, Link]
    routes: list[Route]

    def occupied(self) -> list[tuple[IPNetwork, str]]:
        """Subnets the host already uses (its addresses and non-default routes), with where from."""
        used: list[tuple[IPNetwork, str]] = []
        for link in self.links.values():
            for a in link.addresses:
                if not a.ip.is_loopback and not a.ip.is_link_local:
                    used.append((a.network, f"address {a} on {link.name}"))
        for r in self.routes:
            if r.dst.prefixlen > 0 and not r.dst.is_loopback and not r.dst.is_link_local:
                used.append((r.dst, f"route {r.dst} via {r.gateway or r.dev}"))
        return used

    def link_with_address(self, address: str) -> Link | None:
        ip = ipaddress.ip_address(address)
        for link in self.links.values():
            if any(a.ip == ip for a in link.addresses):
                return link
        return None


def read_host_network(runner: Runner) -> HostNetwork:
    addr = runner.run(["ip", "-j", "addr", "show"], check=False)
    if addr.returncode == 127:
        raise VpdError(f"{runner.host.name}: the `ip` command (iproute2) is missing", hint="install iproute2")
    if not addr.ok:
        raise VpdError(f"{runner.host.name}: `ip -j addr show` failed: {addr.stderr.strip()}")
    link = runner.run(["ip", "-j", "-d", "link", "show"])
    route = runner.run(["ip", "-j", "route", "show", "table", "main"])
    return HostNetwork(parse_links(addr.stdout, link.stdout), parse_routes(route.stdout))


def host_network(host: Host) -> HostNetwork | None:
    """The host's network, or None for libvirt's test driver."""
    if not has_host_behind(host):
        return None
    return read_host_network(runner_for(host, timeout=20))
