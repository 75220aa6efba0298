from __future__ import annotations

import click

from ..core import journal
from ..vm.inventory import find_domain
from ..vm.template import list_templates, seal, unseal
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, table


@cli.group()
def template() -> None:
    """Templates: shut-off VMs kept as moulds for new VMs (`vpd vm create --template`)."""


def _change(action: str, fn, doc: str) -> None:
    @click.argument("name")
    @click.option("--host", "host_name", required=True)
    @json_option
    @click.pass_context
    @handle_errors
    def command(ctx, name, host_name, as_json):
        host = context.inventory(ctx).get(host_name)
        conns = context.connections(ctx)
        with journal.record(f"template.{action}", target=f"{host.name}/{name}") as entry:
            result = conns.call(host, lambda c: fn(find_domain(c, host, name)))
            entry.result = result
        if as_json:
            emit_json({"host": host.name, "action": action, **result})
        else:
            console.print(f"{action}: {name} on {host.name}"
                          + (" (autostart turned off)" if result.get("autostart_disabled") else ""), highlight=False)

    command.__doc__ = doc
    template.command(action)(command)


_change("create", seal, "Turn a shut-off VM into a template, which vpd never starts.")
_change("unseal", unseal, "Turn a template back into a VM (to change it, then `template create` again).")


@template.command("list")
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
@json_option
@click.pass_context
@handle_errors
def template_list(ctx, names, as_json) -> None:
    """Templates on all hosts, with their disks and the linked clones based on them."""
    inv = context.inventory(ctx)
    found, errors = list_templates(context.connections(ctx), inv.select(list(names)))
    if as_json:
        emit_json({"templates": [t.to_dict() for t in found], "errors": errors})
        return
    table("templates", ["host", "name", "disks", "linked clones"],
          [[t.host, t.name, ", ".join(t.disks) or "-", len(t.linked_clones)] for t in found])
    for host, error in errors.items():
        console.print(f"[red]{host}[/]: {error}", highlight=False)
