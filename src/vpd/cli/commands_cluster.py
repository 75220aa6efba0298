"""`vpd cluster ...` and `vpd ha ...`: Pacemaker + Corosync clusters and highly
available VMs (Práctica 7). A thin layer over vpd.cluster."""
from __future__ import annotations

import click

from ..cluster import create as cl
from ..cluster import fencing, ha, members, pcs, store
from ..core import journal
from ..core.errors import UsageError
from . import context
from .main import cli, handle_errors, json_option
from rich.table import Table
from rich.text import Text

from .render import console, emit_json, err_console, progress


def table(title, columns, rows) -> None:
    """Cells as plain text: agent names like ocf:heartbeat:VirtualDomain are not emoji codes."""
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*(Text("-" if v is None else str(v)) for v in row))
    console.print(t)


def _host_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise UsageError(f"invalid --hosts {text!r}", hint="comma-separated host names: hosta,hostb")
    return names


@cli.group()
def cluster() -> None:
    """Pacemaker + Corosync clusters on the inventory's hosts (through pcs)."""


@cluster.command("create")
@click.argument("name")
@click.option("--hosts", "hosts_text", required=True, help="Members, comma-separated: H1,H2[,H3].")
@click.option("--fence", "fence_agent", help="Fence agent (fence_ipmilan, fence_virsh, ...; fence_vpdlab on the lab).")
@click.argument("fence_params", nargs=-1)
@click.option("--no-fencing", is_flag=True, help="No fence device (throw-away tests only: see the warning).")
@json_option
@click.pass_context
@handle_errors
def cluster_create(ctx, name, hosts_text, fence_agent, fence_params, no_fencing, as_json) -> None:
    """Build a cluster: packages, ports to members only, pcsd auth with a random
    hacluster password, pcs cluster setup (knet, crypto), fencing, stickiness.
    Fence parameters follow as key=value arguments."""
    spec = fencing.parse(fence_agent, fence_params, no_fencing)
    hosts = _host_list(hosts_text)
    inv = context.inventory(ctx)
    if spec is None:
        err_console.print(f"[bold yellow]warning:[/] {fencing.NO_FENCING_WARNING}", highlight=False)
    # Parameter values may be BMC passwords: the journal gets their names only.
    with journal.record("cluster.create", target=name, hosts=hosts,
                        fencing=spec.to_dict() if spec else None) as entry, progress(not as_json):
        report = cl.create(inv, name, hosts, spec)
        entry.result = {"hosts": report.hosts, "seconds": report.seconds}
    if as_json:
        emit_json(report.to_dict())
        return
    console.print(f"cluster {name} created on {', '.join(report.hosts)} in {report.seconds:.1f} s")
    _print_status(report.status)


@cluster.command("status")
@click.argument("name", required=False)
@json_option
@click.pass_context
@handle_errors
def cluster_status(ctx, name, as_json) -> None:
    """Members (online/standby/unclean), quorum, DC, resources, failed actions, fencing history."""
    rec = store.only_or_named(name)
    s = pcs.query(rec, context.inventory(ctx)).to_dict()
    s["hosts"] = rec.hosts
    s["fencing_device"] = rec.fencing
    if as_json:
        emit_json(s)
    else:
        _print_status(s)


def _print_status(s: dict) -> None:
    console.print(f"cluster {s['name']}: {'quorate' if s['quorate'] else '[red]NOT quorate[/]'}, DC {s['dc']}"
                  f" (asked {s['asked']})")
    table("members", ["host", "state", "DC"], [[m["name"], m["state"], "yes" if m["dc"] else ""] for m in s["members"]])
    table("resources", ["id", "agent", "role", "running on", "failed"],
          [[r["id"], r["agent"], r["role"] + (" (disabled)" if r["disabled"] else ""), ", ".join(r["running_on"]),
            "yes" if r["failed"] else ""] for r in s["resources"]])
    if s["failed_actions"]:
        table("failed actions", ["operation", "node", "status", "reason", "when"],
              [[f["operation"], f["node"], f["status"], f["reason"], f["when"]] for f in s["failed_actions"]])
    if s["fencing"]:
        table("fencing history", ["target", "action", "status", "by", "completed"],
              [[f["target"], f["action"], f["status"], f["by"], f["completed"]] for f in s["fencing"]])


