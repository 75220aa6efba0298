"""root's known_hosts on the peers of a renamed host (`host prepare --set-fqdn`).

A peer's libvirtd reaches a migration's destination as root over SSH, by the name the
destination gives itself (its FQDN). After a rename that name is new to every peer, and
StrictHostKeyChecking stops the migration with "Host key verification failed". vpd adds the
new name with the key the peer already trusts for the host's old name or address: no new
trust on first use, and nothing when the peer trusts no key for the host (a check says so).

The parsing is pure: plain and hashed (`|1|salt|hmac`) host fields, as ssh-keygen -F reads them."""
from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac

from ..connect.inventory import Host
from ..core.checks import Check
from .fqdn import appended, without_lines
from .remote import Command, run
from .report import Change


def _hashed_match(field: str, name: str) -> bool:
    try:
        _, _, salt, digest = field.split("|", 3)
        key, want = base64.b64decode(salt), base64.b64decode(digest)
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(hmac.new(key, name.encode(), hashlib.sha1).digest(), want)


def host_field_matches(field: str, name: str) -> bool:
    """Whether a known_hosts line's host field names `name` (port 22): hashed, or a
    comma-separated list of names and patterns, `!` negating."""
    if field.startswith("|1|"):
        return _hashed_match(field, name)
    matched = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if pattern.startswith("[") and pattern.endswith("]:22"):
            pattern = pattern[1:-4]
        if fnmatch.fnmatchcase(name.lower(), pattern.lower()):
            if negated:
                return False
            matched = True
    return matched


def keys_for(text: str, names: list[str]) -> list[str]:
    """The "TYPE BASE64" keys trusted for any of `names`, in file order, without repeats
    (@revoked and @cert-authority lines are not host keys)."""
    keys: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith(("#", "@")):
            continue
        key = f"{fields[1]} {fields[2]}"
        if key not in keys and any(host_field_matches(fields[0], n) for n in names):
            keys.append(key)
    return keys


def root_known_hosts(on: Host) -> str:
    home = run(on, ["getent", "passwd", "root"]).stdout.split(":")[5] or "/root"
    return f"{home.rstrip('/')}/.ssh/known_hosts"


def change_for_rename(on: Host, host: Host, new_name: str, old_names: list[str]) -> tuple[Change | None, list[Check]]:
    """On peer `on`: trust `host` under `new_name` with the key(s) it trusts for `old_names`."""
    path = root_known_hosts(on)
    found = run(on, ["cat", path], check=False)
    text = found.stdout if found.ok else ""
    trusted = keys_for(text, [n for n in old_names if n])
    name = f"known_hosts {on.name}->{new_name}"
    if not trusted:
        return None, [Check(name, False, f"root on {on.name} trusts no SSH host key for {host.name} "
                                         f"({', '.join(n for n in old_names if n)})",
                            f"add {host.name}'s host key for {new_name} to {path} on {on.name} "
                            "(compare it with the key on the host itself)", blocking=False)]
    present = keys_for(text, [new_name])
    other = [k for k in present if k not in trusted]
    if other:
        # A key from before (another machine once had the name): vpd never rewrites a line.
        return None, [Check(name, False, f"{path} on {on.name} has another key for {new_name}",
                            f"`ssh-keygen -R {new_name} -f {path}` on {on.name}, then prepare again")]
    add = [f"{new_name} {k}" for k in trusted if k not in present]
    if not add:
        return None, []
    return Change(on, "known-hosts-lines", f"trust {host.name}'s host key as {new_name} in {path} on {on.name}",
                  [Command(("tee", "-a", path), appended(text, add))],
                  {"kind": "known-hosts-lines", "on": on.name, "path": path, "lines": add},
                  backup=(path, text)), []


def undo_lines(on: Host, record: dict) -> Change | None:
    """Remove the lines vpd appended, leaving every other line as it is now."""
    found = run(on, ["cat", record["path"]], check=False)
    if not found.ok:
        return None
    new = without_lines(found.stdout, record["lines"])
    if new == found.stdout:
        return None
    command = Command(("tee", record["path"]), new)
    run(on, command.argv, input=command.input)
    return Change(on, "known-hosts-lines", f"remove from {record['path']} on {on.name}: " + "; ".join(record["lines"]),
                  [command])
