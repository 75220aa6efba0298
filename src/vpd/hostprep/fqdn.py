"""Seed task 1: every host has a unique fully qualified name, and every host
resolves every peer's name to that peer's address.

The destination of a migration announces its own hostname and the source
connects to it for the migration stream, so a name that does not resolve (or
resolves to loopback) fails the migration ("Unable to resolve address
'hostb.vpd.lab' service '49152'"; docs/lab.md, "Migration needs resolvable host names")."""
from __future__ import annotations

import ipaddress
import re

from ..connect.inventory import Host
from ..core.checks import Check
from ..core.errors import UsageError
from . import state
from .remote import Command, address_of, run
from .report import Change

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
HOSTS_FILE = "/etc/hosts"


def is_fqdn(name: str) -> bool:
    labels = name.split(".")
    return (len(name) <= 253 and len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)
            and not name.lower().startswith("localhost"))


def check_fqdn(name: str) -> str:
    if not is_fqdn(name):
        raise UsageError(f"{name!r} is not a fully qualified host name",
                         hint="use letters, digits and '-' in dot-separated labels, e.g. hosta.example.org")
    return name


def short(name: str) -> str:
    return name.split(".")[0]


# --- /etc/hosts, as text -------------------------------------------------------------

def _entries(text: str) -> list[tuple[str, list[str], str]]:
    """(address, names, line) of each line that maps names."""
    out = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            try:
                addr = str(ipaddress.ip_address(fields[0]))
            except ValueError:
                continue
            out.append((addr, fields[1:], line))
    return out


def hosts_line(address: str, name: str) -> str:
    return f"{address} {name} {short(name)}" if short(name) != name else f"{address} {name}"


