"""Setting up a host's incusd (the seed's `lxd init --auto`), idempotently, through the API.

What `incus admin init --preseed` would apply, as data (`Preseed`) applied by vpd: a `dir`
storage pool, a bridge without NAT on a subnet that overlaps nothing the host already has,
the default profile's root disk and NIC, and optionally the HTTPS address other hosts use.
vpd never runs `incus admin init --auto`: it would make a NAT bridge (masquerade rule,
ip_forward=1) on whatever host it runs on."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..core.errors import NotFound, UsageError, VpdError
from .client import IncusClient, path

BRIDGE = "vpdbr0"
POOL = "default"
PROFILE = "default"
# Where `vpd ct init` looks for a free bridge subnet when none is given: inside the
# benchmarking range the lab uses (never routed anywhere), away from the lab's own nets
# (198.18.0-7.x), its hosts' container bridges (198.18.128-191.x) and the README's
# examples (198.19.40-42.x).
AUTO_SUBNETS = [ipaddress.ip_network(f"198.19.{i}.0/24") for i in range(200, 255)]


@dataclass
class Preseed:
    subnet: ipaddress.IPv4Network
    bridge: str = BRIDGE
    pool: str = POOL
    https_address: str | None = None  # "ADDR:8443": other hosts and remote clients reach it there

    def network_config(self) -> dict[str, str]:
        gateway = next(self.subnet.hosts())
        return {"ipv4.address": f"{gateway}/{self.subnet.prefixlen}", "ipv4.nat": "false",
                "ipv4.dhcp": "true", "ipv6.address": "none"}

    def profile_devices(self) -> dict[str, dict[str, str]]:
        return {"root": {"type": "disk", "path": "/", "pool": self.pool},
                "eth0": {"type": "nic", "name": "eth0", "network": self.bridge}}


@dataclass
class InitReport:
    host: str
    bridge: str
    subnet: str
    pool: str
    https_address: str | None
    changed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"host": self.host, "bridge": self.bridge, "subnet": self.subnet, "pool": self.pool,
                "https_address": self.https_address, "changed": self.changed}


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise UsageError(f"invalid subnet {text!r}: {exc}", hint="use CIDR form, e.g. 198.19.200.0/24") from None
    if net.version != 4 or not 16 <= net.prefixlen <= 29:
        raise UsageError(f"subnet {text!r}: give an IPv4 network of /16 to /29")
    return net


def used_networks(client: IncusClient) -> dict[str, ipaddress.IPv4Network]:
    """Every IPv4 network the host's incusd sees: its managed bridges' subnets and the
    addresses on the host's own interfaces."""
    out: dict[str, ipaddress.IPv4Network] = {}
    # Name by name: the recursive listing leaves out some of the host's own interfaces, and
    # reading one of those may fail (incusd asks Open vSwitch about it): then only its state.
    for ref in client.get(path("networks")) or []:
        name = ref.rsplit("/", 1)[-1]
        if name == "lo":
            continue
        try:
            net = client.get(path("networks", name))
        except VpdError:
            net = {"managed": False}
        addr = (net.get("config") or {}).get("ipv4.address")
        if net.get("managed"):
            if addr and addr not in ("none", "auto"):
                out[name] = ipaddress.ip_interface(addr).network
            continue
        try:
            state = client.get(path("networks", name, "state"))
        except VpdError:
            continue
        for a in (state or {}).get("addresses") or []:
            if a.get("family") == "inet":
                out[name] = ipaddress.ip_interface(f"{a['address']}/{a['netmask']}").network
    return out


def pick_subnet(used: dict[str, ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    for candidate in AUTO_SUBNETS:
        if not any(candidate.overlaps(n) for n in used.values()):
            return candidate
    raise UsageError("no free subnet for the container bridge", hint="give one with --subnet")


def check_overlap(subnet: ipaddress.IPv4Network, used: dict[str, ipaddress.IPv4Network], bridge: str) -> None:
    clashes = [f"{name} ({net})" for name, net in used.items() if name != bridge and subnet.overlaps(net)]
    if clashes:
        raise UsageError(f"subnet {subnet} overlaps {', '.join(clashes)} on this host",
                         hint="give another --subnet")


def initialise(client: IncusClient, preseed: Preseed, host: str = "") -> InitReport:
    """Apply `preseed`, changing only what differs; a second run changes nothing."""
    report = InitReport(host or client.name, preseed.bridge, str(preseed.subnet), preseed.pool, preseed.https_address)
    if preseed.https_address:
        server = client.get(path())
        if (server.get("config") or {}).get("core.https_address") != preseed.https_address:
            client.request("PATCH", path(), json={"config": {"core.https_address": preseed.https_address}})
            report.changed.append(f"core.https_address={preseed.https_address}")
    try:
        pool = client.get(path("storage-pools", preseed.pool))
        if pool.get("driver") != "dir":
            report.changed.append(f"(kept storage pool {preseed.pool}: driver {pool.get('driver')})")
    except NotFound:
        client.request("POST", path("storage-pools"), json={"name": preseed.pool, "driver": "dir", "config": {}})
        report.changed.append(f"storage pool {preseed.pool} (dir)")
    want = preseed.network_config()
    try:
        net = client.get(path("networks", preseed.bridge))
        have = net.get("config") or {}
        if have.get("ipv4.address") != want["ipv4.address"]:
            raise UsageError(f"bridge {preseed.bridge} exists with {have.get('ipv4.address')}, "
                             f"not {want['ipv4.address']}",
                             hint="omit --subnet to keep it")
        if have.get("ipv4.nat", "false") != "false":
            raise UsageError(f"bridge {preseed.bridge} does NAT: vpd keeps container bridges routed, without NAT")
    except NotFound:
        check_overlap(preseed.subnet, used_networks(client), preseed.bridge)
        client.request("POST", path("networks"), json={"name": preseed.bridge, "type": "bridge", "config": want})
        report.changed.append(f"bridge {preseed.bridge} {want['ipv4.address']} (no NAT)")
    profile = client.get(path("profiles", PROFILE))
    devices = dict(profile.get("devices") or {})
    wanted = preseed.profile_devices()
    if any(devices.get(k) != v for k, v in wanted.items()):
        devices.update(wanted)
        client.request("PUT", path("profiles", PROFILE),
                       json={"config": profile.get("config") or {}, "description": profile.get("description", ""),
                             "devices": devices})
        report.changed.append("default profile: root disk and eth0")
    return report


def existing_subnet(client: IncusClient, bridge: str = BRIDGE) -> ipaddress.IPv4Network | None:
    try:
        addr = (client.get(path("networks", bridge)).get("config") or {}).get("ipv4.address")
    except NotFound:
        return None
    return ipaddress.ip_interface(addr).network if addr and addr not in ("none", "auto") else None
