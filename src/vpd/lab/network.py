"""The lab's wire: one bridge in the root namespace, a veth per host, tc shaping.
All through netlink (pyroute2), nothing parsed from `ip` output."""
from __future__ import annotations

import subprocess

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..core.errors import NotFound, VpdError
from .layout import LabHost, bridge_address, bridge_name, subnet, veth_prefix
from .links import outside_name


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def bridge_exists() -> bool:
    with IPRoute() as ipr:
        return _index(ipr, bridge_name()) is not None


def ensure_bridge() -> None:
    guard_lab_range()
    with IPRoute() as ipr:
        if _index(ipr, bridge_name()) is None:
            ipr.link("add", ifname=bridge_name(), kind="bridge")
        idx = _index(ipr, bridge_name())
        have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx)}
        if str(bridge_address()) not in have:
            ipr.addr("add", index=idx, address=str(bridge_address()), prefixlen=subnet().prefixlen)
        ipr.link("set", index=idx, state="up")


def remove_bridge() -> None:
    with IPRoute() as ipr:
        idx = _index(ipr, bridge_name())
        if idx is not None:
            ipr.link("del", index=idx)
        if not any(link.get_attr("IFLA_IFNAME").startswith(BRIDGE_PREFIX) for link in ipr.get_links()):
            _drop_guard(ipr)


BRIDGE_PREFIX = "vpdlab"
GUARD_RANGE = ("198.18.0.0", 15)
"""Every lab network lives in the benchmarking range 198.18.0.0/15."""


def guard_lab_range() -> None:
    """An 'unreachable' route for the whole lab range, below each bridge's own /24: if a lab's
    bridge is gone (a lab torn down under a running command), traffic for its addresses fails
    at once instead of following the default route out of the machine."""
    with IPRoute() as ipr:
        try:
            ipr.route("add", dst=GUARD_RANGE[0], dst_len=GUARD_RANGE[1], type="unreachable", priority=4294967295)
        except NetlinkError as exc:
            if exc.code != 17:  # EEXIST: another lab put it there
                raise


def _drop_guard(ipr: IPRoute) -> None:
    try:
        ipr.route("del", dst=GUARD_RANGE[0], dst_len=GUARD_RANGE[1], type="unreachable", priority=4294967295)
    except NetlinkError as exc:
        if exc.code not in (3, 2):  # ESRCH/ENOENT: not there
            raise


def plug(host: LabHost, holder_pid: int, rate_bps: int | None) -> None:
    """Create the host's veth: our end on the bridge, the peer as eth0 inside the host."""
    with IPRoute() as ipr:
        stale = _index(ipr, host.veth)
        if stale is not None:
            ipr.link("del", index=stale)
        ipr.link("add", ifname=host.veth, kind="veth", peer={"ifname": "eth0", "net_ns_pid": holder_pid,
                                                                    "address": host.mac})
        idx = _index(ipr, host.veth)
        ipr.link("set", index=idx, master=_index(ipr, bridge_name()), state="up")
        if rate_bps:
            shape(ipr, idx, rate_bps)


# A switch port's buffer, not a bufferbloated one: a deep queue would add tens of
# milliseconds to every packet of a migration's final phase (its downtime).
QUEUE_LATENCY = "2ms"


