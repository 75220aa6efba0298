"""Seed task 2: admit the peer hosts, and only them, to SSH, libvirt and the
migration ports: through firewall-cmd where firewalld runs, through nft
otherwise. And a TCP probe, run from a host, that tells whether a port gets
through a firewall."""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

from ..connect.inventory import Host
from ..connect.ssh import NOT_FOUND
from ..core.errors import VpdError
from . import firewalld, nft
from .ports import PEER_PORTS, port_range_text
from .remote import Command, address_of, run
from .report import Change

NFTABLES, FIREWALLD, NONE = "nftables", "firewalld", "none"


def _ports_text() -> str:
    return ", ".join(port_range_text(p) for p in PEER_PORTS) + "/tcp"


@dataclass
class FirewallPlan:
    backend: str
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def firewalld_running(host: Host) -> bool:
    result = run(host, ["firewall-cmd", "--state"], check=False)
    return result.ok and result.stdout.strip() == "running"


def plan(host: Host, peers: list[Host]) -> FirewallPlan:
    """The changes that admit `peers` on `host`; none for what is already there."""
    if firewalld_running(host):
        return _plan_firewalld(host, peers)
    listing = run(host, ["nft", "-j", "-a", "list", "ruleset"], check=False)
    if listing.returncode == NOT_FOUND:
        return FirewallPlan(NONE, notes=["neither firewalld nor nft runs here: nothing to open "
                                         "(the reach checks show whether anything else filters)"])
    if not listing.ok:
        raise VpdError(f"{host.name}: nft list ruleset failed: {listing.stderr.strip()}")
    return _plan_nft(host, peers, nft.parse(listing.stdout))


def _plan_nft(host: Host, peers: list[Host], ruleset: nft.Ruleset) -> FirewallPlan:
    closed = ruleset.closed_input_chains()
    if not closed:
        return FirewallPlan(NFTABLES, notes=["nftables: no input chain drops by default, nothing to open"])
    changes = [
        Change(host, "nft-rule", f"admit {name} ({address}) to {_ports_text()} in {chain}", [Command(tuple(argv))],
               {"kind": "nft-rule", "on": host.name, "chain": str(chain), "comment": nft.comment_for(name, address)})
        for chain, name, address, argv in nft.plan(ruleset, [(p.name, address_of(p)) for p in peers], PEER_PORTS)
    ]
    return FirewallPlan(NFTABLES, changes,
                        ["nftables: input chains that drop by default: " + "; ".join(map(str, closed))])


def _zone_for(host: Host, address: str, zones: dict[str, str]) -> str:
    """The zone of the interface that reaches `address` (else the default zone,
    which firewalld applies to interfaces bound to none)."""
    route = run(host, ["ip", "-j", "route", "get", address])
    try:
        dev = json.loads(route.stdout)[0]["dev"]
    except (ValueError, LookupError) as exc:
        raise VpdError(f"{host.name}: no route to {address} ({exc})") from None
    if dev not in zones:
        answer = run(host, ["firewall-cmd", f"--get-zone-of-interface={dev}"], check=False)
        zone = answer.stdout.strip() if answer.ok else run(host, ["firewall-cmd", "--get-default-zone"]).stdout.strip()
        zones[dev] = firewalld.check_zone(zone)
    return zones[dev]


def _plan_firewalld(host: Host, peers: list[Host]) -> FirewallPlan:
    zones: dict[str, str] = {}
    by_zone: dict[str, list[Host]] = {}
    for peer in peers:
        by_zone.setdefault(_zone_for(host, address_of(peer), zones), []).append(peer)
    changes = []
    # Runtime and permanent both, instead of permanent + --reload: a reload would
    # also drop every runtime-only rule that someone else added.
    for zone, zone_peers in by_zone.items():
        wanted = [r for p in zone_peers for r in firewalld.rich_rules(address_of(p), PEER_PORTS)]
        for permanent in (False, True):
            listing = ["firewall-cmd", *(["--permanent"] if permanent else []), f"--zone={zone}", "--list-rich-rules"]
            have = firewalld.listed(run(host, listing).stdout)
            missing = [r for r in wanted if r not in have]
            if missing:
                layer = "permanent" if permanent else "runtime"
                changes.append(Change(
                    host, "firewalld-rules",
                    f"admit {', '.join(p.name for p in zone_peers)} in zone {zone} ({layer}): "
                    f"{len(missing)} rich rule{'s' if len(missing) > 1 else ''} for {_ports_text()}",
                    [Command(tuple(firewalld.add_argv(zone, missing, permanent)))],
                    {"kind": "firewalld-rules", "on": host.name, "zone": zone, "permanent": permanent,
                     "rules": missing}))
    notes = [f"firewalld: peers reach it through zone {', '.join(sorted(by_zone))}"] if by_zone else []
    return FirewallPlan(FIREWALLD, changes, notes)


