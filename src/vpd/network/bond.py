"""Host bonds (the seed's `nmcli connection add type bond ... bond.options "mode=...,miimon=100"`):
several host interfaces as one, for redundancy (active-backup) or spread load (balance-rr, ...).

Options are checked per mode by a pure function before anything changes. The change is made
through NetworkManager where it runs (nmcli, as the seed does), else iproute2 (netlink), as argv
over the host's Runner, and commit-confirmed like `host bridge`: a watchdog on the host undoes it
unless vpd reaches the host again. Enslaving the interface that carries the host's management
address is refused unless forced (its addresses then move to the bond). Status comes from
netlink (`ip -j -d link`) and /proc/net/bonding/NAME, read by a pure parser."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..connect.inventory import Host
from ..connect.ssh import Runner, runner_for
from ..core.errors import NotFound, UsageError, VpdError
from ..xml.checks import require_ifname
from . import bridge as bridges
from .hostnet import HostNetwork, read_host_network

# The kernel's names, with their numbers (`mode=1` is `mode=active-backup`).
MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb")
PRIMARY_MODES = ("active-backup", "balance-tlb", "balance-alb")
HASH_MODES = ("balance-xor", "802.3ad", "balance-tlb")
HASH_POLICIES = ("layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4", "vlan+srcmac")
LACP_RATES = ("slow", "fast")
MAX_MIIMON_MS = 60_000
BONDING_MASTERS = "/sys/class/net/bonding_masters"


@dataclass(frozen=True)
class BondSpec:
    name: str
    mode: str
    ports: tuple[str, ...]
    miimon: int = 100
    primary: str | None = None
    xmit_hash_policy: str | None = None
    lacp_rate: str | None = None

    def options(self) -> dict[str, str]:
        """The bond's options as the kernel and nmcli name them, in a stable order."""
        opts = {"mode": self.mode, "miimon": str(self.miimon)}
        if self.primary:
            opts["primary"] = self.primary
        if self.xmit_hash_policy:
            opts["xmit_hash_policy"] = self.xmit_hash_policy
        if self.lacp_rate:
            opts["lacp_rate"] = self.lacp_rate
        return opts

    def nm_options(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.options().items())


def validate(name: str, mode: str, ports: list[str] | tuple[str, ...] | str, *, miimon: int = 100,
             primary: str | None = None, xmit_hash_policy: str | None = None,
             lacp_rate: str | None = None) -> BondSpec:
    """Check a bond request against its mode (pure): UsageError on anything the kernel would
    refuse or silently ignore, so nothing changes on the host."""
    require_ifname(name, "bond name")
    mode = str(mode).strip()
    if mode.isdigit() and int(mode) < len(MODES):
        mode = MODES[int(mode)]
    if mode not in MODES:
        raise UsageError(f"unknown bond mode {mode!r}", hint="one of: " + ", ".join(MODES) + " (or 0-6)")
    if isinstance(ports, str):
        ports = [p.strip() for p in ports.split(",") if p.strip()]
    ports = tuple(ports)
    for p in ports:
        require_ifname(p, "port")
    if len(ports) < 2:
        raise UsageError(f"a bond needs at least two ports, got {len(ports)}", hint="--ports eth1,eth2")
    if len(set(ports)) != len(ports):
        raise UsageError(f"a port is named twice in {','.join(ports)}")
    if name in ports:
        raise UsageError(f"bond {name} cannot be its own port")
    if not isinstance(miimon, int) or not 1 <= miimon <= MAX_MIIMON_MS:
        raise UsageError(f"miimon must be 1-{MAX_MIIMON_MS} ms, not {miimon!r}",
                         hint="without link monitoring a failed port is never noticed (the seed uses 100)")
    if primary is not None:
        if mode not in PRIMARY_MODES:
            raise UsageError(f"--primary applies to {', '.join(PRIMARY_MODES)}, not {mode}")
        if primary not in ports:
            raise UsageError(f"primary {primary} is not one of the ports ({','.join(ports)})")
    if xmit_hash_policy is not None:
        if mode not in HASH_MODES:
            raise UsageError(f"--xmit-hash-policy applies to {', '.join(HASH_MODES)}, not {mode}")
        if xmit_hash_policy not in HASH_POLICIES:
            raise UsageError(f"unknown xmit_hash_policy {xmit_hash_policy!r}", hint=", ".join(HASH_POLICIES))
    if lacp_rate is not None:
        if mode != "802.3ad":
            raise UsageError(f"--lacp-rate applies to 802.3ad only, not {mode}")
        if lacp_rate not in LACP_RATES:
            raise UsageError(f"lacp_rate is slow or fast, not {lacp_rate!r}")
    return BondSpec(name, mode, ports, miimon, primary, xmit_hash_policy, lacp_rate)