def missing_lines(text: str, wanted: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Lines to append so each (address, fqdn) in `wanted` resolves, and the existing
    lines that map one of those names elsewhere (left alone: vpd never rewrites a line)."""
    entries = _entries(text)
    add, conflicts = [], []
    for address, name in wanted:
        address = str(ipaddress.ip_address(address))
        if any(a == address and name in names for a, names, _ in entries):
            continue
        add.append(hosts_line(address, name))
        version = ipaddress.ip_address(address).version
        conflicts += [line for a, names, line in entries
                      if name in names and ipaddress.ip_address(a).version == version and line not in conflicts]
    return add, conflicts


def appended(text: str, lines: list[str]) -> str:
    """What `tee -a` must write so `lines` land on lines of their own."""
    lead = "\n" if text and not text.endswith("\n") else ""
    return lead + "".join(line + "\n" for line in lines)


def without_lines(text: str, lines: list[str]) -> str:
    """`text` minus the last occurrence of each of `lines` (the ones vpd appended)."""
    kept = text.splitlines(keepends=True)
    for line in lines:
        for i in range(len(kept) - 1, -1, -1):
            if kept[i].rstrip("\n") == line:
                del kept[i]
                break
    return "".join(kept)


def parse_ahosts(text: str) -> list[str]:
    """Addresses of `getent ahosts NAME`, in the order a connect tries them."""
    seen: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] not in seen:
            seen.append(fields[0])
    return seen


# --- on the hosts --------------------------------------------------------------------

def host_fqdn(host: Host) -> str:
    """The name the host announces for migrations: its hostname, or the
    canonical name of a short hostname (what libvirt's virGetHostname does)."""
    name = run(host, ["hostname"]).stdout.strip()
    if "." not in name:
        canonical = run(host, ["hostname", "-f"], check=False)
        if canonical.ok and "." in canonical.stdout.strip():
            name = canonical.stdout.strip()
    return name


def resolve(host: Host, name: str) -> list[str]:
    """The addresses `name` resolves to on `host` (its resolver: /etc/hosts, DNS, ...)."""
    result = run(host, ["getent", "ahosts", name], check=False)
    return parse_ahosts(result.stdout) if result.ok else []


def _fqdn(host: Host, names: dict[str, str]) -> str:
    if host.name not in names:
        names[host.name] = host_fqdn(host)
    return names[host.name]


def resolution_checks(host: Host, peers: list[Host], names: dict[str, str] | None = None) -> list[Check]:
    """FQDN checks for `host`: its own name, uniqueness among `peers`, and that it
    resolves each peer's name to the peer's inventory address. `names` caches
    each host's FQDN across calls (host name -> FQDN)."""
    names = {} if names is None else names
    own = _fqdn(host, names)
    fix_name = f"vpd host prepare {host.name} --set-fqdn {host.name}.<your domain>"
    checks = [Check(f"fqdn {host.name}", is_fqdn(own),
                    f"hostname {own!r}" + ("" if is_fqdn(own) else " is not fully qualified"),
                    None if is_fqdn(own) else fix_name)]
    for peer in peers:
        peer_name = _fqdn(peer, names)
        if peer_name == own:
            checks.append(Check(f"fqdn-unique {host.name}/{peer.name}", False,
                                f"{host.name} and {peer.name} are both {own!r}: libvirt would take a "
                                "migration between them for one to itself", fix_name))
            continue
        checks.append(_resolution_check(host, peer, peer_name))
    return checks


def _resolution_check(host: Host, peer: Host, peer_name: str) -> Check:
    label = f"resolves {host.name}->{peer.name}"
    if not is_fqdn(peer_name):
        return Check(label, False, f"{peer.name} has no fully qualified name ({peer_name!r})",
                     f"vpd host prepare {peer.name} --set-fqdn {peer.name}.<your domain>")
    addrs = resolve(host, peer_name)
    line = hosts_line(peer.address or f"<{peer.name}'s address>", peer_name)
    fix = (f"add '{line}' to {HOSTS_FILE} on {host.name} (or fix DNS); "
           f"`vpd host prepare {host.name} --set-fqdn <{host.name}'s FQDN>` adds it")
    if not addrs:
        return Check(label, False, f"{host.name} cannot resolve {peer_name}", fix)
    loop = [a for a in addrs if ipaddress.ip_address(a).is_loopback]
    if loop:
        return Check(label, False, f"{peer_name} resolves to loopback {', '.join(loop)} on {host.name}",
                     f"remove {peer_name} from the loopback line of {HOSTS_FILE} on {host.name}; " + fix)
    if peer.address is None:  # an inventory without addresses: nothing to compare with
        return Check(label, True, f"{peer_name} -> {', '.join(addrs)} (no inventory address to compare)")
    if str(ipaddress.ip_address(peer.address)) not in addrs:
        return Check(label, False, f"{peer_name} resolves to {', '.join(addrs)} on {host.name}, "
                                   f"not to {peer.name}'s address {peer.address}", fix)
    return Check(label, True, f"{peer_name} -> {', '.join(addrs)}")


# --- setting the name (--set-fqdn) ---------------------------------------------------

def _hostname_change(host: Host, current: str, name: str) -> Change:
    """hostnamectl where systemd runs (it also writes /etc/hostname); elsewhere
    /etc/hostname (for the next boot) and `hostname` (for now)."""
    systemd = run(host, ["test", "-d", "/run/systemd/system"], check=False).ok
    old = run(host, ["hostname"]).stdout.strip()  # as set, which may be short
    old_file = run(host, ["cat", "/etc/hostname"], check=False)
    commands = _set_hostname_commands(name, systemd)
    return Change(host, "hostname", f"rename {host.name} from {current!r} to {name!r}", commands,
                  {"kind": "hostname", "on": host.name, "old": old, "new": name, "systemd": systemd,
                   "etc_hostname": old_file.stdout if old_file.ok else None})


def _set_hostname_commands(name: str, systemd: bool, etc_hostname: str | None = None) -> list[Command]:
    if systemd:
        return [Command(("hostnamectl", "set-hostname", name))]
    return [Command(("tee", "/etc/hostname"), etc_hostname if etc_hostname is not None else name + "\n"),
            Command(("hostname", name))]


def hosts_change(on: Host, wanted: list[tuple[str, str]]) -> tuple[Change | None, list[Check]]:
    """Append the /etc/hosts lines `on` lacks for `wanted`; a line that maps one of
    those names to another address is reported, never rewritten."""
    text = run(on, ["cat", HOSTS_FILE]).stdout
    add, conflicts = missing_lines(text, wanted)
    checks = [Check(f"hosts-conflict {on.name}", False, f"{HOSTS_FILE} on {on.name} has {line!r}",
                    f"remove or correct that line on {on.name}", blocking=False) for line in conflicts]
    if not add:
        return None, checks
    change = Change(on, "hosts-lines", f"append to {HOSTS_FILE} on {on.name}: " + "; ".join(add),
                    [Command(("tee", "-a", HOSTS_FILE), appended(text, add))],
                    {"kind": "hosts-lines", "on": on.name, "lines": add}, backup=(HOSTS_FILE, text))
    return change, checks


def set_fqdn_plan(host: Host, peers: list[Host], name: str,
                  names: dict[str, str]) -> tuple[list[Change], list[Check]]:
    """Rename `host` to `name` and add the /etc/hosts lines that are missing: on
    `host` for itself and each peer, on each peer for `host`'s new name."""
    check_fqdn(name)
    changes, checks = [], []
    current = _fqdn(host, names)
    if current != name:
        changes.append(_hostname_change(host, current, name))
    address = address_of(host)
    wanted = [(address, name)] + [(address_of(p), _fqdn(p, names)) for p in peers if is_fqdn(_fqdn(p, names))]
    for on, entries in [(host, wanted)] + [(p, [(address, name)]) for p in peers]:
        change, found = hosts_change(on, entries)
        checks += found
        if change:
            changes.append(change)
    return changes, checks


# --- undoing -------------------------------------------------------------------------

def undo_hosts_lines(on: Host, record: dict) -> Change | None:
    """Remove the lines vpd appended, leaving every other line as it is now."""
    text = run(on, ["cat", HOSTS_FILE]).stdout
    new = without_lines(text, record["lines"])
    if new == text:
        return None
    state.backup(on.name, HOSTS_FILE, text)
    # tee rewrites the file in place: /etc/hosts may be a bind mount (containers, the lab).
    command = Command(("tee", HOSTS_FILE), new)
    run(on, command.argv, input=command.input)
    return Change(on, "hosts-lines", f"remove from {HOSTS_FILE} on {on.name}: " + "; ".join(record["lines"]),
                  [command])


def undo_hostname(host: Host, record: dict) -> Change | None:
    """Give the host back its old name, unless someone renamed it since."""
    if run(host, ["hostname"]).stdout.strip() != record["new"]:
        return None
    commands = _set_hostname_commands(record["old"], record["systemd"], record["etc_hostname"])
    for c in commands:
        run(host, c.argv, input=c.input)
    return Change(host, "hostname", f"rename {host.name} back to {record['old']!r}", commands)
