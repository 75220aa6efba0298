"""`vpd template ...`: parse, call vpd.vm.template_operations, render."""
from __future__ import annotations

import click

from ..core.errors import UsageError
from ..vm import template_operations as template_ops
from .command import command, host_option, say
from .main import cli
from .render import table


@cli.group()
def template() -> None:
    """Templates: shut-off VMs kept as moulds for new VMs (`vpd vm create --template`)."""


def _render_change(r: dict) -> None:
    say(f"{r['action']}: {r.get('template') or r.get('vm')} on {r['host']}"
        + (" (autostart turned off)" if r.get("autostart_disabled") else ""))
    s = r.get("sealed")
    if s:
        say(f"  sealed {s['disk']} with {s['method']} in {s['seconds']} s ({s['how']})")
        say(f"  emptied: {', '.join(s['emptied']) or '-'}")
        shown = s["removed"][:12]
        say(f"  removed: {', '.join(shown) or '-'}"
            + (f" and {len(s['removed']) - len(shown)} more" if len(s["removed"]) > len(shown) else ""))
        if s["left_alone"]:
            say(f"  other disks left as they were: {', '.join(s['left_alone'])}")


@command(template, "create", render=_render_change)
@click.argument("name")
@host_option()
@click.option("--seal", is_flag=True,
              help="Generalise the guest first: machine-id emptied, SSH host keys, cloud-init state, logs, udev "
                   "net rules and random seed removed, so each instance gets its own at first boot.")
@click.option("--seal-with", type=click.Choice(["auto", "virt-sysprep", "mount"]), default=None,
              help="With --seal: virt-sysprep (libguestfs) or mount (qemu-storage-daemon's FUSE export, loop "
                   "mount); auto [default] takes virt-sysprep where it is installed.")
def template_create(session, name, host_ref, seal, seal_with):
    """Turn a shut-off VM into a template, which vpd never starts (--seal: generalise it first)."""
    if seal_with and not seal:
        raise UsageError("--seal-with goes with --seal")
    return template_ops.change(session, "create", name, host_ref, seal_with=(seal_with or "auto") if seal else None)


@command(template, "unseal", render=_render_change)
@click.argument("name")
@host_option()
def template_unseal(session, name, host_ref):
    """Turn a template back into a VM (to change it, then `template create` again)."""
    return template_ops.change(session, "unseal", name, host_ref)


def _render_list(r: dict) -> None:
    table("templates", ["host", "name", "disks", "linked clones"],
          [[t["host"], t["name"], ", ".join(t["disks"]) or "-", len(t["linked_clones"])] for t in r["templates"]])
    for host, error in r["errors"].items():
        say(f"{host}: {error}", "red")


@command(template, "list", render=_render_list, bars=False, readonly=True)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
def template_list(session, names):
    """Templates on all hosts, with their disks and the linked clones based on them."""
    return template_ops.list_(session, names)
