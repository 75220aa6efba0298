"""Who is asking, and may they act.

A request carries its token in `Authorization: Bearer <token>` (scripts) or in the session
cookie the login page sets (browsers; HttpOnly, SameSite=Strict). Reading needs any valid
token; acting needs the operator role, a server not started with --read-only, and — when the
token came from the cookie — the header `X-Requested-With: vpd`, which another site's page
cannot send without a CORS preflight vpd never grants (htmx sends it from every page). Plain
HTML forms (pages that work without JavaScript) send instead the hidden field `csrf`, a value
derived from the session cookie that another site cannot read (`form_token`)."""
from __future__ import annotations

import hashlib
import hmac
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


def form_token(request: Request) -> str | None:
    """The `csrf` field of this browser's forms: a digest of its session token (None without
    the cookie). Another site can neither read the cookie nor this page to learn it."""
    token = request.cookies.get(COOKIE)
    return hashlib.sha256(b"vpd-form\0" + token.encode()).hexdigest()[:32] if token else None


def acting(request: Request) -> Principal | None:
    """The caller when it holds the operator role on a server that is not read-only (no CSRF
    check: for pages that only show what an operator may change, like the XML editor)."""
    who = identify(request)
    return who if who is not None and who.can_act and not request.app.state.read_only else None


def operator(request: Request) -> Principal:
    """Dependency of every change: operator role, CSRF-safe request, server not read-only."""
    return operator_form(request, None)


def operator_form(request: Request, csrf: str | None) -> Principal:
    """`operator` for a plain HTML form: its `csrf` field stands in for the header."""
    who = viewer(request)
    if request.app.state.read_only:
        raise HttpError(403, "this console is read-only (vpd web --read-only): nothing can be changed from it")
    if not who.can_act:
        raise HttpError(403, f"token {who.token_id} is a viewer's: acting needs an operator token",
                        hint="`vpd web token create --role operator` makes one")
    expected = form_token(request)
    by_form = csrf is not None and expected is not None and hmac.compare_digest(csrf, expected)
    if who.via == "cookie" and request.headers.get(CSRF_HEADER) != CSRF_VALUE and not by_form:
        raise HttpError(403, f"a change from a browser needs the header `{CSRF_HEADER}: {CSRF_VALUE}`",
                        hint="the console's pages send it; scripts use `Authorization: Bearer <token>`")
    return who
