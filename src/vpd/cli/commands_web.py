"""`vpd web`: the web console (REST API + pages) and its access tokens."""
from __future__ import annotations

import datetime

import click

from .command import command, say
from .main import LocalPath, cli, handle_errors
from .render import table


@cli.group("web", invoke_without_command=True)
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="ADDRESS:PORT",
              help="Where to listen. Not loopback: needs --cert/--key, or --insecure.")
@click.option("--read-only", is_flag=True, help="Serve viewers only (every token acts as a viewer): for a projector.")
@click.option("--cert", type=LocalPath(dir_okay=False), help="TLS certificate (PEM).")
@click.option("--key", type=LocalPath(dir_okay=False), help="TLS private key (PEM).")
@click.option("--insecure", is_flag=True, help="Allow plain HTTP on a non-loopback address.")
@click.pass_context
@handle_errors
def web(ctx: click.Context, listen: str, read_only: bool, cert: str | None, key: str | None, insecure: bool) -> None:
    """Serve the web console and its REST API (/api/v1, OpenAPI at /api/v1/openapi.json).

    On the first start, with no token yet, an operator token is made and printed once;
    `vpd web token create` makes more."""
    if ctx.invoked_subcommand is not None:
        return
    from ..web.server import check_exposure, first_token, parse_listen, serve
    from ..web.tokens import TokenStore

    where = parse_listen(listen)
    tls = check_exposure(where, cert, key, insecure)
    token = first_token(TokenStore())
    if token:
        say("first start: an operator token was made; it is shown only now, keep it:", "bold")
        say(f"  {token}")
    say(f"vpd web console on {where.url(tls)}" + (" (read-only)" if read_only else "") + "  (Ctrl-C stops it)")
    serve(where, ctx.find_root().obj.get("inventory"), read_only, cert, key)


@web.group("token")
def token() -> None:
    """Access tokens of the web console (kept hashed in the state directory)."""


def _render_created(r: dict) -> None:
    say(f"token {r['id']} ({r['role']}); shown only now, keep it:")
    say(r["token"])


@command(token, "create", render=_render_created, bars=False)
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True,
              help="viewer: reads; operator: reads and acts.")
@click.option("--label", default="", help="A note on who it is for.")
def token_create(session, role: str, label: str):
    """Make a token and print it (only now: vpd keeps its hash)."""
    from ..web.tokens import TokenStore

    info, secret = TokenStore().create(role, label)
    return {**info.to_dict(), "token": secret}


def _render_list(rows: list[dict]) -> None:
    table("web tokens", ["id", "role", "created", "label"],
          [[r["id"], r["role"], datetime.datetime.fromtimestamp(r["created"]).strftime("%F %T"), r["label"]]
           for r in rows])


@command(token, "list", render=_render_list, bars=False, readonly=True)
def token_list(session):
    """The tokens (never their secrets)."""
    from ..web.tokens import TokenStore

    return [t.to_dict() for t in TokenStore().list()]


@command(token, "revoke", render=lambda r: say(f"token {r['id']} ({r['role']}) revoked"), bars=False)
@click.argument("token_id")
def token_revoke(session, token_id: str):
    """Revoke a token at once (a browser logged in with it is refused on its next request)."""
    from ..web.tokens import TokenStore

    return TokenStore().revoke(token_id).to_dict()
