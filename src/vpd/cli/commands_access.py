"""`vpd access ...`: parse, call vpd.access.operations, render."""
from __future__ import annotations

from datetime import datetime

import click

from ..access import operations as access_ops
from ..access.ttl import format_ttl, parse_ttl
from ..core.errors import UsageError
from .command import command, say
from .main import cli
from .render import err_console, table


@cli.group("access")
def access_group() -> None:
    """Temporary SSH access from one host to another (for migrations)."""


def _local(iso: str, fmt: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime(fmt)


def _render_grant(g: dict) -> None:
    ttl = int((datetime.fromisoformat(g["expires"]) - datetime.fromisoformat(g["created"])).total_seconds())
    say(f"granted {g['id']}: {g['src']} -> {g['dst']} for {format_ttl(ttl)}, "
        f"until {_local(g['expires'], '%F %T %Z')}")
    say(f"  key on {g['src']}: {g['src_key_path']}")
    say(f"  {g['expiry_note']}")
    if g["expiry_time"] is None:
        err_console.print(f"warning: {g['dst']} will not expire the key by itself: run `vpd access revoke "
                          f"{g['id']}` (or `--expired`) when done", style="yellow", highlight=False, markup=False)


@command(access_group, "grant", render=_render_grant, bars=False)
@click.argument("src")
@click.argument("dst")
@click.option("--ttl", default="15m", show_default=True, help="How long the grant lives: 90s, 15m, 2h, 1h30m.")
def access_grant(session, src: str, dst: str, ttl: str):
    """Let root on SRC log in to root on DST with a key of its own, from SRC's address only."""
    return access_ops.grant(session, src, dst, parse_ttl(ttl))


def _render_list(r: dict) -> None:
    table("access grants", ["id", "src", "dst", "created", "expires", "state"],
          [[g["id"], g["src"], g["dst"], _local(g["created"], "%F %T"), _local(g["expires"], "%F %T"), g["state"]]
           for g in r["grants"]])
    for g in r["grants"]:
        if g["error"]:
            say(f"{g['id']}: {g['error']}", "red")


@command(access_group, "list", render=_render_list, bars=False, readonly=True)
@click.option("--all", "show_all", is_flag=True, help="Also grants revoked in the last 30 days.")
def access_list(session, show_all: bool):
    """Access still open: active, expired (past TTL, not yet revoked) and revoke-pending grants."""
    return {"grants": [g.to_dict() for g in access_ops.list_(session, show_all)]}


def _render_revoked(r: dict) -> None:
    if "revoked" not in r:  # one grant
        say(f"revoked {r['id']}: {r['src']} -> {r['dst']}")
        return
    for g in r["revoked"]:
        say(f"revoked {g['id']}: {g['src']} -> {g['dst']}")
    for g in r["failed"]:
        err_console.print(f"NOT revoked {g['id']}: {g['error']}", style="bold red", highlight=False, markup=False)
    if not r["revoked"] and not r["failed"]:
        say("no expired or revoke-pending grants")


@command(access_group, "revoke", render=_render_revoked, bars=False)
@click.argument("grant_id", required=False)
@click.option("--expired", is_flag=True, help="Revoke every grant past its TTL and retry revoke-pending ones.")
def access_revoke(session, grant_id: str | None, expired: bool):
    """Remove a grant's key from DST's authorized_keys and from SRC."""
    if bool(grant_id) == expired:
        raise UsageError("give either a grant ID or --expired", hint="`vpd access list` shows the grants")
    if grant_id:
        return access_ops.revoke(session, grant_id)
    return access_ops.revoke_due(session)
