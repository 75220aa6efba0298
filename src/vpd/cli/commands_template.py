"""`vpd template ...`: parse, call vpd.vm.template_operations, render."""
from __future__ import annotations

import click

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


def _change(action: str, doc: str) -> None:
    def run(session, name, host_ref):
        return template_ops.change(session, action, name, host_ref)

    run.__doc__ = doc
    run.__name__ = f"template_{action}"
    command(template, action, render=_render_change)(host_option()(click.argument("name")(run)))


_change("create", "Turn a shut-off VM into a template, which vpd never starts.")
_change("unseal", "Turn a template back into a VM (to change it, then `template create` again).")


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