# --- /proc/net/bonding/NAME ---------------------------------------------------------------

_MODE_TEXT = {
    "load balancing (round-robin)": "balance-rr",
    "fault-tolerance (active-backup)": "active-backup",
    "load balancing (xor)": "balance-xor",
    "fault-tolerance (broadcast)": "broadcast",
    "IEEE 802.3ad Dynamic link aggregation": "802.3ad",
    "transmit load balancing": "balance-tlb",
    "adaptive load balancing": "balance-alb",
}


@dataclass
class PortStatus:
    name: str
    mii_status: str | None = None
    speed: str | None = None
    link_failures: int | None = None
    permanent_mac: str | None = None


@dataclass
class BondStatus:
    mode: str | None = None
    mode_text: str | None = None
    active_port: str | None = None
    primary: str | None = None
    mii_status: str | None = None
    miimon: int | None = None
    ports: list[PortStatus] = field(default_factory=list)


def parse_proc_bonding(text: str) -> BondStatus:
    """The kernel's /proc/net/bonding/NAME ('Slave Interface' sections after the bond's own)."""
    status = BondStatus()
    port: PortStatus | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key in ("Slave Interface", "Port Interface"):
            port = PortStatus(value)
            status.ports.append(port)
        elif port is None:
            if key == "Bonding Mode":
                status.mode_text = value
                status.mode = _MODE_TEXT.get(re.sub(r"\s+", " ", value))
            elif key in ("Currently Active Slave", "Currently Active Port"):
                status.active_port = None if value == "None" else value
            elif key in ("Primary Slave", "Primary Port"):
                status.primary = None if value == "None" else value.split()[0]
            elif key == "MII Status":
                status.mii_status = value
            elif key == "MII Polling Interval (ms)" and value.isdigit():
                status.miimon = int(value)
        elif key == "MII Status":
            port.mii_status = value
        elif key == "Speed":
            port.speed = value
        elif key == "Link Failure Count" and value.isdigit():
            port.link_failures = int(value)
        elif key == "Permanent HW addr":
            port.permanent_mac = value.lower()
    return status


# --- plans ----------------------------------------------------------------------------

def plan_iproute2(hostnet: HostNetwork, spec: BondSpec, move_from: str | None = None) -> bridges.Plan:
    """One `ip -batch`: the bond with its options, ports down, enslaved, then up; the
    management port's addresses and routes move to the bond when it is a port (forced)."""
    opts = " ".join(f"{k} {v}" for k, v in spec.options().items())
    batch = [f"link add name {spec.name} type bond {opts}"]
    for p in spec.ports:
        batch += [f"link set dev {p} down", f"link set dev {p} master {spec.name}"]
    batch += [f"link set dev {spec.name} up"] + [f"link set dev {p} up" for p in spec.ports]
    rollback = [["ip", "link", "set", "dev", p, "nomaster"] for p in spec.ports]
    rollback += [["ip", "link", "del", "dev", spec.name]] + [["ip", "link", "set", "dev", p, "up"] for p in spec.ports]
    moves: list[str] = []
    if move_from is not None:
        link = hostnet.links[move_from]
        addrs = bridges._moved_addresses(link)
        routes = bridges._routes_via(hostnet, move_from)
        batch += [f"addr add {a} dev {spec.name}" for a in addrs]
        batch += ["route replace " + " ".join(bridges._route_args(r, spec.name)) for r in routes]
        rollback += [["ip", "addr", "add", str(a), "dev", move_from] for a in addrs]
        rollback += [["ip", "route", "replace", *bridges._route_args(r, move_from)] for r in routes]
        moves = [str(a) for a in addrs]
    return bridges.Plan("iproute2", spec.name, ",".join(spec.ports), batch="\n".join(batch) + "\n",
                        rollback=rollback, moves=moves)