def shape(ipr: IPRoute, index: int, rate_bps: int) -> None:
    """Token bucket on the bridge side: caps all traffic towards the host at rate_bps,
    like the single NIC of a real lab PC."""
    rate_bytes = rate_bps // 8
    burst = max(rate_bytes // 250, 16 * 1024)  # ~4 ms of traffic, at least 16 KiB
    ipr.tc("add", "tbf", index=index, handle=0x10000, rate=rate_bytes, burst=burst, latency=QUEUE_LATENCY)


def plug_second_nic(host: LabHost, holder_pid: int, inside_name: str = "eth1") -> str:
    """Give a running lab host a second NIC on the lab network, without an address (like a spare
    port of a real PC): for host bridges that must not take the management interface.
    Returns its root-side name; `vpd lab down` removes it with the rest."""
    outside = f"{host.veth}-2"
    with IPRoute() as ipr:
        stale = _index(ipr, outside)
        if stale is not None:
            ipr.link("del", index=stale)
        ipr.link("add", ifname=outside, kind="veth", peer={"ifname": inside_name, "net_ns_pid": holder_pid})
        ipr.link("set", index=_index(ipr, outside), master=_index(ipr, bridge_name()), state="up")
    return outside


def unplug(host: LabHost) -> None:
    unplug_name(host.veth)


def lab_links() -> list[str]:
    """Names of lab interfaces present in the root namespace (for status and teardown)."""
    with IPRoute() as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return [n for n in names if n == bridge_name() or n.startswith(veth_prefix())]


def unplug_name(name: str) -> None:
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is not None:
            try:
                ipr.link("del", index=idx)
            except NetlinkError as exc:
                if exc.code != 19:
                    raise


def plug_extra_links(host: LabHost, holder_pid: int, links: int) -> list[str]:
    """`vpd lab up --links N`: eth1..eth(N-1) inside the host, each a veth to the lab bridge
    without an address (spare ports for host bonds and bridges)."""
    made = []
    with IPRoute() as ipr:
        for i in range(1, links):
            outside = outside_name(host.veth, i)
            stale = _index(ipr, outside)
            if stale is not None:
                ipr.link("del", index=stale)
            ipr.link("add", ifname=outside, kind="veth", peer={"ifname": f"eth{i}", "net_ns_pid": holder_pid})
            ipr.link("set", index=_index(ipr, outside), master=_index(ipr, bridge_name()), state="up")
            made.append(outside)
    return made


# --- faults on a host's link (vpd lab link) ----------------------------------------------
# netem where the kernel has it (a child of the link's tbf shaping, or the root qdisc); this
# sandbox's kernel has no sch_netem (CONFIG_NET_SCH_NETEM is not set: adding one answers
# ENOENT), so loss then falls back to an nftables netdev egress chain on the same veth
# (numgen random), and delay has no fallback.

NETEM_HANDLE = 0x20000
TBF_HANDLE = 0x10000
ENOENT = 2


class NoNetem(Exception):
    """The kernel has no netem qdisc."""


def _require_link(ipr: IPRoute, name: str) -> int:
    idx = _index(ipr, name)
    if idx is None:
        raise NotFound(f"lab link {name} does not exist (is the host powered on, with that many links?)")
    return idx


def set_link_state(name: str, up: bool) -> None:
    """The cable: the root-side end down makes the host's NIC lose its carrier."""
    with IPRoute() as ipr:
        ipr.link("set", index=_require_link(ipr, name), state="up" if up else "down")


def _netem_parent(ipr: IPRoute, idx: int) -> dict:
    kinds = {q.get_attr("TCA_KIND"): q for q in ipr.get_qdiscs(index=idx)}
    if "tbf" in kinds and kinds["tbf"]["handle"] == TBF_HANDLE:
        return {"parent": TBF_HANDLE | 1}  # under the shaping: the rate stays
    return {"parent": 0xFFFFFFFF}  # root


def set_netem(name: str, loss_pct: float | None, delay_ms: int | None) -> None:
    """Replace the link's netem with this loss and delay (None: none). Raises NoNetem."""
    with IPRoute() as ipr:
        idx = _require_link(ipr, name)
        opts: dict = {}
        if loss_pct:
            opts["loss"] = loss_pct
        if delay_ms:
            opts["delay"] = delay_ms * 1000  # pyroute2 takes microseconds
        try:
            ipr.tc("replace", "netem", index=idx, handle=NETEM_HANDLE, **_netem_parent(ipr, idx), **opts)
        except NetlinkError as exc:
            if exc.code == ENOENT:
                raise NoNetem() from None
            raise


def clear_netem(name: str) -> None:
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            return
        for q in ipr.get_qdiscs(index=idx):
            if q.get_attr("TCA_KIND") == "netem":
                ipr.tc("del", "netem", index=idx, handle=q["handle"], parent=q["parent"])


def netem_of(name: str) -> dict:
    """{'loss_pct': .., 'delay_ms': ..} of the link's netem, read from the kernel (empty: none)."""
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            return {}
        for q in ipr.get_qdiscs(index=idx):
            if q.get_attr("TCA_KIND") == "netem":
                opts = q.get_attr("TCA_OPTIONS") or {}
                loss = opts.get("loss", 0) if hasattr(opts, "get") else 0
                delay = opts.get("delay", 0) if hasattr(opts, "get") else 0
                return {"loss_pct": round(loss * 100 / 0xFFFFFFFF, 2) if loss else None,
                        "delay_ms": round(delay / 1000) if delay else None}
    return {}


def link_up(name: str) -> bool | None:
    """Is the root-side end administratively up (None: no such link)."""
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            return None
        return bool(ipr.get_links(idx)[0]["flags"] & 1)  # IFF_UP


def fault_table() -> str:
    return f"{bridge_name()}_faults"


def set_nft_loss(name: str, loss_pct: float | None) -> None:
    """Drop loss_pct % of the packets the link carries towards the host (as netem on that
    veth would), in this lab network's own netdev table; None removes the rule."""
    table, chain = fault_table(), f"loss_{name.replace('-', '_')}"
    script = f"table netdev {table} {{}}\n"
    exists = subprocess.run(["nft", "list", "chain", "netdev", table, chain], capture_output=True).returncode == 0
    if exists:
        script += f"delete chain netdev {table} {chain}\n"
    if loss_pct:
        # numgen's modulus: 10000 steps give a loss setting to 0.01 %.
        steps = round(loss_pct * 100)
        rule = "counter drop" if steps >= 10000 else f"numgen random mod 10000 < {steps} counter drop"
        script += (f"table netdev {table} {{\n chain {chain} {{\n"
                   f"  type filter hook egress device \"{name}\" priority 0;\n  {rule}\n }}\n}}\n")
    proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise VpdError(f"nft could not set loss on {name}: {proc.stderr.strip()}")


def drop_fault_table() -> None:
    subprocess.run(["nft", "delete", "table", "netdev", fault_table()], capture_output=True)
