"""`vpd net ...`: libvirt virtual networks on the inventory's hosts (Práctica 5). Parse, call
vpd.network.operations, render. No libvirt calls, no domain rules here."""
from __future__ import annotations

import datetime

import click

from ..network import networks
from ..network import operations as net_ops
from .command import command, say
from .main import cli
from .render import table


@cli.group()
def net() -> None:
    """Virtual networks: nat, isolated, routed, open, or a host bridge."""


def _summary(n: dict) -> str:
    parts = [n["mode"], "active" if n["active"] else "inactive"]
    if n.get("subnet"):
        parts.append(n["subnet"])
    if n.get("dhcp"):
        parts.append(f"DHCP {n['dhcp']}")
    if n.get("bridge"):
        parts.append(f"bridge {n['bridge']}")
    return ", ".join(parts)


def _render_created(r: dict) -> None:
    what = "created" if r["created"] else ("already there; " + ", ".join(r["notes"]) if r["changed"]
                                           else "already there with these settings: nothing to do")
    say(f"network {r['name']} on {r['host']}: {what} ({_summary(r)})")
    if r.get("route_hint"):
        say(f"  other hosts reach it with: {r['route_hint']}")


@command(net, "create", render=_render_created)
@click.argument("name")
@click.option("--host", "host_ref", required=True)
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
def net_create(session, name, host_ref, mode, subnet, dhcp, bridge, forward_dev, no_start, autostart):
    """Define and start a network, after checking its subnet against the host's addresses, routes
    and other networks. The same network again is a no-op; other settings are refused."""
    return net_ops.net_create(session, name, host_ref, mode, subnet=subnet, dhcp=dhcp, bridge=bridge,
                              forward_dev=forward_dev, start=not no_start, autostart=autostart)


def _render_action(r: dict) -> None:
    state = "done" if r.get("changed", True) else "nothing to do"
    say(f"net {r['action']} {r['name']} on {r['host']}: {state} ({_summary(r)})")


def _action(action: str, doc: str, extra=()):
    def run(session, name, host_ref, **options):
        return {"action": action, **net_ops.net_act(session, action, name, host_ref, **options)}

    run.__doc__ = doc
    run.__name__ = f"net_{action}"
    for opt in extra:
        run = opt(run)
    run = click.option("--host", "host_ref", required=True)(click.argument("name")(run))
    command(net, action, render=_render_action)(run)


_force = click.option("--force", is_flag=True, help="Even if running VMs use it (they lose their link).")
_action("start", "Start a defined network.")
_action("stop", "Stop a network (refused while running VMs use it, unless --force).", [_force])
_action("autostart", "Start the network with the host's libvirt (--disable: do not).",
        [click.option("--disable", is_flag=True)])
_action("delete", "Stop and undefine a network (refused while running VMs use it, unless --force).", [_force])


def _render_list(r: dict) -> None:
    table("networks", ["host", "name", "mode", "state", "autostart", "subnet", "DHCP", "bridge"],
          [[n["host"], n["name"], n["mode"], "active" if n["active"] else "inactive",
            "yes" if n["autostart"] else "no", n["subnet"], n["dhcp"], n["bridge"]]
           for h in r["hosts"] for n in h["networks"]])
    for h in r["hosts"]:
        if h["error"]:
            say(f"{h['host']}: {h['error']}", "red")


@command(net, "list", render=_render_list, bars=False, readonly=True)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
def net_list(session, names):
    """Every network of every host: mode, state, subnet, DHCP range, bridge."""
    return net_ops.net_list(session, names)


def _render_leases(r: dict) -> None:
    table(f"leases of {r['network']}", ["host", "MAC", "IP", "hostname", "expires"],
          [[x["host"], x["mac"], f"{x['ip']}/{x['prefix']}", x["hostname"],
            datetime.datetime.fromtimestamp(x["expires"]).strftime("%F %T") if x["expires"] else None]
           for x in r["leases"]])


@command(net, "leases", render=_render_leases, bars=False, readonly=True)
@click.argument("name")
@click.option("--host", "host_ref", help="The network's host (default: every host that has one of that name).")
def net_leases(session, name, host_ref):
    """DHCP leases the network's dnsmasq handed out (the net-dhcp-leases equivalent)."""
    return net_ops.net_leases(session, name, host_ref)


def _render_perf(r: dict) -> None:
    say(f"{r['src']} -> {r['dst']} ({r['dst_address']}), {r['streams']} stream(s), {r['seconds']:.1f} s: "
        f"{r['gbit_s']:.2f} Gbit/s received ({r['sent_gbit_s']:.2f} sent), "
        f"retransmits {r['retransmits'] if r['retransmits'] is not None else '-'}, CPU client "
        f"{_pct(r['cpu_client_pct'])} / server {_pct(r['cpu_server_pct'])}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} %"


@command(net, "perf", render=_render_perf, readonly=True)
@click.argument("src")
@click.argument("dst")
@click.option("--parallel", "-P", default=1, show_default=True, type=int, help="Parallel TCP streams (iperf3 -P).")
@click.option("--time", "-t", "seconds", default=10.0, show_default=True, type=float, help="Seconds (iperf3 -t).")
@click.option("--address", help="DST's address as SRC reaches it (default: DST's address on a subnet SRC is on, "
                                "else its inventory address).")
@click.option("--port", default=5201, show_default=True, type=int, help="The server's TCP port (DST's firewall "
                                                                      "must admit it).")
def net_perf(session, src, dst, parallel, seconds, address, port):
    """TCP throughput from SRC to DST with iperf3 (the server on DST for this one test, always
    stopped after): Gbit/s, retransmits, CPU of both ends. SRC and DST are inventory hosts or
    running lab guests made with `vm create --lab-guest --iperf3`."""
    from ..vm import perf

    return perf.perf(session, src, dst, parallel, seconds, address, port)