# --- undoing -----------------------------------------------------------------------

def undo_nft(host: Host) -> list[Change]:
    """Delete every rule vpd tagged, found by its comment and deleted by handle."""
    listing = run(host, ["nft", "-j", "-a", "list", "ruleset"], check=False)
    if listing.returncode == NOT_FOUND:
        return []
    if not listing.ok:
        raise VpdError(f"{host.name}: nft list ruleset failed: {listing.stderr.strip()}")
    changes = []
    for rule in nft.parse(listing.stdout).vpd_rules():
        command = Command(tuple(nft.delete_argv(rule)))
        run(host, command.argv)
        changes.append(Change(host, "nft-rule", f"delete {rule.comment!r} from "
                                                f"{rule.family} {rule.table} {rule.chain}", [command]))
    return changes


def undo_firewalld(host: Host, record: dict) -> Change | None:
    command = Command(tuple(firewalld.remove_argv(record["zone"], record["rules"], record["permanent"])))
    result = run(host, command.argv, check=False)
    if not result.ok:
        raise VpdError(f"{host.name}: cannot remove vpd's rules from firewalld zone {record['zone']}: "
                       f"{result.stderr.strip() or result.stdout.strip()}",
                       hint="firewalld must run for that: start it and run `vpd host unprepare` again")
    if set(record["rules"]) <= firewalld.not_enabled(result.stderr):
        return None  # someone removed them already
    layer = "permanent" if record["permanent"] else "runtime"
    return Change(host, "firewalld-rules", f"remove {len(record['rules'])} rich rules from zone "
                                           f"{record['zone']} ({layer})", [command])


# --- probing -----------------------------------------------------------------------

OPEN = "open"  # something listens and the firewall let the connection through
REFUSED = "refused"  # nothing listens, but the firewall let the SYN through
FILTERED = "filtered"  # no answer: a firewall drops it
UNREACHABLE = "unreachable"  # an ICMP error: a firewall that rejects, or no route/host

# Runs on the source host as `python3 -c PROBE ADDRESS TIMEOUT PORT...`: data only
# in argv, all ports probed at once so a filtered port costs one timeout.
PROBE = """\
import socket, sys, threading
address, timeout = sys.argv[1], float(sys.argv[2])
states = {}
def probe(port):
    s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    s.settimeout(timeout)
    try:
        s.connect((address, port))
        states[port] = "open"
    except socket.timeout:
        states[port] = "filtered"
    except ConnectionRefusedError:
        states[port] = "refused"
    except OSError:
        states[port] = "unreachable"
    finally:
        s.close()
threads = [threading.Thread(target=probe, args=(int(p),)) for p in sys.argv[3:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(" ".join("%d=%s" % (p, states[p]) for p in sorted(states)))
"""


def parse_probe(text: str) -> dict[int, str]:
    out = {}
    for item in text.split():
        port, _, state = item.partition("=")
        if state not in (OPEN, REFUSED, FILTERED, UNREACHABLE):
            raise VpdError(f"unexpected port probe answer {text.strip()!r}")
        out[int(port)] = state
    return out


def probe_ports(src: Host, dst_address: str, ports: list[int], timeout: float = 2.0) -> dict[int, str]:
    """TCP connects from `src` to each port of `dst_address`: port -> OPEN, REFUSED, FILTERED or UNREACHABLE."""
    address = str(ipaddress.ip_address(dst_address))
    if not ports or not all(0 < p < 65536 for p in ports):
        raise VpdError(f"invalid ports to probe: {ports}")
    result = run(src, ["python3", "-c", PROBE, address, f"{timeout:g}", *map(str, ports)],
                 check=False, timeout=timeout + 30, reads=True)
    if result.returncode == NOT_FOUND:
        raise VpdError(f"{src.name}: the port probe needs python3 there")
    if not result.ok:
        raise VpdError(f"{src.name}: port probe failed: {result.stderr.strip()}")
    return parse_probe(result.stdout)


def reachable(state: str) -> bool:
    """Through the firewall: a refused connection got as far as the host's TCP stack."""
    return state in (OPEN, REFUSED)


def port_probe(src: Host, dst_address: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a TCP connection from `src` reaches `port` of `dst_address` through
    every firewall on the way (probe_ports tells how it failed)."""
    return reachable(probe_ports(src, dst_address, [port], timeout)[port])
