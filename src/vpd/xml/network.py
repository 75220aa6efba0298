"""``<network>``: a libvirt virtual network, the parts vpd reads and writes."""
from __future__ import annotations

from typing import Literal

from pydantic_xml import attr, element

from .base import LibvirtXml

ForwardMode = Literal["nat", "route", "open", "bridge", "private", "vepa", "passthrough", "hostdev"]


class Forward(LibvirtXml, tag="forward"):
    """How guest traffic leaves the network; a network without <forward> is isolated."""

    mode: ForwardMode | None = attr(default=None)


class NetworkBridge(LibvirtXml, tag="bridge"):
    name: str | None = attr(default=None)


class DhcpRange(LibvirtXml, tag="range"):
    start: str = attr()
    end: str = attr()


class Dhcp(LibvirtXml, tag="dhcp"):
    ranges: list[DhcpRange] = element(default_factory=list)


class NetworkIp(LibvirtXml, tag="ip"):
    """The host's address on the network; libvirt accepts the mask as `prefix` or as `netmask`."""

    address: str | None = attr(default=None)
    prefix: int | None = attr(default=None)
    netmask: str | None = attr(default=None)
    dhcp: Dhcp | None = element(default=None)


class Network(LibvirtXml, tag="network"):
    name: str = element()
    uuid: str | None = element(default=None)
    forward: Forward | None = element(default=None)
    bridge: NetworkBridge | None = element(default=None)
    ips: list[NetworkIp] = element(default_factory=list)
