"""`vpd cluster ...` and `vpd ha ...`: Pacemaker + Corosync clusters and highly
available VMs (Práctica 7). Parse, call vpd.cluster.operations, render."""
from __future__ import annotations

import click
from rich.text import Text

from ..cluster import fencing
from ..cluster import operations as cluster_ops
from ..core.errors import UsageError
from .command import command, say
from .main import cli
from .render import console, err_console, table


def _host_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise UsageError(f"invalid --hosts {text!r}", hint="comma-separated host names: hosta,hostb")
    return names


@cli.group()
def cluster() -> None:
    """Pacemaker + Corosync clusters on the inventory's hosts (through pcs)."""


def _render_created(report: dict) -> None:
    say(f"cluster {report['name']} created on {', '.join(report['hosts'])} in {report['seconds']:.1f} s")
    _print_status(report["status"])


@command(cluster, "create", render=_render_created)
@click.argument("name")
@click.option("--hosts", "hosts_text", required=True, help="Members, comma-separated: H1,H2[,H3].")
@click.option("--fence", "fence_agent", help="Fence agent (fence_ipmilan, fence_virsh, ...; fence_vpdlab on the lab).")
@click.argument("fence_params", nargs=-1)
@click.option("--no-fencing", is_flag=True, help="No fence device (throw-away tests only: see the warning).")
def cluster_create(session, name, hosts_text, fence_agent, fence_params, no_fencing):
    """Build a cluster: packages, ports to members only, pcsd auth with a random
    hacluster password, pcs cluster setup (knet, crypto), fencing, stickiness.
    Fence parameters follow as key=value arguments."""
    hosts = _host_list(hosts_text)
    if no_fencing and not fence_agent and not fence_params:
        err_console.print(Text.assemble(("warning:", "bold yellow"), " ", fencing.NO_FENCING_WARNING),
                          highlight=False)
    return cluster_ops.create(session, name, hosts, fence_agent, fence_params, no_fencing)


@command(cluster, "status", render=lambda s: _print_status(s), bars=False, readonly=True)
@click.argument("name", required=False)
def cluster_status(session, name):
    """Members (online/standby/unclean), quorum, DC, resources, failed actions, fencing history."""
    return cluster_ops.status(session, name)


def _print_status(s: dict) -> None:
    console_line = Text.assemble(f"cluster {s['name']}: ",
                                 ("quorate", "") if s["quorate"] else ("NOT quorate", "red"),
                                 f", DC {s['dc']} (asked {s['asked']})")
    console.print(console_line, highlight=False, soft_wrap=True)
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


def _render_destroyed(out: dict) -> None:
    say(f"cluster {out['cluster']} destroyed; VMs given back: {', '.join(out['vms_given_back']) or 'none'}")
    for p in out["problems"]:
        err_console.print(Text.assemble(("warning:", "yellow"), " ", p), highlight=False)


@command(cluster, "destroy", render=_render_destroyed)
@click.argument("name")
def cluster_destroy(session, name):
    """Disable every resource, give VMs back to libvirt (stopped), tear the cluster
    down and put the hosts back as create found them."""
    return cluster_ops.destroy(session, name)


def _standby_command(name: str, on: bool, doc: str) -> None:
    def run(session, host):
        return cluster_ops.standby(session, host, on)

    run.__doc__ = doc
    run.__name__ = f"cluster_{name}"
    command(cluster, name, render=lambda out: say(
        f"{out['host']}: {'standby (drained)' if on else 'back in service'}; resources: {out['resources']}"))(
        click.argument("host")(run))


_standby_command("standby", True, "Drain a member for maintenance: its VMs live-migrate to the others.")
_standby_command("unstandby", False, "Let a drained member run resources again (stickiness keeps VMs where they are).")


@command(cluster, "start", render=lambda out: say(f"{out['host']} is online in cluster {out['cluster']}"))
@click.argument("host")
def cluster_start(session, host):
    """Start the cluster services on a member that was fenced or powered off."""
    return cluster_ops.start_member(session, host)


@cli.group("ha")
def ha_group() -> None:
    """Highly available VMs: Pacemaker VirtualDomain resources."""


def _ha_render(what: str):
    return lambda out: say(f"{out['vm']}: {what} (cluster {out['cluster']}), running on "
                           f"{', '.join(out['running_on']) or '-'} after {out['seconds']:.1f} s")


@command(ha_group, "enable", render=_ha_render("highly available"))
@click.argument("vm")
@click.option("--cluster", "cluster_name", required=True)
def ha_enable(session, vm, cluster_name):
    """Make a VM highly available: its disks proven shared, memory checked on every
    member, its definition moved to the shared storage and handed to pacemaker."""
    return cluster_ops.ha_enable(session, vm, cluster_name)


@command(ha_group, "disable", render=_ha_render("no longer highly available"))
@click.argument("vm")
def ha_disable(session, vm):
    """Give the VM back to plain libvirt on the host where it runs (it keeps running)."""
    return cluster_ops.ha_disable(session, vm)


@command(ha_group, "move", render=lambda out: _ha_render(f"moved to {out.get('to', '')}")(out))
@click.argument("vm")
@click.option("--to", "target", required=True, help="Member to live-migrate it to.")
def ha_move(session, vm, target):
    """Live-migrate a highly available VM through pacemaker."""
    return {**cluster_ops.ha_move(session, vm, target), "to": target}
