from __future__ import annotations

import sys

import click

from .. import access
from ..access.ttl import format_ttl
from ..core.errors import EXIT_FAILED, UsageError
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, err_console, table


@cli.group("access")
def access_group() -> None:
    """Temporary SSH access from one host to another (for migrations)."""


@access_group.command("grant")
@click.argument("src")
@click.argument("dst")
@click.option("--ttl", default="15m", show_default=True, help="How long the grant lives: 90s, 15m, 2h, 1h30m.")
@json_option
@click.pass_context
@handle_errors
def access_grant(ctx: click.Context, src: str, dst: str, ttl: str, as_json: bool) -> None:
    """Let root on SRC log in to root on DST with a key of its own, from SRC's address only."""
    seconds = access.parse_ttl(ttl)
    inv = context.inventory(ctx)
    g = access.grant(inv.get(src), inv.get(dst), seconds)
    if as_json:
        emit_json(g.to_dict())
        return
    console.print(f"granted [bold]{g.id}[/]: {g.src.name} -> {g.dst.name} for {format_ttl(seconds)}, "
                  f"until {g.expires.astimezone():%F %T %Z}", highlight=False)
    console.print(f"  key on {g.src.name}: {g.src_key_path}", highlight=False)
    console.print(f"  {g.expiry_note}", highlight=False)
    if g.expiry_time is None:
        err_console.print(f"[yellow]warning:[/] {g.dst.name} will not expire the key by itself: "
                          f"run `vpd access revoke {g.id}` (or `--expired`) when done", highlight=False)


@access_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also grants revoked in the last 30 days.")
@json_option
@handle_errors
def access_list(show_all: bool, as_json: bool) -> None:
    """Access still open: active, expired (past TTL, not yet revoked) and revoke-pending grants."""
    grants = [g for g in access.list_grants() if show_all or g.state != "revoked"]
    if as_json:
        emit_json({"grants": [g.to_dict() for g in grants]})
        return
    table("access grants", ["id", "src", "dst", "created", "expires", "state"],
          [[g.id, g.src.name, g.dst.name, f"{g.created.astimezone():%F %T}", f"{g.expires.astimezone():%F %T}",
            g.status] for g in grants])
    for g in grants:
        if g.error:
            console.print(f"[red]{g.id}[/]: {g.error}", highlight=False)


@access_group.command("revoke")
@click.argument("grant_id", required=False)
@click.option("--expired", is_flag=True, help="Revoke every grant past its TTL and retry revoke-pending ones.")
@json_option
@handle_errors
def access_revoke(grant_id: str | None, expired: bool, as_json: bool) -> None:
    """Remove a grant's key from DST's authorized_keys and from SRC."""
    if bool(grant_id) == expired:
        raise UsageError("give either a grant ID or --expired", hint="`vpd access list` shows the grants")
    if grant_id:
        g = access.revoke(grant_id)
        if as_json:
            emit_json(g.to_dict())
        else:
            console.print(f"revoked {g.id}: {g.src.name} -> {g.dst.name}", highlight=False)
        return
    revoked, failed = access.revoke_expired()
    if as_json:
        emit_json({"revoked": [g.to_dict() for g in revoked],
                   "failed": [{**g.to_dict(), "error": exc.message} for g, exc in failed]})
    else:
        for g in revoked:
            console.print(f"revoked {g.id}: {g.src.name} -> {g.dst.name}", highlight=False)
        for g, exc in failed:
            err_console.print(f"[bold red]NOT revoked[/] {g.id}: {exc.message}", highlight=False)
        if not revoked and not failed:
            console.print("no expired or revoke-pending grants")
    if failed:
        sys.exit(EXIT_FAILED)
