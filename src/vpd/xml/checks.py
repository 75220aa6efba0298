"""Checks on what users hand the XML builders, failing as UsageError like the rest of vpd.

The models themselves accept anything libvirt may report; these checks are stricter because
they guard what vpd is about to ask libvirt to create.
"""
from __future__ import annotations

import os
import re
import uuid
from collections.abc import Collection

from ..core.errors import UsageError
from ..core.names import check_ifname

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def require_count(value: object, what: str, *, maximum: int) -> int:
    """`value` if it is a whole number from 1 to `maximum` (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{what} must be a whole number, got {value!r}")
    if not 1 <= value <= maximum:
        raise UsageError(f"{what} must be between 1 and {maximum}, got {value}")
    return value


def require_absolute_path(path: str | os.PathLike[str], what: str) -> str:
    text = os.fspath(path)
    if not os.path.isabs(text):
        raise UsageError(
            f"{what} must be an absolute path, got {text!r}",
            hint="libvirt opens it from its own working directory, not vpd's",
        )
    return text


def require_choice(value: object, what: str, choices: Collection[str]) -> str:
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}", hint=f"use one of: {', '.join(sorted(choices))}")
    return str(value)


def require_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{what} must be text, got {value!r}")
    return value


def require_ifname(value: object, what: str) -> str:
    """A Linux interface name: at most 15 characters (IFNAMSIZ), no '/', spaces or '..'."""
    return check_ifname(value, what)  # type: ignore[arg-type]


def require_uuid(value: str | uuid.UUID, what: str) -> str:
    """The canonical lower-case, hyphenated form libvirt reports back."""
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise UsageError(f"invalid {what} {value!r}", hint="use the 8-4-4-4-12 hex form") from None


def require_unicast_mac(value: str, what: str) -> str:
    """The lower-case form libvirt reports back. Multicast addresses cannot name a NIC."""
    mac = value.lower() if isinstance(value, str) else ""
    if not _MAC.fullmatch(mac):
        raise UsageError(f"invalid {what} {value!r}", hint="use six hex pairs like 52:54:00:12:34:56")
    if int(mac[:2], 16) & 1:
        raise UsageError(f"{what} {value!r} is a multicast address", hint="the first octet must be even")
    return mac


def explain_parse_error(exc: Exception, limit: int = 3) -> str:
    """What is wrong with a user's XML, field by field: pydantic's messages ('memory: field
    required (line 1)') rather than its summary line, which names no field."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    parts = []
    items = errors()
    for err in items[:limit]:
        where = "/".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err.get("loc", ())).replace("/[", "[")
        ctx = err.get("ctx") or {}
        msg = str(ctx.get("orig") or err.get("msg", "")).rstrip(".")
        line = f" (line {ctx['sourceline']})" if ctx.get("sourceline") not in (None, -1) else ""
        parts.append(f"{where or 'document'}: {msg[0].lower() + msg[1:] if msg else 'invalid'}{line}")
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(parts) + more
