"""Host bridges (the seed's `nmcli con add type bridge ...`): put a host interface into a new
bridge, moving its addresses and routes to the bridge, so guests can join the host's LAN.

Through NetworkManager where it runs, else iproute2, always as argv over the host's Runner.
Changing the interface that carries the host's management address can cut vpd off the host,
so that is refused unless forced, and every change is made "commit-confirmed": a watchdog on
the host runs the rollback script after a deadline unless vpd, having reached the host again
over fresh SSH and libvirt connections, cancels it first."""
from __future__ import annotations

import ipaddress
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..connect.inventory import Host
from ..connect.libvirt_conn import open_connection
from ..connect.ssh import Runner, SshRunner, close_masters, runner_for
from ..core.errors import HostUnreachable, NotFound, UsageError, VpdError
from ..xml.checks import require_ifname
from .hostnet import HostNetwork, Link, Route, read_host_network

ROLLBACK_DIR = "/run/vpd-bridge"
DEFAULT_CONFIRM_S = 20.0
# The watchdog: fixed text; the deadline and the script path arrive as positional parameters.
WATCHDOG = 'exec </dev/null >/dev/null 2>&1; sleep "$1"; if [ -f "$2" ]; then sh "$2"; rm -f "$2"; fi'


@dataclass
class Plan:
    backend: str  # 'iproute2' | 'networkmanager'
    bridge: str
    iface: str
    changes: list[list[str]] = field(default_factory=list)  # argv lists, run in order
    batch: str | None = None  # iproute2: the change as one `ip -batch` (no gap between steps)
    rollback: list[list[str]] = field(default_factory=list)
    moves: list[str] = field(default_factory=list)  # addresses moved, for the report
    management: bool = False

    def rollback_script(self) -> str:
        return "".join(shlex.join(argv) + "\n" for argv in self.rollback)


def _moved_addresses(link: Link) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """Addresses to carry over: all but IPv6 link-local ones (the kernel makes those per device)."""
    return [a for a in link.addresses if not (a.version == 6 and a.ip.is_link_local)]


def _route_args(r: Route, dev: str) -> list[str]:
    args = ["default" if r.dst.prefixlen == 0 else str(r.dst)]
    if r.gateway:
        args += ["via", r.gateway]
    args += ["dev", dev]
    if r.protocol and r.protocol not in ("kernel", "boot"):
        args += ["proto", r.protocol]
    if r.raw.get("metric") is not None:
        args += ["metric", str(r.raw["metric"])]
    if r.scope and r.scope not in ("global", "universe"):
        args += ["scope", r.scope]
    return args


def _routes_via(hostnet: HostNetwork, dev: str) -> list[Route]:
    """Routes the kernel drops with the device's addresses, and that must be re-made."""
    return [r for r in hostnet.routes if r.dev == dev and not r.is_kernel]


def plan_iproute2(hostnet: HostNetwork, bridge: str, iface: str) -> Plan:
    link = hostnet.links[iface]
    addrs = _moved_addresses(link)
    routes = _routes_via(hostnet, iface)
    batch = [f"link add name {bridge} type bridge stp_state 0 forward_delay 0"]
    if link.mac:
        # The bridge keeps the port's MAC: neighbours' ARP caches stay right, DHCP reservations too.
        batch.append(f"link set dev {bridge} address {link.mac}")
    batch += [f"link set dev {iface} master {bridge}", f"link set dev {iface} up", f"link set dev {bridge} up"]
    batch += [f"addr del {a} dev {iface}" for a in addrs]
    batch += [f"addr add {a} dev {bridge}" for a in addrs]
    batch += ["route replace " + " ".join(_route_args(r, bridge)) for r in routes]
    rollback = [["ip", "link", "set", "dev", iface, "nomaster"], ["ip", "link", "del", "dev", bridge]]
    rollback += [["ip", "addr", "add", str(a), "dev", iface] for a in addrs]
    rollback += [["ip", "link", "set", "dev", iface, "up"]]
    rollback += [["ip", "route", "replace", *_route_args(r, iface)] for r in routes]
    return Plan("iproute2", bridge, iface, batch="\n".join(batch) + "\n", rollback=rollback,
                moves=[str(a) for a in addrs])


