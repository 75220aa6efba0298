"""A bond inside a guest, asked for at `vpd vm create ... --network ... --network ... --bond
bond0:mode=active-backup,miimon=100,ports=all` (the seed's P8 VM: several virtio NICs bonded
inside with nmcli). The request is checked by network/bond.py's per-mode validation (one home for
what each mode accepts), then handed to the guest in the form it reads:

- the lab guest: a kernel argument, `vpd.bond=bond0:mode=...,ports=eth0+eth1,addr=A/P`, which
  guest/init gives to guest/bond (sysfs, as the bonding driver documents);
- a cloud-init guest: a network-config version 2 whose NICs are matched by MAC and renamed
  (`set-name`) to the names the request uses, so ports do not depend on the guest's naming.

Ports are named eth0..ethN-1 after the order of --network; `ports=all` takes them all.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import yaml

from ..core.errors import UsageError
from ..network.bond import BondSpec, validate

KERNEL_ARG = "vpd.bond"
_KEYS = ("mode", "miimon", "primary", "ports", "addr", "xmit_hash_policy", "lacp_rate")


@dataclass(frozen=True)
class GuestBond:
    spec: BondSpec
    addr: str | None = None
    """An IPv4 address with prefix (198.18.0.10/24), "dhcp", or None (no address)."""

    def kernel_arg(self) -> str:
        """`vpd.bond=NAME:key=value,...` for the lab guest (no spaces: one kernel argument)."""
        opts = dict(self.spec.options())
        opts["ports"] = "+".join(self.spec.ports)
        if self.addr:
            opts["addr"] = self.addr
        return f"{KERNEL_ARG}={self.spec.name}:" + ",".join(f"{k}={v}" for k, v in opts.items())

    def network_config(self, macs: list[str]) -> str:
        """cloud-init network-config v2: each port matched by its MAC and renamed, no address of its
        own; the bond with its mode and options (netplan's names) and the address."""
        if len(macs) < len(self.spec.ports):
            raise UsageError(f"bond {self.spec.name} needs {len(self.spec.ports)} NICs, the VM has {len(macs)}")
        ethernets = {}
        for i, mac in enumerate(macs):
            name = f"eth{i}"
            entry: dict[str, object] = {"match": {"macaddress": mac.lower()}, "set-name": name}
            if name in self.spec.ports:
                entry.update(dhcp4=False, dhcp6=False)
            else:
                entry["dhcp4"] = True
            ethernets[name] = entry
        params: dict[str, object] = {"mode": self.spec.mode, "mii-monitor-interval": self.spec.miimon}
        if self.spec.primary:
            params["primary"] = self.spec.primary
        if self.spec.xmit_hash_policy:
            params["transmit-hash-policy"] = self.spec.xmit_hash_policy
        if self.spec.lacp_rate:
            params["lacp-rate"] = self.spec.lacp_rate
        bond: dict[str, object] = {"interfaces": list(self.spec.ports), "parameters": params}
        if self.addr == "dhcp":
            bond["dhcp4"] = True
        elif self.addr:
            bond.update(dhcp4=False, addresses=[self.addr])
        config = {"version": 2, "ethernets": ethernets, "bonds": {self.spec.name: bond}}
        return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def parse(text: str, nic_count: int) -> GuestBond:
    """`NAME:mode=M,miimon=MS,primary=ethI,ports=all|ethI+ethJ,addr=A/P|dhcp[,xmit_hash_policy=H]
    [,lacp_rate=R]` for a VM with `nic_count` NICs; UsageError on anything wrong."""
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise UsageError(f"--bond {text!r}: expected NAME:mode=M,ports=all|eth0+eth1[,miimon=MS][,primary=ethI]"
                         "[,addr=A/P|dhcp]")
    values: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in _KEYS or not value.strip():
            raise UsageError(f"--bond {text!r}: bad item {item!r}", hint="keys: " + ", ".join(_KEYS))
        if key in values:
            raise UsageError(f"--bond {text!r}: {key} given twice")
        values[key] = value.strip()
    if "mode" not in values:
        raise UsageError(f"--bond {text!r}: mode= is required")
    if nic_count < 2:
        raise UsageError(f"--bond needs at least two NICs: give --network twice or more (the VM has {nic_count})")
    names = [f"eth{i}" for i in range(nic_count)]
    ports_text = values.get("ports", "all")
    ports = names if ports_text == "all" else ports_text.split("+")
    for p in ports:
        if p not in names:
            raise UsageError(f"--bond {text!r}: port {p!r} is not a NIC of the VM",
                             hint=f"ports are named after the order of --network: {', '.join(names)}, or all")
    miimon_text = values.get("miimon", "100")
    if not miimon_text.isdigit():
        raise UsageError(f"--bond {text!r}: miimon must be a number of milliseconds")
    spec = validate(name, values["mode"], ports, miimon=int(miimon_text), primary=values.get("primary"),
                    xmit_hash_policy=values.get("xmit_hash_policy"), lacp_rate=values.get("lacp_rate"))
    addr = values.get("addr")
    if addr is not None and addr != "dhcp":
        try:
            iface = ipaddress.IPv4Interface(addr)
        except ValueError:
            raise UsageError(f"--bond {text!r}: addr must be an IPv4 address with prefix (A.B.C.D/P) or dhcp") from None
        if "/" not in addr or iface.network.prefixlen == 32:
            raise UsageError(f"--bond {text!r}: addr {addr} needs a prefix length below 32, e.g. /24")
        addr = str(iface)
    return GuestBond(spec, addr)
