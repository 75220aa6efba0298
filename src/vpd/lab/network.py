"""The lab's wire: one bridge in the root namespace, a veth per host, tc shaping.
All through netlink (pyroute2), nothing parsed from `ip` output."""
from __future__ import annotations

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .layout import LabHost, bridge_address, bridge_name, subnet, veth_prefix


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
