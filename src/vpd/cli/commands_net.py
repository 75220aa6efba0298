"""`vpd net ...`: libvirt virtual networks on the inventory's hosts (Práctica 5)."""
from __future__ import annotations

import datetime

import click

from ..core import journal
from ..core.errors import NotFound, VpdError
from ..network import networks
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, table


@cli.group()
def net() -> None:
    """Virtual networks: nat, isolated, routed, open, or a host bridge."""


def _host_and_conns(ctx, host_name):
    host = context.inventory(ctx).get(host_name)
    return host, context.connections(ctx)


@net.command("create")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@click.option("--mode", type=click.Choice(networks.MODES), required=True,
              help="nat: guests reach out through the host's address; isolated: guests and host only; "
                   "routed: reachable from the LAN through a route to the host; open: routed, no firewall "
                   "rules; bridge: guests join an existing host bridge.")
@click.option("--subnet", metavar="CIDR", help="e.g. 198.19.40.0/24 (the host takes .1) or 198.19.40.254/24.")
@click.option("--dhcp", metavar="START-END", help="DHCP range inside the subnet (none without it).")
@click.option("--bridge", help="Bridge name (libvirt picks virbrN when absent; the host bridge in bridge mode).")
@click.option("--forward-dev", help="nat/routed: the host interface traffic must leave through.")
@click.option("--no-start", is_flag=True, help="Only define it.")
@click.option("--autostart", is_flag=True, help="Start it whenever the host's libvirt starts.")
@json_option
@click.pass_context
@handle_errors
def net_create(ctx, name, host_name, mode, subnet, dhcp, bridge, forward_dev, no_start, autostart, as_json) -> None:
    """Define and start a network, after checking its subnet against the host's addresses, routes
    and other networks. The same network again is a no-op; other settings are refused."""
    spec = networks.NetworkSpec(name, mode, subnet, dhcp, bridge, forward_dev)
    host, conns = _host_and_conns(ctx, host_name)
    with journal.record("net.create", target=f"{host.name}/{name}", **spec.settings(), start=not no_start,
                        autostart=autostart) as entry:
        result = conns.call(host, lambda c: networks.create(c, host, spec, start=not no_start, autostart=autostart))
        entry.result = result
    if as_json:
        emit_json(result)
        return
    what = "created" if result["created"] else ("already there; " + ", ".join(result["notes"]) if result["changed"]
                                                 else "already there with these settings: nothing to do")
    console.print(f"network {name} on {host.name}: {what} ({_summary(result)})", highlight=False)
    if result["created"] and mode == "routed":
        console.print(f"  other hosts reach it with: ip route add {spec.gateway.network} via "
                      f"{host.address or host.hostname}", highlight=False)


def _summary(n: dict) -> str:
    parts = [n["mode"], "active" if n["active"] else "inactive"]
    if n.get("subnet"):
        parts.append(n["subnet"])
    if n.get("dhcp"):
        parts.append(f"DHCP {n['dhcp']}")
    if n.get("bridge"):
        parts.append(f"bridge {n['bridge']}")
    return ", ".join(parts)


def _simple(action, fn, doc, extra=()):
    @click.argument("name")
    @click.option("--host", "host_name", required=True)
    @json_option
    @click.pass_context
    @handle_errors
    def command(ctx, name, host_name, as_json, **kwargs):
        host, conns = _host_and_conns(ctx, host_name)
        with journal.record(f"net.{action}", target=f"{host.name}/{name}", **kwargs) as entry:
            result = conns.call(host, lambda c: fn(c, host, name, **kwargs))
            entry.result = result
        if as_json:
            emit_json({"action": action, **result})
        else:
            state = "done" if result.get("changed", True) else "nothing to do"
            console.print(f"net {action} {name} on {host.name}: {state} ({_summary(result)})", highlight=False)

    command.__doc__ = doc
    for opt in extra:
        command = opt(command)
    net.command(action)(command)


_force = click.option("--force", is_flag=True, help="Even if running VMs use it (they lose their link).")
_simple("start", networks.start, "Start a defined network.")
_simple("stop", networks.stop, "Stop a network (refused while running VMs use it, unless --force).", [_force])
_simple("autostart", networks.set_autostart, "Start the network with the host's libvirt (--disable: do not).",
        [click.option("--disable", is_flag=True)])
_simple("delete", networks.delete, "Stop and undefine a network (refused while running VMs use it, unless --force).",
        [_force])


@net.command("list")
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
@json_option
@click.pass_context
@handle_errors
def net_list(ctx, names, as_json) -> None:
    """Every network of every host: mode, state, subnet, DHCP range, bridge."""
    inv = context.inventory(ctx)
    per_host = networks.list_networks(context.connections(ctx), inv.select(list(names)))
    if as_json:
        emit_json({"hosts": [{"host": h.host, "error": h.error, "networks": [n.to_dict() for n in h.networks]}
                             for h in per_host]})
        return
    table("networks", ["host", "name", "mode", "state", "autostart", "subnet", "DHCP", "bridge"],
          [[n.host, n.name, n.mode, "active" if n.active else "inactive", "yes" if n.autostart else "no", n.subnet,
            n.dhcp, n.bridge] for h in per_host for n in h.networks])
    for h in per_host:
        if h.error:
            console.print(f"[red]{h.host}[/]: {h.error}", highlight=False)


@net.command("leases")
@click.argument("name")
@click.option("--host", "host_name", help="The network's host (default: every host that has one of that name).")
@json_option
@click.pass_context
@handle_errors
def net_leases(ctx, name, host_name, as_json) -> None:
    """DHCP leases the network's dnsmasq handed out (the net-dhcp-leases equivalent)."""
    inv = context.inventory(ctx)
    conns = context.connections(ctx)
    hosts = [inv.get(host_name)] if host_name else inv.hosts
    found, rows = [], []
    for host in hosts:
        try:
            rows += conns.call(host, lambda c: networks.leases(c, host, name))
            found.append(host.name)
        except NotFound:
            continue
        except VpdError:
            if host_name:
                raise
    if not found:
        raise NotFound(f"no network named {name!r} on {host_name or 'any host'}", hint="`vpd net list` lists them")
    if as_json:
        emit_json({"network": name, "hosts": found, "leases": rows})
        return
    table(f"leases of {name}", ["host", "MAC", "IP", "hostname", "expires"],
          [[r["host"], r["mac"], f"{r['ip']}/{r['prefix']}", r["hostname"],
            datetime.datetime.fromtimestamp(r["expires"]).strftime("%F %T") if r["expires"] else None] for r in rows])