def plan_iproute2_remove(hostnet: HostNetwork, bridge: str, iface: str) -> Plan:
    """The reverse: the port leaves, the bridge's addresses and routes go back to it."""
    br = hostnet.links[bridge]
    addrs = _moved_addresses(br)
    routes = _routes_via(hostnet, bridge)
    batch = [f"link set dev {iface} nomaster"]
    batch += [f"addr add {a} dev {iface}" for a in addrs]
    batch += [f"link set dev {iface} up", f"link del dev {bridge}"]
    batch += ["route replace " + " ".join(_route_args(r, iface)) for r in routes]
    rollback = [["ip", "link", "add", "name", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"]]
    if br.mac:
        rollback.append(["ip", "link", "set", "dev", bridge, "address", br.mac])
    rollback += [["ip", "addr", "del", str(a), "dev", iface] for a in addrs]
    rollback += [["ip", "link", "set", "dev", iface, "master", bridge], ["ip", "link", "set", "dev", bridge, "up"]]
    rollback += [["ip", "addr", "add", str(a), "dev", bridge] for a in addrs]
    rollback += [["ip", "route", "replace", *_route_args(r, bridge)] for r in routes]
    return Plan("iproute2", bridge, iface, batch="\n".join(batch) + "\n", rollback=rollback,
                moves=[str(a) for a in addrs])


def plan_networkmanager(bridge: str, iface: str, old_connection: str | None, ipv4: dict[str, str]) -> Plan:
    """The seed's nmcli steps: a bridge connection with the interface's IPv4 settings and a port
    connection for the interface; rollback deletes both and brings the old connection back."""
    port = f"{bridge}-port-{iface}"[:64]
    add_bridge = ["nmcli", "connection", "add", "type", "bridge", "ifname", bridge, "con-name", bridge,
                  "bridge.stp", "no", "connection.autoconnect", "yes"]
    method = ipv4.get("ipv4.method") or "auto"
    add_bridge += ["ipv4.method", method]
    for key in ("ipv4.addresses", "ipv4.gateway", "ipv4.dns"):
        if ipv4.get(key) and method == "manual":
            add_bridge += [key, ipv4[key]]
    changes = [
        add_bridge,
        ["nmcli", "connection", "add", "type", "ethernet", "ifname", iface, "con-name", port,
         "slave-type", "bridge", "master", bridge, "connection.autoconnect", "yes"],
        ["nmcli", "connection", "up", port],
        ["nmcli", "connection", "up", bridge],
    ]
    rollback = [["nmcli", "connection", "delete", port], ["nmcli", "connection", "delete", bridge]]
    if old_connection:
        rollback.append(["nmcli", "connection", "up", old_connection])
    return Plan("networkmanager", bridge, iface, changes=changes, rollback=rollback)


def networkmanager_runs(runner: Runner) -> bool:
    result = runner.run(["nmcli", "-t", "-f", "RUNNING", "general"], check=False, timeout=10)
    return result.ok and result.stdout.strip() == "running"


def _nm_ipv4(runner: Runner, iface: str) -> tuple[str | None, dict[str, str]]:
    conn = runner.run(["nmcli", "-g", "GENERAL.CONNECTION", "device", "show", iface], check=False).stdout.strip()
    if not conn:
        return None, {}
    keys = ["ipv4.method", "ipv4.addresses", "ipv4.gateway", "ipv4.dns"]
    out = runner.run(["nmcli", "-g", ",".join(keys), "connection", "show", conn]).stdout.splitlines()
    return conn, {k: v.strip() for k, v in zip(keys, out, strict=False)}


# --- checks -------------------------------------------------------------------------

def check_create(hostnet: HostNetwork, host: Host, bridge: str, iface: str, force_management: bool) -> bool:
    """Refuse what cannot or must not be done; True when the bridge already has iface (no-op)."""
    require_ifname(bridge, "bridge name")
    require_ifname(iface, "interface")
    link = hostnet.links.get(iface)
    if link is None:
        raise UsageError(f"interface {iface} does not exist on {host.name}",
                         hint="known: " + ", ".join(sorted(n for n in hostnet.links if n != "lo")))
    existing = hostnet.links.get(bridge)
    if existing is not None:
        if existing.kind == "bridge" and link.master == bridge:
            return True
        raise UsageError(f"{bridge} already exists on {host.name}"
                         + (f" (a {existing.kind})" if existing.kind else "")
                         + (f" and {iface} is not its port" if existing.kind == "bridge" else ""),
                         hint="pick another bridge name")
    if iface == "lo" or link.kind == "bridge":
        raise UsageError(f"{iface} on {host.name} is a bridge itself (or the loopback): it cannot be a port")
    if link.master:
        raise UsageError(f"{iface} on {host.name} is already a port of {link.master}")
    if is_management(hostnet, host, iface) and not force_management:
        raise UsageError(f"{iface} carries {host.name}'s management address {host.address}: bridging it "
                         "moves that address and may cut vpd (and you) off the host",
                         hint="use another interface, or --force-management (vpd then rolls the change back "
                              "by itself if the host stops answering)")
    return False


def is_management(hostnet: HostNetwork, host: Host, iface: str) -> bool:
    if not host.address:
        return False
    carrier = hostnet.link_with_address(host.address)
    return carrier is not None and carrier.name == iface


# --- doing it, commit-confirmed -------------------------------------------------------

class _ProbeRunner(SshRunner):
    """SSH without the shared master: a probe must prove that a new connection gets through."""

    def ssh_options(self) -> list[str]:
        opts = super().ssh_options()
        out, skip = [], False
        for i, opt in enumerate(opts):
            if skip:
                skip = False
                continue
            if opt == "-o" and i + 1 < len(opts) and opts[i + 1].startswith("Control"):
                skip = True
                continue
            out.append(opt)
        return out + ["-o", "ControlMaster=no", "-o", "ConnectTimeout=3"]


def answers(host: Host, timeout: float = 5.0) -> str | None:
    """None when libvirt and SSH both answer over new connections, else what failed."""
    try:
        conn = open_connection(host, timeout=timeout)
        try:
            conn.getLibVersion()
        finally:
            conn.close()
    except VpdError as exc:
        return f"libvirt: {exc.message}"
    if host.is_local:
        return None
    try:
        result = _ProbeRunner(host, timeout=timeout + 3).run(["true"], check=False)
    except VpdError as exc:
        return f"ssh: {exc.message}"
    return None if result.ok else f"ssh: exit {result.returncode}"


def _wait_answer(host: Host, seconds: float) -> str | None:
    deadline = time.monotonic() + seconds
    last: str | None = "no probe ran"
    while time.monotonic() < deadline:
        last = answers(host, timeout=round(min(5.0, max(1.0, deadline - time.monotonic())), 1))
        if last is None:
            return None
        time.sleep(0.5)
    return last


def apply(host: Host, runner: Runner, plan: Plan, confirm_s: float = DEFAULT_CONFIRM_S) -> dict:
    """Arm the host's rollback watchdog, make the change, probe, then confirm (cancel the
    watchdog) or let it roll back and report that. Returns the report; raises on rollback."""
    script = f"{ROLLBACK_DIR}/{plan.bridge}.sh"
    runner.run(["mkdir", "-p", ROLLBACK_DIR])
    runner.run(["tee", script], input=plan.rollback_script())
    runner.run(["setsid", "-f", "sh", "-c", WATCHDOG, "vpd-bridge-rollback", f"{confirm_s:g}", script])
    armed = time.monotonic()
    failure: str | None = None
    try:
        if plan.batch is not None:
            result = runner.run(["ip", "-batch", "-"], input=plan.batch, check=False, timeout=confirm_s / 2)
            if not result.ok:
                failure = f"`ip -batch` failed: {result.stderr.strip() or result.stdout.strip()}"
        else:
            for argv in plan.changes:
                result = runner.run(argv, check=False, timeout=confirm_s / 2)
                if not result.ok:
                    failure = f"`{shlex.join(argv)}` failed: {result.stderr.strip() or result.stdout.strip()}"
                    break
    except VpdError:
        # No answer to the change itself (cut off mid-change, or timed out): the probes tell.
        close_masters()
    if failure is not None:
        # The change failed while the host still answers: undo it now, not at the deadline.
        try:
            runner.run(["sh", script], check=False)
            runner.run(["rm", "-f", script], check=False)
        except VpdError:
            pass  # the watchdog still undoes it at the deadline
        raise VpdError(f"{host.name}: {failure}; the change was rolled back")
    problem = _wait_answer(host, max(1.0, confirm_s - (time.monotonic() - armed) - 3.0))
    if problem is None:
        try:
            runner.run(["rm", "-f", script], timeout=10)  # confirm: the watchdog finds no script
        except VpdError:
            problem = "the confirmation did not reach the host"
    if problem is None:
        return {"confirmed": True, "rolled_back": False}
    close_masters()  # a shared SSH connection stuck on the dead path would stall later commands
    # Never confirmed, so the watchdog restores the old configuration at its deadline: wait for
    # that before probing, so "answers again" means "answers after the rollback".
    time.sleep(max(0.0, confirm_s - (time.monotonic() - armed)) + 1.0)
    back = _wait_answer(host, 20.0)
    if back is None:
        raise VpdError(f"{host.name} stopped answering after the change ({problem}); the host's watchdog "
                       "rolled it back and the host answers again",
                       hint="check the host's firewall and addressing for the new bridge before retrying")
    raise HostUnreachable(f"{host.name} stopped answering after the change ({problem}) and still does not "
                          f"after the rollback deadline ({back})",
                          hint=f"reach the host's console; the rollback script was {script}")


def create(host: Host, bridge: str, iface: str, *, force_management: bool = False,
           confirm_s: float = DEFAULT_CONFIRM_S, runner: Runner | None = None,
           plan: Callable[[], None] | None = None) -> dict:
    """Make `bridge` with `iface` as its port (commit-confirmed); the same bridge again is a no-op.
    `plan` is called once the bridge is known to be new, just before the host is changed."""
    require_ifname(bridge, "bridge name")
    require_ifname(iface, "interface")
    runner = runner or runner_for(host, timeout=30)
    hostnet = read_host_network(runner)
    if check_create(hostnet, host, bridge, iface, force_management):
        return {"host": host.name, "bridge": bridge, "iface": iface, "changed": False, "backend": None}
    if plan is not None:
        plan()
    management = is_management(hostnet, host, iface)
    if networkmanager_runs(runner):
        old, ipv4 = _nm_ipv4(runner, iface)
        change = plan_networkmanager(bridge, iface, old, ipv4)
    else:
        change = plan_iproute2(hostnet, bridge, iface)
    change.management = management
    report = apply(host, runner, change, confirm_s)
    _validate(runner, host, bridge, iface, change)
    return {"host": host.name, "bridge": bridge, "iface": iface, "changed": True, "backend": change.backend,
            "moved_addresses": change.moves, "management": management, **report}


def _validate(runner: Runner, host: Host, bridge: str, iface: str, plan: Plan) -> None:
    after = read_host_network(runner)
    br = after.links.get(bridge)
    if br is None or br.kind != "bridge" or after.links[iface].master != bridge:
        raise VpdError(f"{host.name}: after the change {bridge} is not a bridge with port {iface}")
    missing = [a for a in plan.moves if ipaddress.ip_interface(a) not in br.addresses]
    if missing and plan.backend == "iproute2":
        raise VpdError(f"{host.name}: {bridge} lacks the moved addresses {', '.join(missing)}")


def delete(host: Host, bridge: str, *, force_management: bool = False, confirm_s: float = DEFAULT_CONFIRM_S,
           runner: Runner | None = None) -> dict:
    require_ifname(bridge, "bridge name")
    runner = runner or runner_for(host, timeout=30)
    hostnet = read_host_network(runner)
    br = hostnet.links.get(bridge)
    if br is None or br.kind != "bridge":
        raise NotFound(f"no bridge named {bridge} on {host.name}")
    ports = [link.name for link in hostnet.links.values() if link.master == bridge]
    uplinks = [p for p in ports if hostnet.links[p].kind not in ("tun",) and not p.startswith("vnet")]
    guests = [p for p in ports if p not in uplinks]
    if guests:
        raise UsageError(f"guests are still on {bridge} ({', '.join(guests)})",
                         hint="detach their NICs (vpd vm iface detach) first")
    if len(uplinks) > 1:
        raise UsageError(f"{bridge} has several ports ({', '.join(uplinks)}): vpd only undoes bridges of one port")
    if is_management(hostnet, host, bridge) and not force_management:
        raise UsageError(f"{bridge} carries {host.name}'s management address {host.address}",
                         hint="--force-management (rolled back by itself if the host stops answering)")
    if not uplinks:
        runner.run(["ip", "link", "del", "dev", bridge])
        return {"host": host.name, "bridge": bridge, "changed": True, "backend": "iproute2", "iface": None}
    iface = uplinks[0]
    if networkmanager_runs(runner):
        port = f"{bridge}-port-{iface}"[:64]
        _, ipv4 = _nm_ipv4(runner, bridge)
        plan = Plan("networkmanager", bridge, iface,
                    changes=[["nmcli", "connection", "delete", port], ["nmcli", "connection", "delete", bridge],
                             ["nmcli", "device", "connect", iface]],
                    # Undoing the removal is making the bridge again, with the settings it had.
                    rollback=plan_networkmanager(bridge, iface, None, ipv4).changes)
    else:
        plan = plan_iproute2_remove(hostnet, bridge, iface)
    report = apply(host, runner, plan, confirm_s)
    return {"host": host.name, "bridge": bridge, "iface": iface, "changed": True, "backend": plan.backend,
            "moved_addresses": plan.moves, **report}
