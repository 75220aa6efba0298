"""nftables as a grader reads it: would the input hook accept a new TCP connection
from ADDRESS on INTERFACE to PORT? A small evaluator over `nft -j list ruleset`
for the matches host firewalls use (iifname, ip/ip6 saddr, tcp dport, ct state,
meta l4proto, sets, ranges, prefixes, jump/goto). A rule with a match it does
not model is skipped and named in the answer, never guessed."""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import VpdError

_FAMILY = {"ip": 4, "ip6": 6, "inet": None}


@dataclass(frozen=True)
class Packet:
    saddr: str
    iifname: str | None
    dport: int
    l4proto: str = "tcp"
    ct_state: str = "new"

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.saddr).version


@dataclass
class Answer:
    accepted: bool
    by: str  # the rule or policy that decided
    unknown: list[str] = field(default_factory=list)  # rules skipped: a match not modelled


def _load(text: str) -> list[dict]:
    try:
        return json.loads(text)["nftables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VpdError(f"cannot read nft's JSON ruleset: {exc}") from None


class Ruleset:
    def __init__(self, text: str):
        self.chains: dict[tuple[str, str, str], dict] = {}
        self.rules: dict[tuple[str, str, str], list[dict]] = {}
        for item in _load(text):
            if "chain" in item:
                c = item["chain"]
                self.chains[(c["family"], c["table"], c["name"])] = c
            elif "rule" in item:
                r = item["rule"]
                self.rules.setdefault((r["family"], r["table"], r["chain"]), []).append(r)

    def input_chains(self, version: int) -> list[tuple[str, str, str]]:
        """Base chains on the input hook that see packets of this IP version, by priority."""
        found = [(c.get("prio", 0), k) for k, c in self.chains.items()
                 if c.get("hook") == "input" and k[0] in _FAMILY and _FAMILY[k[0]] in (None, version)]
        return [k for _, k in sorted(found, key=lambda x: (x[0] if isinstance(x[0], int) else 0, x[1]))]

    def decide(self, packet: Packet) -> Answer:
        """Every input base chain must let the packet through: an accept ends one chain,
        a drop ends the packet."""
        unknown: list[str] = []
        last = "no input chain: nothing filters"
        for key in self.input_chains(packet.version):
            verdict, by = self._run(key, packet, unknown, depth=0)
            if verdict is None:
                policy = self.chains[key].get("policy", "accept")
                verdict, by = policy, f"policy {policy} of {' '.join(key)}"
            if verdict in ("drop", "reject"):
                return Answer(False, by, unknown)
            last = by
        return Answer(True, last, unknown)

    def _run(self, key: tuple[str, str, str], packet: Packet, unknown: list[str],
             depth: int) -> tuple[str | None, str]:
        if depth > 16:
            raise VpdError(f"nftables chains jump deeper than 16 levels at {' '.join(key)}")
        for rule in self.rules.get(key, []):
            verdict, target = _eval_rule(rule, packet)
            where = f"{' '.join(key)} handle {rule.get('handle', '?')}"
            if verdict == "unknown":
                unknown.append(where)
                continue
            if verdict in ("jump", "goto") and target:
                sub, by = self._run((key[0], key[1], target), packet, unknown, depth + 1)
                if sub is not None or verdict == "goto":
                    return sub, by
                continue
            if verdict in ("accept", "drop", "reject"):
                return verdict, f"rule {where}" + (f" ({rule['comment']})" if rule.get("comment") else "")
        return None, ""


def _value(left: Any, packet: Packet, family: str) -> Any:
    """The packet's value for a match's left side; KeyError when not modelled."""
    if "meta" in left:
        return {"iifname": packet.iifname, "l4proto": packet.l4proto,
                "nfproto": "ipv4" if packet.version == 4 else "ipv6"}[left["meta"]["key"]]
    if "payload" in left:
        p = left["payload"]
        proto, fld = p.get("protocol"), p.get("field")
        if proto in ("ip", "ip6") and fld == "saddr":
            return packet.saddr if (proto == "ip") == (packet.version == 4) else _NOMATCH
        if proto in ("tcp", "udp", "th") and fld == "dport":
            return packet.dport if proto in ("th", packet.l4proto) else _NOMATCH
        raise KeyError(f"payload {proto} {fld}")
    if "ct" in left and left["ct"].get("key") == "state":
        return packet.ct_state
    raise KeyError(str(left))


_NOMATCH = object()


def _member(value: Any, right: Any) -> bool:
    if isinstance(right, dict):
        if "set" in right:
            return any(_member(value, r) for r in right["set"])
        if "range" in right:
            lo, hi = right["range"]
            return _le(lo, value) and _le(value, hi)
        if "prefix" in right:
            net = ipaddress.ip_network(f"{right['prefix']['addr']}/{right['prefix']['len']}", strict=False)
            return isinstance(value, str) and _is_ip(value) and ipaddress.ip_address(value) in net
        raise KeyError(str(right))
    if isinstance(right, list):
        return any(_member(value, r) for r in right)
    if isinstance(value, str) and _is_ip(value) and isinstance(right, str) and _is_ip(right):
        return ipaddress.ip_address(value) == ipaddress.ip_address(right)
    return value == right


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _le(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str) and _is_ip(a) and _is_ip(b):
        x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
        return x.version == y.version and int(x) <= int(y)
    return a <= b


def _eval_match(match: dict, packet: Packet, family: str) -> bool:
    value = _value(match["left"], packet, family)
    if value is _NOMATCH:
        return False
    op = match.get("op", "==")
    hit = _member(value, match["right"])
    if op in ("==", "in"):
        return hit
    if op == "!=":
        return not hit
    raise KeyError(f"op {op}")


_PASSIVE = {"counter", "log", "limit", "comment", "meta_set", "notrack", "set", "mangle"}


def _eval_rule(rule: dict, packet: Packet) -> tuple[str | None, str | None]:
    """(verdict, jump target): 'accept', 'drop', 'reject', 'jump', 'goto', None (no
    match, or no verdict), or 'unknown' (a match not modelled)."""
    try:
        for stmt in rule.get("expr", []):
            if "match" in stmt:
                if not _eval_match(stmt["match"], packet, rule["family"]):
                    return None, None
            elif "accept" in stmt or "drop" in stmt or "reject" in stmt:
                return next(k for k in ("accept", "drop", "reject") if k in stmt), None
            elif "jump" in stmt or "goto" in stmt:
                kind = "jump" if "jump" in stmt else "goto"
                return kind, stmt[kind]["target"]
            elif "return" in stmt:
                return None, None
            elif not (set(stmt) <= _PASSIVE):
                raise KeyError(str(stmt))
    except (KeyError, TypeError, ValueError):
        return "unknown", None
    return None, None