@cluster.command("destroy")
@click.argument("name")
@json_option
@click.pass_context
@handle_errors
def cluster_destroy(ctx, name, as_json) -> None:
    """Disable every resource, give VMs back to libvirt (stopped), tear the cluster
    down and put the hosts back as create found them."""
    store.load(name)  # unknown name: exit 2 before anything
    with journal.record("cluster.destroy", target=name) as entry:
        out = members.destroy(context.inventory(ctx), name)
        entry.result = out
    if as_json:
        emit_json(out)
    else:
        console.print(f"cluster {name} destroyed; VMs given back: {', '.join(out['vms_given_back']) or 'none'}")
        for p in out["problems"]:
            err_console.print(f"[yellow]warning:[/] {p}", highlight=False)


def _standby(ctx, host: str, on: bool, as_json: bool) -> None:
    with journal.record("cluster.standby" if on else "cluster.unstandby", target=host) as entry:
        out = members.standby(context.inventory(ctx), host, on)
        entry.result = out
    if as_json:
        emit_json(out)
    else:
        console.print(f"{host}: {'standby (drained)' if on else 'back in service'}; resources: {out['resources']}")


@cluster.command("standby")
@click.argument("host")
@json_option
@click.pass_context
@handle_errors
def cluster_standby(ctx, host, as_json) -> None:
    """Drain a member for maintenance: its VMs live-migrate to the others."""
    _standby(ctx, host, True, as_json)


@cluster.command("unstandby")
@click.argument("host")
@json_option
@click.pass_context
@handle_errors
def cluster_unstandby(ctx, host, as_json) -> None:
    """Let a drained member run resources again (stickiness keeps VMs where they are)."""
    _standby(ctx, host, False, as_json)


@cluster.command("start")
@click.argument("host")
@json_option
@click.pass_context
@handle_errors
def cluster_start(ctx, host, as_json) -> None:
    """Start the cluster services on a member that was fenced or powered off."""
    with journal.record("cluster.start", target=host) as entry:
        out = members.start_member(context.inventory(ctx), host)
        entry.result = out
    if as_json:
        emit_json(out)
    else:
        console.print(f"{host} is online in cluster {out['cluster']}")


@cli.group("ha")
def ha_group() -> None:
    """Highly available VMs: Pacemaker VirtualDomain resources."""


def _print_ha(what: str, out: dict) -> None:
    console.print(f"{out['vm']}: {what} (cluster {out['cluster']}), running on {', '.join(out['running_on']) or '-'}"
                  f" after {out['seconds']:.1f} s")


@ha_group.command("enable")
@click.argument("vm")
@click.option("--cluster", "cluster_name", required=True)
@json_option
@click.pass_context
@handle_errors
def ha_enable(ctx, vm, cluster_name, as_json) -> None:
    """Make a VM highly available: its disks proven shared, memory checked on every
    member, its definition moved to the shared storage and handed to pacemaker."""
    with journal.record("ha.enable", target=vm, cluster=cluster_name) as entry:
        out = ha.enable(context.inventory(ctx), context.connections(ctx), vm, cluster_name).to_dict()
        entry.result = out
    if as_json:
        emit_json(out)
    else:
        _print_ha("highly available", out)


@ha_group.command("disable")
@click.argument("vm")
@json_option
@click.pass_context
@handle_errors
def ha_disable(ctx, vm, as_json) -> None:
    """Give the VM back to plain libvirt on the host where it runs (it keeps running)."""
    with journal.record("ha.disable", target=vm) as entry:
        out = ha.disable(context.inventory(ctx), context.connections(ctx), vm).to_dict()
        entry.result = out
    if as_json:
        emit_json(out)
    else:
        _print_ha("no longer highly available", out)


@ha_group.command("move")
@click.argument("vm")
@click.option("--to", "target", required=True, help="Member to live-migrate it to.")
@json_option
@click.pass_context
@handle_errors
def ha_move(ctx, vm, target, as_json) -> None:
    """Live-migrate a highly available VM through pacemaker."""
    with journal.record("ha.move", target=vm, to=target) as entry:
        out = ha.move(context.inventory(ctx), vm, target).to_dict()
        entry.result = out
    if as_json:
        emit_json(out)
    else:
        _print_ha(f"moved to {target}", out)