def plan_networkmanager(spec: BondSpec) -> bridges.Plan:
    """The seed's nmcli steps: a bond connection with its options and a port connection per
    interface (`port-type bond controller NAME`); rollback deletes them all."""
    port_names = [f"{spec.name}-port-{p}"[:64] for p in spec.ports]
    changes = [["nmcli", "connection", "add", "type", "bond", "con-name", spec.name, "ifname", spec.name,
                "bond.options", spec.nm_options(), "connection.autoconnect", "yes"]]
    for p, con in zip(spec.ports, port_names, strict=True):
        changes.append(["nmcli", "connection", "add", "type", "ethernet", "port-type", "bond", "controller", spec.name,
                        "con-name", con, "ifname", p, "connection.autoconnect", "yes"])
    changes.append(["nmcli", "connection", "up", spec.name])
    rollback = [["nmcli", "connection", "delete", con] for con in port_names]
    rollback.append(["nmcli", "connection", "delete", spec.name])
    return bridges.Plan("networkmanager", spec.name, ",".join(spec.ports), changes=changes, rollback=rollback)


def check_create(hostnet: HostNetwork, host: Host, spec: BondSpec, force_management: bool) -> bool:
    """Refuse what cannot or must not be done; True when the bond already is exactly this (no-op)."""
    existing = hostnet.links.get(spec.name)
    if existing is not None:
        ports = sorted(n for n, link in hostnet.links.items() if link.master == spec.name)
        if existing.kind == "bond" and ports == sorted(spec.ports):
            return True
        raise UsageError(f"{spec.name} already exists on {host.name}"
                         + (f" (a {existing.kind} with ports {','.join(ports) or 'none'})" if existing.kind else ""),
                         hint="pick another name, or `vpd host bond delete` it first")
    for p in spec.ports:
        link = hostnet.links.get(p)
        if link is None:
            raise UsageError(f"interface {p} does not exist on {host.name}",
                             hint="known: " + ", ".join(sorted(n for n in hostnet.links if n != "lo")))
        if p == "lo" or link.kind in ("bridge", "bond"):
            raise UsageError(f"{p} on {host.name} is a {link.kind or 'loopback'}: it cannot be a bond port")
        if link.master:
            raise UsageError(f"{p} on {host.name} is already a port of {link.master}")
        if bridges.is_management(hostnet, host, p) and not force_management:
            raise UsageError(f"{p} carries {host.name}'s management address {host.address}: bonding it moves "
                             "that address to the bond and may cut vpd (and you) off the host",
                             hint="use other ports, or --force (vpd then rolls the change back by itself if the "
                                  "host stops answering)")
    return False


def _management_port(hostnet: HostNetwork, host: Host, spec: BondSpec) -> str | None:
    return next((p for p in spec.ports if bridges.is_management(hostnet, host, p)), None)


def require_bonding(runner: Runner, host: Host) -> None:
    """The kernel's bonding driver: loaded (or loadable) on the host, else an explained failure."""
    if runner.run(["test", "-e", BONDING_MASTERS], check=False).ok:
        return
    runner.run(["modprobe", "bonding"], check=False, timeout=20)
    if not runner.run(["test", "-e", BONDING_MASTERS], check=False).ok:
        raise VpdError(f"{host.name}'s kernel has no bonding driver ({BONDING_MASTERS} is missing even after "
                       "`modprobe bonding`)", hint="a kernel with CONFIG_BONDING (module `bonding`) is needed")


# --- doing it ----------------------------------------------------------------------------

