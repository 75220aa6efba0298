"""Network operations as front ends run them (CLI, web API, scripts): libvirt virtual networks
and host bridges. Each resolves its host (inventory name, FQDN or address), runs a change inside
an Operation (journal entry, lock on the object, undo) and returns a plain result. The work
itself lives in networks and bridge."""
from __future__ import annotations

from functools import partial
from typing import Any

from ..core.errors import NotFound, VpdError
from ..core.names import check_name
from ..ops import Operation, Session
from ..ops.locks import object_key
from ..xml.checks import require_ifname
from . import bond as bonds
from . import bridge as bridges
from . import networks

# --- virtual networks --------------------------------------------------------------------


def _net_key(host: str, name: str) -> str:
    return object_key("network", host, name)


def net_create(session: Session, name: str, host_ref: str, mode: str, *, subnet: str | None = None,
               dhcp: str | None = None, bridge: str | None = None, forward_dev: str | None = None,
               start: bool = True, autostart: bool = False) -> dict:
    """Define and start a network, after checking its subnet against the host's addresses, routes
    and other networks. The same network again is a no-op; other settings are refused. A routed
    network's result says how other hosts reach it (`route_hint`)."""
    spec = networks.NetworkSpec(name, mode, subnet, dhcp, bridge, forward_dev)
    host = session.host(host_ref)
    with Operation(session, "net.create", target=f"{host.name}/{name}", locks=[_net_key(host.name, name)],
                   **spec.settings(), start=start, autostart=autostart) as op:
        result = session.call(host, lambda c: networks.create(
            c, host, spec, start=start, autostart=autostart, undo=op.undo,
            plan=lambda: op.plan("network", name, host.name, mode=mode)))
        if result["created"] and mode == "routed" and spec.gateway is not None:
            result["route_hint"] = f"ip route add {spec.gateway.network} via {host.address or host.hostname}"
        op.result = result
    return op.result


_ACTIONS = {"start": networks.start, "stop": networks.stop, "autostart": networks.set_autostart,
            "delete": networks.delete}


def net_act(session: Session, action: str, name: str, host_ref: str, **options: Any) -> dict:
    """start; stop (force=); autostart (disable=); delete (force=). Stop and delete are refused
    while running VMs use the network, unless forced."""
    fn = _ACTIONS[action]
    check_name(name, "network name")
    host = session.host(host_ref)
    with Operation(session, f"net.{action}", target=f"{host.name}/{name}", locks=[_net_key(host.name, name)],
                   **options) as op:
        op.result = session.call(host, lambda c: fn(c, host, name, **options))
    return op.result


def net_list(session: Session, host_refs: list[str] | tuple[str, ...] | None = None) -> dict:
    per_host = networks.list_networks(session.conns, session.hosts(host_refs))
    return {"hosts": [{"host": h.host, "error": h.error, "networks": [n.to_dict() for n in h.networks]}
                      for h in per_host]}


def net_leases(session: Session, name: str, host_ref: str | None = None) -> dict:
    """DHCP leases of network `name` on `host_ref`, or on every host that has one of that name
    (hosts that do not answer are skipped then)."""
    hosts = [session.host(host_ref)] if host_ref else session.hosts()
    found, rows = [], []
    for host in hosts:
        try:
            rows += session.call(host, partial(networks.leases, host=host, name=name))
            found.append(host.name)
        except NotFound:
            continue
        except VpdError:
            if host_ref:
                raise
    if not found:
        raise NotFound(f"no network named {name!r} on {host_ref or 'any host'}", hint="`vpd net list` lists them")
    return {"network": name, "hosts": found, "leases": rows}


# --- host bridges ------------------------------------------------------------------------


def _bridge_key(host: str, name: str) -> str:
    return object_key("bridge", host, name)


def bridge_create(session: Session, name: str, iface: str, host_ref: str, *, force_management: bool = False,
                  confirm_s: float = bridges.DEFAULT_CONFIRM_S) -> dict:
    """Make bridge `name` with `iface` as its port, moving its addresses and routes to it
    (commit-confirmed: the host undoes it by itself unless vpd reaches it again)."""
    require_ifname(name, "bridge name")
    require_ifname(iface, "interface")
    host = session.host(host_ref)
    with Operation(session, "host.bridge.create", target=f"{host.name}/{name}", locks=[_bridge_key(host.name, name)],
                   iface=iface, force_management=force_management) as op:
        op.result = bridges.create(host, name, iface, force_management=force_management, confirm_s=confirm_s,
                                   plan=lambda: op.plan("bridge", name, host.name, iface=iface))
    return op.result


def bridge_delete(session: Session, name: str, host_ref: str, *, force_management: bool = False,
                  confirm_s: float = bridges.DEFAULT_CONFIRM_S) -> dict:
    """Remove bridge `name`, giving its addresses and routes back to its port."""
    require_ifname(name, "bridge name")
    host = session.host(host_ref)
    with Operation(session, "host.bridge.delete", target=f"{host.name}/{name}", locks=[_bridge_key(host.name, name)],
                   force_management=force_management) as op:
        op.result = bridges.delete(host, name, force_management=force_management, confirm_s=confirm_s)
    return op.result


# --- host bonds --------------------------------------------------------------------------


def _bond_key(host: str, name: str) -> str:
    return object_key("bond", host, name)


def bond_create(session: Session, name: str, host_ref: str, *, mode: str, ports: list[str] | str,
                miimon: int = 100, primary: str | None = None, xmit_hash_policy: str | None = None,
                lacp_rate: str | None = None, force: bool = False,
                confirm_s: float = bridges.DEFAULT_CONFIRM_S) -> dict:
    """Make bond `name` of `ports` in `mode` (options checked per mode first; commit-confirmed).
    The same bond with the same ports again is a no-op."""
    spec = bonds.validate(name, mode, ports, miimon=miimon, primary=primary, xmit_hash_policy=xmit_hash_policy,
                          lacp_rate=lacp_rate)
    host = session.host(host_ref)
    with Operation(session, "host.bond.create", target=f"{host.name}/{name}", locks=[_bond_key(host.name, name)],
                   options=spec.options(), ports=list(spec.ports), force=force) as op:
        op.result = bonds.create(host, spec, force_management=force, confirm_s=confirm_s)
    return op.result


def bond_delete(session: Session, name: str, host_ref: str, *, force: bool = False,
                confirm_s: float = bridges.DEFAULT_CONFIRM_S) -> dict:
    require_ifname(name, "bond name")
    host = session.host(host_ref)
    with Operation(session, "host.bond.delete", target=f"{host.name}/{name}", locks=[_bond_key(host.name, name)],
                   force=force) as op:
        op.result = bonds.delete(host, name, force_management=force, confirm_s=confirm_s)
    return op.result


def bond_status(session: Session, name: str, host_ref: str) -> dict:
    require_ifname(name, "bond name")
    return bonds.status(session.host(host_ref), name)
