"""iSCSI qualified names (RFC 3720 §3.2.6): checked before they reach an ACL, a pool or argv."""
from __future__ import annotations

import re

from ..core.errors import UsageError

# iqn.YYYY-MM.<reversed domain>[:<anything the naming authority likes>]; eui.<16 hex digits>.
# IQNs are case-insensitive and stored lower-case (RFC 3722 stringprep), so vpd lower-cases them.
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_IQN = re.compile(rf"iqn\.(\d{{4}})-(0[1-9]|1[0-2])\.{_LABEL}(\.{_LABEL})*(:[a-z0-9._:-]+)?")
_EUI = re.compile(r"eui\.[0-9a-f]{16}")
MAX_BYTES = 223
# Names vpd gives hosts' initiators when none is configured (see default_initiator).
VPD_AUTHORITY = "iqn.2024-01.org.vpd"


def check_iqn(text: str, what: str = "IQN") -> str:
    """The IQN in canonical (lower-case) form, or UsageError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise UsageError(f"{what} must not be empty")
    iqn = text.strip().lower()
    if len(iqn.encode()) > MAX_BYTES:
        raise UsageError(f"{what} {text[:40]!r}... is longer than {MAX_BYTES} bytes")
    if not (_IQN.fullmatch(iqn) or _EUI.fullmatch(iqn)):
        raise UsageError(f"invalid {what} {text!r}",
                         hint="use iqn.YYYY-MM.reversed.domain[:name], e.g. iqn.2024-01.org.example:disk1")
    return iqn


def default_initiator(host_name: str) -> str:
    """The initiator IQN vpd uses for an inventory host unless told otherwise."""
    return check_iqn(f"{VPD_AUTHORITY}:{host_name.lower().replace('_', '-')}")
