"""What every command needs: the inventory in force and a connection pool."""
from __future__ import annotations

import click

from ..connect import inventory as inv
from ..connect.libvirt_conn import Connections


def inventory(ctx: click.Context) -> inv.Inventory:
    return inv.resolve(ctx.find_root().obj.get("inventory"))


def connections(ctx: click.Context) -> Connections:
    """One pool per command run, closed when the command ends."""
    root = ctx.find_root()
    if "conns" not in root.obj:
        root.obj["conns"] = Connections()
        root.call_on_close(root.obj["conns"].close)
    return root.obj["conns"]
