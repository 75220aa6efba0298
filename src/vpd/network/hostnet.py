"""What a host's own network looks like (interfaces, addresses, routes), read with
`ip -j` through the host's Runner, and parsed by pure functions."""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

from ..connect.inventory import Host
from ..connect.ssh import Runner, close_masters, runner_for
from ..core.errors import HostUnreachable, VpdError

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


def parse_links(addr_json: str, link_json: str = "[]") -> dict[str, Link]:
    """`ip -j -d addr show` (kinds and addresses at once) -> name -> Link. Output of
    `ip -j -d link show` may be given too: what one listing lacks, the other fills in."""
    links: dict[str, Link] = {}
    for item in json.loads(link_json or "[]") + json.loads(addr_json or "[]"):
        kind = (item.get("linkinfo") or {}).get("info_kind")
        link = links.get(item["ifname"])
        if link is None:
            link = links[item["ifname"]] = Link(item["ifname"], kind, item.get("master"), item.get("address"),
                                                "UP" in item.get("flags", []))
        link.kind = link.kind or kind
        link.master = link.master or item.get("master")
        link.mac = link.mac or item.get("address")
        for a in item.get("addr_info", []):
            if a.get("family") in ("inet", "inet6") and "local" in a:
                address = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
                if address not in link.addresses:
                    link.addresses.append(address)
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


def _json_documents(text: str) -> list[Any]:
    """`ip -j -batch` prints one JSON document per command, one after the other."""
    decoder, at = json.JSONDecoder(), 0
    documents: list[Any] = []
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return documents
        document, at = decoder.raw_decode(text, at)
        documents.append(document)


def read_host_network(runner: Runner) -> HostNetwork:
    """Links, addresses and routes in one remote command (each SSH round trip costs ~0.1-0.3 s)."""
    argv, batch = ["ip", "-j", "-d", "-batch", "-"], "addr show\nroute show table main\n"
    try:
        result = runner.run(argv, input=batch, check=False, timeout=10)
    except HostUnreachable:
        raise
    except VpdError:
        # Seen rarely on a loaded machine right after a host came up: the first SSH session
        # stalls. A fresh connection (no shared master) then answers at once.
        close_masters()
        result = runner.run(argv, input=batch, check=False, timeout=20)
    if result.returncode == 127:
        raise VpdError(f"{runner.host.name}: the `ip` command (iproute2) is missing", hint="install iproute2")
    if not result.ok:
        raise VpdError(f"{runner.host.name}: reading its addresses and routes with `ip` failed: "
                       f"{result.stderr.strip()}")
    try:
        addresses, routes = _json_documents(result.stdout)
    except ValueError:
        raise VpdError(f"{runner.host.name}: unexpected `ip -j` output (iproute2 too old for JSON?)",
                       hint="vpd needs iproute2 >= 4.13") from None
    return HostNetwork(parse_links(json.dumps(addresses)), parse_routes(json.dumps(routes)))


def read_link(runner: Runner, name: str) -> Link | None:
    """One interface (None if the host has no such interface)."""
    result = runner.run(["ip", "-j", "-d", "addr", "show", "dev", name], check=False)
    if not result.ok:
        return None
    return parse_links(result.stdout).get(name)


def host_network(host: Host) -> HostNetwork | None:
    """The host's network, or None for libvirt's test driver."""
    if not has_host_behind(host):
        return None
    return read_host_network(runner_for(host, timeout=20))
