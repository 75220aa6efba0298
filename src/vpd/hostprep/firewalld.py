"""firewalld, as pure functions: the rich rules that admit one peer, and
reading firewall-cmd's answers.

A zone's plain `--add-port` would open a port to the whole world; a rich rule
with a source address admits only that peer (docs/lab.md, "Host firewalls and the
migration ports")."""
from __future__ import annotations

import ipaddress
import re

from ..core.errors import VpdError

# Zone names come from firewall-cmd's answers and go back into its argv: refuse
# anything that could read as an option or carry spaces.
_ZONE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_/+-]{0,63}\Z")
_ALREADY = re.compile(r"ALREADY_ENABLED: (rule .*)$", re.MULTILINE)
_NOT_ENABLED = re.compile(r"NOT_ENABLED: (rule .*)$", re.MULTILINE)


def check_zone(zone: str) -> str:
    if not _ZONE.fullmatch(zone):
        raise VpdError(f"firewalld answered an unexpected zone name {zone!r}")
    return zone


def rich_rules(address: str, ports: tuple[tuple[int, int], ...], protocol: str = "tcp") -> list[str]:
    """One rich rule per port range, written as firewall-cmd --list-rich-rules prints it."""
    ip = ipaddress.ip_address(address)
    family = "ipv4" if ip.version == 4 else "ipv6"
    return [f'rule family="{family}" source address="{ip}" port port="{a if a == b else f"{a}-{b}"}" '
            f'protocol="{protocol}" accept' for a, b in ports]


def listed(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip()}


def add_argv(zone: str, rules: list[str], permanent: bool) -> list[str]:
    return _argv(zone, rules, permanent, "--add-rich-rule")


def remove_argv(zone: str, rules: list[str], permanent: bool) -> list[str]:
    return _argv(zone, rules, permanent, "--remove-rich-rule")


def _argv(zone: str, rules: list[str], permanent: bool, option: str) -> list[str]:
    return ["firewall-cmd", *(["--permanent"] if permanent else []), f"--zone={check_zone(zone)}",
            *(f"{option}={r}" for r in rules)]


def already_enabled(stderr: str) -> set[str]:
    """Rules firewall-cmd reports as present before it was asked to add them
    (it prints a warning and still succeeds): vpd did not add those."""
    return set(_ALREADY.findall(stderr))


def not_enabled(stderr: str) -> set[str]:
    """Rules someone else already removed: nothing left for vpd to undo there."""
    return set(_NOT_ENABLED.findall(stderr))
