"""Who is asking, and may they act.

A request carries its token in `Authorization: Bearer <token>` (scripts) or in the session
cookie the login page sets (browsers; HttpOnly, SameSite=Strict). Reading needs any valid
token; acting needs the operator role, a server not started with --read-only, and — when the
token came from the cookie — the header `X-Requested-With: vpd`, which another site's page
cannot send without a CORS preflight vpd never grants (htmx sends it from every page)."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from .errors import HttpError
from .tokens import allows

COOKIE = "vpd_session"
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "vpd"


@dataclass(frozen=True)
class Principal:
    token_id: str
    role: str  # effective role: "viewer" on a --read-only server whatever the token says
    via: str  # "header" or "cookie"

    @property
    def can_act(self) -> bool:
        return allows(self.role, "operator")


def identify(request: Request) -> Principal | None:
    """The caller, or None when no valid token came with the request."""
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        via = "header" if scheme.lower() == "bearer" else "invalid"
        token = token.strip() if via == "header" else None
    else:
        token, via = request.cookies.get(COOKIE), "cookie"
    info = request.app.state.tokens.verify(token)
    if info is None:
        return None
    role = "viewer" if request.app.state.read_only else info.role
    return Principal(info.id, role, via)


def viewer(request: Request) -> Principal:
    """Dependency of every read: a valid token."""
    who = identify(request)
    if who is None:
        raise HttpError(401, "this needs a token",
                        hint="send `Authorization: Bearer <token>`; `vpd web token create --role viewer` makes one",
                        headers={"WWW-Authenticate": "Bearer"})
    return who


def operator(request: Request) -> Principal:
    """Dependency of every change: operator role, CSRF-safe request, server not read-only."""
    who = viewer(request)
    if request.app.state.read_only:
        raise HttpError(403, "this console is read-only (vpd web --read-only): nothing can be changed from it")
    if not who.can_act:
        raise HttpError(403, f"token {who.token_id} is a viewer's: acting needs an operator token",
                        hint="`vpd web token create --role operator` makes one")
    if who.via == "cookie" and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise HttpError(403, f"a change from a browser needs the header `{CSRF_HEADER}: {CSRF_VALUE}`",
                        hint="the console's pages send it; scripts use `Authorization: Bearer <token>`")
    return who
