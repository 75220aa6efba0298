"""nftables, as pure functions over `nft -j -a list ruleset`: which input chains
drop by default, which rules vpd already added, and the rules it adds.

In nftables every base chain on a hook sees every packet, and an `accept` in
one base chain does not stop another from dropping it. So a table of vpd's own
cannot open a port; vpd inserts its accept rules at the top of each input base
chain that drops by default, tagged with a comment so they can be found and
removed by handle later."""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field

from ..core.errors import VpdError

TAG = "vpd-prepare"
FAMILIES = {"ip": 4, "ip6": 6, "inet": None}  # families whose input hook sees IP; None = both versions
# nft's own identifier syntax (its scanner): names outside it cannot be written on
# an nft command line, so vpd refuses them instead of passing them through.
_IDENT = re.compile(r"^[A-Za-z_.][A-Za-z0-9/_.-]{0,255}\Z")
_VERDICT_ONLY = {"counter", "log", "limit"}  # statements that do not match packets


@dataclass(frozen=True)
class Chain:
    family: str
    table: str
    name: str
    policy: str

    def __str__(self) -> str:
        return f"{self.family} {self.table} {self.name}"


@dataclass
class Rule:
    family: str
    table: str
    chain: str
    handle: int
    expr: list = field(default_factory=list)
    comment: str | None = None


@dataclass
class Ruleset:
    input_chains: list[Chain]  # base chains on the input hook of IP families
    rules: list[Rule]

    def rules_of(self, chain: Chain) -> list[Rule]:
        return [r for r in self.rules if (r.family, r.table, r.chain) == (chain.family, chain.table, chain.name)]

    def drops_by_default(self, chain: Chain) -> bool:
        """Policy drop, or a last rule that drops or rejects everything left (firewalld, iptables-nft)."""
        if chain.policy == "drop":
            return True
        rules = self.rules_of(chain)
        return bool(rules) and _catch_all_drop(rules[-1].expr)

    def closed_input_chains(self) -> list[Chain]:
        return [c for c in self.input_chains if self.drops_by_default(c)]

    def vpd_rules(self, tag: str = TAG) -> list[Rule]:
        return [r for r in self.rules if is_vpd_comment(r.comment, tag)]


def _catch_all_drop(expr: list) -> bool:
    keys = [next(iter(stmt)) for stmt in expr if isinstance(stmt, dict) and stmt]
    return bool(keys) and keys[-1] in ("drop", "reject") and all(k in _VERDICT_ONLY for k in keys[:-1])


def parse(text: str) -> Ruleset:
    """Parse `nft -j -a list ruleset` (handles included)."""
    try:
        items = json.loads(text)["nftables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VpdError(f"cannot read nft's JSON ruleset: {exc}") from None
    chains, rules = [], []
    for item in items:
        if "chain" in item:
            c = item["chain"]
            if c.get("hook") == "input" and c.get("family") in FAMILIES:
                chains.append(Chain(c["family"], c["table"], c["name"], c.get("policy", "accept")))
        elif "rule" in item:
            r = item["rule"]
            rules.append(Rule(r["family"], r["table"], r["chain"], int(r["handle"]), r.get("expr", []),
                              r.get("comment")))
    return Ruleset(chains, rules)


def comment_for(peer_name: str, address: str, tag: str = TAG) -> str:
    """`tag` tells whose rule it is: host preparation's (TAG), or another vpd feature's
    (e.g. an iSCSI target's), which `unprepare` then leaves alone."""
    return f"{tag} {peer_name} {ipaddress.ip_address(address)}"


def is_vpd_comment(comment: str | None, tag: str = TAG) -> bool:
    return comment is not None and comment.startswith(tag + " ")


def port_set(ports: tuple[tuple[int, int], ...]) -> str:
    return "{ " + ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ports) + " }"


def _check_ident(name: str, what: str) -> str:
    if not _IDENT.fullmatch(name):
        raise VpdError(f"nftables {what} {name!r} cannot be written on an nft command line",
                       hint="open the ports by hand, or rename the table/chain")
    return name


def accept_argv(chain: Chain, peer_name: str, address: str,
                ports: tuple[tuple[int, int], ...], *, proto: str = "tcp", tag: str = TAG) -> list[str] | None:
    """`nft insert rule ...` admitting `address` to `ports` at the top of `chain`;
    None when the chain's family cannot see that address's IP version."""
    ip = ipaddress.ip_address(address)
    if FAMILIES[chain.family] not in (None, ip.version):
        return None
    return ["nft", "insert", "rule", chain.family, _check_ident(chain.table, "table"),
            _check_ident(chain.name, "chain"), "ip" if ip.version == 4 else "ip6", "saddr", str(ip),
            proto, "dport", port_set(ports), "accept", "comment", f'"{comment_for(peer_name, address, tag)}"']


def delete_argv(rule: Rule) -> list[str]:
    return ["nft", "delete", "rule", rule.family, _check_ident(rule.table, "table"),
            _check_ident(rule.chain, "chain"), "handle", str(rule.handle)]


def plan(ruleset: Ruleset, peers: list[tuple[str, str]], ports: tuple[tuple[int, int], ...], *,
         proto: str = "tcp", tag: str = TAG) -> list[tuple[Chain, str, str, list[str]]]:
    """(chain, peer name, address, argv) for each accept rule still missing."""
    if proto not in ("tcp", "udp"):
        raise VpdError(f"unsupported protocol {proto!r}")
    out = []
    for chain in ruleset.closed_input_chains():
        present = {r.comment for r in ruleset.rules_of(chain)}
        for name, address in peers:
            argv = accept_argv(chain, name, address, ports, proto=proto, tag=tag)
            if argv and comment_for(name, address, tag) not in present:
                out.append((chain, name, address, argv))
    return out
