"""authorized_keys lines, as pure functions: building a grant's line, finding a
line's key the way sshd does, and dropping lines by key blob.

The seed revokes with `sed -i "/<blob>/d"`: a pattern built from key text that
also deletes any line merely mentioning the blob (in a comment or a command=)
and breaks on the '/' and '+' of base64. Here a line goes only if its key
field, found as sshd finds it, is the grant's blob; every other byte stays.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from datetime import UTC, datetime, timedelta

from ..core.errors import UsageError

# The key type names sshd's sshkey_read() accepts; a first field that is none of
# these makes sshd read the field as options.
KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com", "sk-ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ssh-rsa", "rsa-sha2-256", "rsa-sha2-512", "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com", "rsa-sha2-512-cert-v01@openssh.com",
    "ssh-dss", "ssh-dss-cert-v01@openssh.com",
    "ssh-xmss@openssh.com", "ssh-xmss-cert-v01@openssh.com",
})
GRANT_OPTIONS = ("no-pty", "no-port-forwarding", "no-agent-forwarding", "no-X11-forwarding")
COMMENT_PREFIX = "vpd-grant:"
_FIELD_SEP = re.compile(r"[ \t\r\n]+")
_GRANT_ID = re.compile(r"^[0-9a-f]{8,32}\Z")
_OPENSSH = re.compile(r"OpenSSH_(\d+)\.(\d+)")


def _valid_blob(blob: str) -> bool:
    try:
        return bool(base64.b64decode(blob, validate=True))
    except (binascii.Error, ValueError):
        return False


def _skip_options(text: str) -> str | None:
    """What follows the options field, as sshd's sshkey_advance_past_options()
    reads it: whitespace ends the field except inside double quotes, and \\" never
    toggles quoting. None for an unterminated quote (sshd rejects the line)."""
    quoted = False
    i = 0
    while i < len(text) and (quoted or text[i] not in " \t"):
        if text[i] == "\\" and text[i + 1:i + 2] == '"':
            i += 1
        elif text[i] == '"':
            quoted = not quoted
        i += 1
    if quoted and i >= len(text):
        return None
    return text[i:]


def _key_at(text: str) -> tuple[str, str] | None:
    fields = _FIELD_SEP.split(text.lstrip(" \t"), maxsplit=2)
    if len(fields) >= 2 and fields[0] in KEY_TYPES and _valid_blob(fields[1]):
        return fields[0], fields[1]
    return None


def key_field(line: str) -> tuple[str, str] | None:
    """(key type, base64 blob) of one authorized_keys line, or None for blank,
    comment and unparsable lines. sshd first tries a key at the start of the
    line, then after the options field; so does this."""
    text = line.lstrip(" \t")
    if not text or text[0] in "#\r\n":
        return None
    found = _key_at(text)
    if found:
        return found
    rest = _skip_options(text)
    return _key_at(rest) if rest is not None else None


def split_lines(data: bytes) -> list[bytes]:
    """Lines with their own '\\n' (sshd's only separator), the last without one if
    the file lacks it; joining them gives back `data` exactly."""
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _line_blob(line: bytes) -> str | None:
    # latin-1 maps every byte to one character, so no file content can fail to decode.
    found = key_field(line.decode("latin-1"))
    return found[1] if found else None


def remove_key(data: bytes, blob: str) -> tuple[bytes, int]:
    """`data` without the lines whose key is `blob`, and how many went."""
    kept = [line for line in split_lines(data) if _line_blob(line) != blob]
    return b"".join(kept), len(split_lines(data)) - len(kept)


def has_key(data: bytes, blob: str) -> bool:
    return any(_line_blob(line) == blob for line in split_lines(data))


def append_line(data: bytes, line: str) -> bytes:
    """`data` plus `line`; a last line without its newline gets one first, or the
    two would run together into one line."""
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data + line.encode("ascii") + b"\n"


def grant_line(public_key: str, src_address: str, grant_id: str, expiry_time: str | None) -> str:
    """The authorized_keys line of one grant: only from SRC's address, no
    terminal or forwarding, sshd-enforced expiry when given, tagged by id."""
    try:
        address = str(ipaddress.ip_address(src_address))  # an address, never a pattern or a quote
    except ValueError:
        raise UsageError(f"invalid source address {src_address!r}") from None
    if not _GRANT_ID.fullmatch(grant_id):
        raise UsageError(f"invalid grant id {grant_id!r}")
    found = _key_at(public_key)
    if not found:
        raise UsageError("not an OpenSSH public key", hint="expected '<type> <base64> [comment]'")
    if expiry_time is not None and not re.fullmatch(r"\d{12}(\d{2})?Z?", expiry_time):
        raise UsageError(f"invalid expiry-time {expiry_time!r}")
    options = [f'from="{address}"', *GRANT_OPTIONS]
    if expiry_time:
        options.append(f'expiry-time="{expiry_time}"')
    return f"{','.join(options)} {found[0]} {found[1]} {COMMENT_PREFIX}{grant_id}"


def openssh_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from `ssh -V` / `sshd -V` output (old sshd prints it after
    'unknown option'); None when the server is not OpenSSH."""
    m = _OPENSSH.search(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


# expiry-time= exists since OpenSSH 7.7; the UTC 'Z' suffix since 9.1. Older
# servers refuse the key outright when they see a 'Z', so the choice matters.
EXPIRY_SINCE = (7, 7)
EXPIRY_UTC_SINCE = (9, 1)


def expiry_style(version: tuple[int, int] | None) -> str | None:
    """'utc', 'local' (a bare timestamp in the server's standard time) or None."""
    if version is None or version < EXPIRY_SINCE:
        return None
    return "utc" if version >= EXPIRY_UTC_SINCE else "local"


def format_expiry(when: datetime, standard_offset: timedelta | None = None) -> str:
    """The expiry-time timespec for `when`: YYYYMMDDHHMMSSZ in UTC, or, with the
    server's standard-time UTC offset, a bare local timestamp. sshd parses a bare
    one with tm_isdst=0, i.e. as standard time even in summer, hence the offset
    of standard time rather than the current one."""
    utc = when.astimezone(UTC)
    if standard_offset is None:
        return utc.strftime("%Y%m%d%H%M%SZ")
    return (utc + standard_offset).strftime("%Y%m%d%H%M%S")


def parse_utc_offset(text: str) -> timedelta:
    """`date +%z` output such as +0100 or -0330."""
    m = re.fullmatch(r"\s*([+-])(\d{2})(\d{2})\s*", text)
    if not m:
        raise ValueError(f"not a UTC offset: {text!r}")
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    return delta if m.group(1) == "+" else -delta