def create(host: Host, spec: BondSpec, *, force_management: bool = False,
           confirm_s: float = bridges.DEFAULT_CONFIRM_S, runner: Runner | None = None) -> dict:
    runner = runner or runner_for(host, timeout=30)
    hostnet = read_host_network(runner)
    if check_create(hostnet, host, spec, force_management):
        return {"host": host.name, "bond": spec.name, "changed": False, "backend": None, **spec.options(),
                "ports": list(spec.ports)}
    require_bonding(runner, host)
    management = _management_port(hostnet, host, spec)
    if bridges.networkmanager_runs(runner):
        plan = plan_networkmanager(spec)
    else:
        plan = plan_iproute2(hostnet, spec, move_from=management)
    plan.management = management is not None
    report = bridges.apply(host, runner, plan, confirm_s)
    after = read_host_network(runner)
    enslaved = sorted(n for n, link in after.links.items() if link.master == spec.name)
    if after.links.get(spec.name) is None or enslaved != sorted(spec.ports):
        raise VpdError(f"{host.name}: after the change {spec.name} is not a bond of {','.join(spec.ports)}")
    return {"host": host.name, "bond": spec.name, "changed": True, "backend": plan.backend, **spec.options(),
            "ports": list(spec.ports), "management": plan.management, "moved_addresses": plan.moves, **report}


def delete(host: Host, name: str, *, force_management: bool = False, confirm_s: float = bridges.DEFAULT_CONFIRM_S,
           runner: Runner | None = None) -> dict:
    require_ifname(name, "bond name")
    runner = runner or runner_for(host, timeout=30)
    hostnet = read_host_network(runner)
    bond = hostnet.links.get(name)
    if bond is None or bond.kind != "bond":
        raise NotFound(f"no bond named {name} on {host.name}")
    ports = sorted(n for n, link in hostnet.links.items() if link.master == name)
    if bridges.is_management(hostnet, host, name) and not force_management:
        raise UsageError(f"{name} carries {host.name}'s management address {host.address}",
                         hint="--force (rolled back by itself if the host stops answering)")
    if bridges.networkmanager_runs(runner):
        plan = bridges.Plan("networkmanager", name, ",".join(ports),
                            changes=[["nmcli", "connection", "delete", f"{name}-port-{p}"[:64]] for p in ports]
                            + [["nmcli", "connection", "delete", name]])
    else:
        batch = [f"link set dev {p} nomaster" for p in ports] + [f"link del dev {name}"]
        batch += [f"link set dev {p} up" for p in ports]
        rollback = [["ip", "link", "add", "name", name, "type", "bond"]]
        rollback += [["ip", "link", "set", "dev", p, "master", name] for p in ports]
        rollback += [["ip", "link", "set", "dev", name, "up"]]
        rollback += [["ip", "addr", "add", str(a), "dev", name] for a in bridges._moved_addresses(bond)]
        plan = bridges.Plan("iproute2", name, ",".join(ports), batch="\n".join(batch) + "\n", rollback=rollback)
    report = bridges.apply(host, runner, plan, confirm_s)
    return {"host": host.name, "bond": name, "changed": True, "backend": plan.backend, "ports": ports, **report}


def status(host: Host, name: str, runner: Runner | None = None) -> dict:
    """The bond as the kernel reports it: netlink (kind, ports, up) and /proc/net/bonding/NAME
    (mode, active port, each port's MII status and failure count)."""
    require_ifname(name, "bond name")
    runner = runner or runner_for(host, timeout=20)
    hostnet = read_host_network(runner)
    bond = hostnet.links.get(name)
    if bond is None or bond.kind != "bond":
        raise NotFound(f"no bond named {name} on {host.name}", hint=f"vpd host bond create {name} --host {host.name}")
    proc = runner.run(["cat", f"/proc/net/bonding/{name}"], check=False)
    if not proc.ok:
        raise VpdError(f"{host.name}: cannot read /proc/net/bonding/{name}: {proc.stderr.strip()}")
    st = parse_proc_bonding(proc.stdout)
    return {"host": host.name, "bond": name, "up": bond.up, "mode": st.mode, "mode_text": st.mode_text,
            "active_port": st.active_port, "primary": st.primary, "mii_status": st.mii_status,
            "miimon": st.miimon, "addresses": [str(a) for a in bond.addresses],
            "ports": [vars(p) for p in st.ports]}
