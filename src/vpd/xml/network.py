"""``<network>``: a libvirt virtual network, the parts vpd reads and writes, and its builder."""
from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic_xml import attr, element

from ..core.names import check_name
from .base import LibvirtXml
from .checks import require_ifname

ForwardMode = Literal["nat", "route", "open", "bridge", "private", "vepa", "passthrough", "hostdev"]
VpdNetworkMode = Literal["nat", "isolated", "routed", "bridge", "open"]
"""The modes `vpd net create` offers (the course's names); see FORWARD_FOR_MODE."""

FORWARD_FOR_MODE: dict[str, str | None] = {
    "nat": "nat", "isolated": None, "routed": "route", "bridge": "bridge", "open": "open",
}


class ForwardInterface(LibvirtXml, tag="interface"):
    dev: str = attr()


class Forward(LibvirtXml, tag="forward"):
    """How guest traffic leaves the network; a network without <forward> is isolated."""

    mode: ForwardMode | None = attr(default=None)
    dev: str | None = attr(default=None)
    """The host interface NATed or routed traffic must leave through (any, when absent)."""
    interfaces: list[ForwardInterface] = element(default_factory=list)


class NetworkBridge(LibvirtXml, tag="bridge"):
    name: str | None = attr(default=None)
    stp: Literal["on", "off"] | None = attr(default=None)
    delay: int | None = attr(default=None)


class DhcpRange(LibvirtXml, tag="range"):
    start: str = attr()
    end: str = attr()


class DhcpHost(LibvirtXml, tag="host"):
    """A fixed lease: this MAC (or name) always gets `ip`."""

    mac: str | None = attr(default=None)
    name: str | None = attr(default=None)
    ip: str | None = attr(default=None)


class Dhcp(LibvirtXml, tag="dhcp"):
    ranges: list[DhcpRange] = element(default_factory=list)
    hosts: list[DhcpHost] = element(default_factory=list)


class NetworkIp(LibvirtXml, tag="ip"):
    """The host's address on the network; libvirt accepts the mask as `prefix` or as `netmask`."""

    family: Literal["ipv4", "ipv6"] | None = attr(default=None)
    address: str | None = attr(default=None)
    prefix: int | None = attr(default=None)
    netmask: str | None = attr(default=None)
    dhcp: Dhcp | None = element(default=None)

    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
        """The address with its mask, e.g. 198.19.40.1/24 (None when the element has no address)."""
        if not self.address:
            return None
        mask = self.prefix if self.prefix is not None else self.netmask
        return ipaddress.ip_interface(f"{self.address}/{mask}" if mask is not None else self.address)


class Network(LibvirtXml, tag="network"):
    name: str = element()
    uuid: str | None = element(default=None)
    forward: Forward | None = element(default=None)
    bridge: NetworkBridge | None = element(default=None)
    ips: list[NetworkIp] = element(default_factory=list)

    @property
    def mode(self) -> str:
        """The vpd mode name: 'isolated' when libvirt has no <forward>, 'routed' for route."""
        forward = self.forward.mode if self.forward is not None else None
        if self.forward is not None and forward is None:
            forward = "nat"  # libvirt's default forward mode
        for mode, libvirt_mode in FORWARD_FOR_MODE.items():
            if libvirt_mode == forward:
                return mode
        return str(forward)

    def subnets(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [iface.network for ip in self.ips if (iface := ip.interface()) is not None]


def virtual_network(
    name: str,
    mode: VpdNetworkMode,
    *,
    gateway: ipaddress.IPv4Interface | None = None,
    dhcp: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None = None,
    bridge: str | None = None,
    forward_dev: str | None = None,
) -> Network:
    """A network as `vpd net create` defines it. `gateway` is the host's address on it (with the
    prefix); bridge mode has none, since its guests join an existing host bridge. Values are
    expected validated (vpd.network.networks does); names are checked again here."""
    libvirt_mode = FORWARD_FOR_MODE[mode]
    forward = None
    if libvirt_mode is not None:
        forward = Forward(mode=libvirt_mode, dev=require_ifname(forward_dev, "forward device") if forward_dev else None)
    ips = []
    if gateway is not None:
        ips.append(NetworkIp(
            address=str(gateway.ip), prefix=gateway.network.prefixlen,
            dhcp=Dhcp(ranges=[DhcpRange(start=str(dhcp[0]), end=str(dhcp[1]))]) if dhcp else None,
        ))
    return Network(
        name=check_name(name, "network name"),
        forward=forward,
        # STP off: a virtual network's bridge holds only guest taps, so it cannot loop, and with STP
        # on the kernel keeps every new port (a hot-plugged NIC) silent for 2 x 2 s first.
        bridge=NetworkBridge(name=require_ifname(bridge, "bridge name")) if mode == "bridge" else
        NetworkBridge(name=require_ifname(bridge, "bridge name") if bridge else None, stp="off", delay=0),
        ips=ips,
    )
