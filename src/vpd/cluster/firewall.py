"""Opening the cluster's ports on a member to the other members only: pcsd
(2224/tcp), corosync's knet (5405/udp), and what Pacemaker's live migrations
of VirtualDomain resources need (libvirt 16509/tcp and the migration range of
hostprep/ports.py). The same backends as `vpd host prepare` (firewalld rich
rules with a source address, or nft rules inserted at the top of each input
chain that drops), under tags of their own so that `host unprepare` and
`cluster destroy` never remove each other's rules."""
from __future__ import annotations

from ..connect.inventory import Host
from ..connect.ssh import NOT_FOUND
from ..core.errors import VpdError
from ..hostprep import firewall as hostfw
from ..hostprep import firewalld, nft
from ..hostprep.ports import LIBVIRT_PORTS
from ..hostprep.ports import MIGRATION_PORTS as MIGRATION_RANGE
from ..hostprep.remote import run

PCSD_PORTS = ((2224, 2224),)
COROSYNC_PORTS = ((5405, 5405),)
MIGRATION_PORTS = ((LIBVIRT_PORTS[0], LIBVIRT_PORTS[0]), MIGRATION_RANGE)
PORTS_BY_PROTO = {"tcp": PCSD_PORTS + MIGRATION_PORTS, "udp": COROSYNC_PORTS}
TAGS = {"tcp": "vpd-cluster-tcp", "udp": "vpd-cluster-udp"}


def open_ports(host: Host, peers: list[Host]) -> list[dict]:
    """Admit `peers` to the cluster ports on `host`; returns what to undo."""
    if hostfw.firewalld_running(host):
        return _open_firewalld(host, peers)
    listing = run(host, ["nft", "-j", "-a", "list", "ruleset"], check=False)
    if listing.returncode == NOT_FOUND:
        return []
    if not listing.ok:
        raise VpdError(f"{host.name}: nft list ruleset failed: {listing.stderr.strip()}")
    ruleset = nft.parse(listing.stdout)
    added = False
    for proto, ports in PORTS_BY_PROTO.items():
        for _chain, _name, _address, argv in nft.plan(ruleset, [(p.name, p.address) for p in peers], ports,
                                                     proto=proto, tag=TAGS[proto]):
            run(host, argv)
            added = True
    return [{"kind": "nft"}] if added else []


def _open_firewalld(host: Host, peers: list[Host]) -> list[dict]:
    zones: dict[str, str] = {}
    records = []
    for peer in peers:
        zone = hostfw._zone_for(host, peer.address, zones)
        rules = [r for proto, ports in PORTS_BY_PROTO.items() for r in firewalld.rich_rules(peer.address, ports, proto)]
        for permanent in (False, True):
            listing = ["firewall-cmd", *(["--permanent"] if permanent else []), f"--zone={zone}", "--list-rich-rules"]
            missing = [r for r in rules if r not in firewalld.listed(run(host, listing).stdout)]
            if missing:
                run(host, firewalld.add_argv(zone, missing, permanent))
                records.append({"kind": "firewalld", "zone": zone, "permanent": permanent, "rules": missing})
    return records


def close_ports(host: Host, records: list[dict]) -> None:
    for rec in records:
        if rec["kind"] == "firewalld":
            run(host, firewalld.remove_argv(rec["zone"], rec["rules"], rec["permanent"]), check=False)
        elif rec["kind"] == "nft":
            listing = run(host, ["nft", "-j", "-a", "list", "ruleset"], check=False)
            if listing.ok:
                ruleset = nft.parse(listing.stdout)
                for tag in TAGS.values():
                    for rule in ruleset.vpd_rules(tag):
                        run(host, nft.delete_argv(rule), check=False)
