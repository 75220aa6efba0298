"""Validation of everything users name: hosts, VMs, pools, volumes, sizes.

Names end up in file paths, XML and remote argv lists, so the rule is strict:
a letter or digit first, then letters, digits, '.', '_' or '-', at most 64
characters, and never '..'. That keeps paths inside their directories and
keeps names portable across libvirt drivers.
"""
from __future__ import annotations

import re

from .errors import UsageError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?B?)\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(bit|bps)?\s*\Z", re.IGNORECASE)
_RATE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def check_name(name: str, what: str = "name") -> str:
    """Return `name` if it is a safe object name, else raise UsageError saying why."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"{what} must not be empty")
    if ".." in name or not _NAME.fullmatch(name):
        raise UsageError(
            f"invalid {what} {_shown(name)}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


# Existing volumes may carry names vpd would not give (an iSCSI LUN is 'unit:0:0:1'); they are
# looked up, never built into paths, so this rule only keeps out separators and traversal.
_EXISTING = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")
# A Linux interface name (bridges, NICs): IFNAMSIZ leaves 15 characters.
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
# A DNS name: dot-separated labels of letters, digits and inner '-', 253 characters at most.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 72 else text[:69] + "..."


def check_existing_name(name: str, what: str = "volume name") -> str:
    """A name vpd looks up but did not give (a volume, an iSCSI LUN): no '/', spaces, quotes or '..'."""
    if not isinstance(name, str) or not _EXISTING.fullmatch(name) or ".." in name:
        raise UsageError(f"invalid {what} {_shown(name)}", hint="volume names have no '/', spaces, quotes or '..'")
    return name


def check_ifname(name: str, what: str = "interface name") -> str:
    """A Linux interface name (a bridge, a host NIC): at most 15 characters, no '/', spaces or '..'."""
    if not isinstance(name, str) or not _IFNAME.fullmatch(name) or ".." in name:
        raise UsageError(f"invalid {what} {_shown(name)}",
                         hint="use 1-15 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def is_dns_name(name: str) -> bool:
    return isinstance(name, str) and bool(_DNS_NAME.fullmatch(name))


def parse_size(text: str | int, what: str = "size") -> int:
    """Parse '10G', '512M', '1GiB' or a byte count into bytes (binary units, as qemu-img)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = _SIZE.match(str(text))
        if not m:
            raise UsageError(f"invalid {what} {text!r}", hint="use a number with K, M, G or T, e.g. 10G")
        value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if value <= 0:
        raise UsageError(f"{what} must be positive, got {text!r}")
    if value > 1024**5:
        raise UsageError(f"{what} {text!r} is larger than 1 PiB")
    return value


def parse_rate(text: str) -> int | None:
    """Parse a link rate like '1gbit', '100mbit' or 'none' into bits per second (None = unshaped)."""
    if str(text).strip().lower() in ("none", "off", "0"):
        return None
    m = _RATE.match(str(text))
    if not m:
        raise UsageError(f"invalid link rate {text!r}", hint="use e.g. 1gbit, 100mbit or none")
    bits = int(float(m.group(1)) * _RATE_UNITS[m.group(2).lower()])
    if bits < 8000:
        raise UsageError(f"link rate {text!r} is too low (minimum 8kbit)")
    return bits


# Control characters (C0, DEL, C1): never part of a name or a path vpd accepts. A newline in
# a path splits log lines and remote argv; an escape sequence rewrites the user's terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
PATH_MAX = 4095
NAME_MAX = 255


def check_local_path(text: str, what: str = "path") -> str:
    """Return `text` if it can name a file on this machine: not empty, no control characters,
    no component longer than NAME_MAX bytes nor a whole longer than PATH_MAX. Whether it exists
    is the caller's business; this keeps odd input from surfacing as an OSError traceback."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"{what} must not be empty")
    if _CONTROL.search(text):
        raise UsageError(f"invalid {what} {text!r}: it holds a control character (newline, tab, escape...)",
                         hint="give the path without control characters")
    raw = text.encode(errors="surrogateescape")
    if len(raw) > PATH_MAX or any(len(part) > NAME_MAX for part in raw.split(b"/")):
        raise UsageError(f"{what} is too long ({len(raw)} bytes)",
                         hint=f"at most {NAME_MAX} bytes per component and {PATH_MAX} in all")
    return text
