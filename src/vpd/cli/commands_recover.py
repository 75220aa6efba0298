"""`vpd recover`: settle what dead vpd operations left (see vpd.ops.recover)."""
from __future__ import annotations

import click

from ..ops import recover as rec
from .command import command, say
from .main import cli
from .render import table


def _render(result: dict) -> None:
    entries = result["entries"]
    if not entries:
        say("no interrupted operation to recover")
    rows = []
    for e in entries:
        state = "dry run" if result["dry_run"] else ("recovered" if e["recovered"] else "NOT settled")
        if not e["objects"]:
            rows.append([f"#{e['id']}", e["operation"], "-", "-", "nothing was planned", state])
        for o in e["objects"]:
            outcome = o["action"] + (" FAILED: " + o["error"] if o["error"] else "")
            rows.append([f"#{e['id']}", e["operation"], o["kind"], f"{o['name']} ({o['host'] or 'local'})",
                         f"{outcome}: {o['reason']}", state])
    if rows:
        table("recovery (dry run: nothing changed)" if result["dry_run"] else "recovery",
              ["journal", "operation", "kind", "object", "decision", "state"], rows)
    for e in entries:
        if e["pending"]:
            say(f"#{e['id']}: {e['pending']}", style="yellow")
    grants = result.get("grants")
    if grants:
        for g in grants.get("revoked", []):
            say(f"revoked expired grant {g['id']} ({g['src']} -> {g['dst']})")
        for g in grants.get("due", []):
            say(f"would revoke expired grant {g['id']} ({g['src']} -> {g['dst']})")
        for g in grants.get("failed", []):
            say(f"grant {g['id']} NOT revoked: {g['error']}", style="yellow")


@command(cli, "recover", render=_render)
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@click.option("--wait", "wait_s", default=rec.RECOVER_WAIT_S, show_default=True, type=click.FloatRange(0, 3600),
              help="Seconds to wait for libvirt to finish writing a volume that must be deleted.")
def recover_cmd(session, dry_run: bool, wait_s: float):
    """Settle what interrupted vpd operations left: orphan volumes, partial backups and their
    checkpoints, libvirt jobs running on without vpd, grants still open; expired grants too.

    Every mutating command runs this first for the hosts it touches; run it yourself after a
    crash, or when a command says an operation is not settled yet."""
    return rec.recover(session, dry_run=dry_run, wait_s=wait_s)
