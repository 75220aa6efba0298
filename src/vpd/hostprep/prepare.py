"""`prepare` and `unprepare`: the library API behind `vpd host prepare|unprepare`,
and what the migration code calls before it migrates."""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ..connect.inventory import Host
from ..core.checks import Check
from ..core.errors import UsageError, VpdError
from . import firewall, firewalld, fqdn, known_hosts, socket_buffer, state
from .ports import LIBVIRT_PORTS, MIGRATION_PORTS, SSH_PORT
from .remote import address_of, run_command
from .report import Change, HostPrepReport

# What a migration needs to get through: SSH, libvirt (tcp, tls) and the first
# migration port, which libvirt hands out first.
REACH_PORTS = [SSH_PORT, *LIBVIRT_PORTS, MIGRATION_PORTS[0]]

# Opens the journal entry around one host's changes: record(operation, host, **args) -> a
# context manager whose value has a settable `result`.
Record = Callable[..., AbstractContextManager[Any]]


def _require_addresses(hosts: list[Host]) -> None:
    missing = sorted({h.name for h in hosts if not h.address})
    if missing:
        raise UsageError(f"no address in the inventory for {', '.join(missing)}",
                         hint='firewall rules and /etc/hosts lines need each host\'s address: '
                              'add address = "..." to its [[hosts]] entry')


def prepare(hosts: list[Host], peers: list[Host], dry_run: bool = False,
            set_fqdn: str | None = None, record: Record | None = None) -> list[HostPrepReport]:
    """Prepare each of `hosts` for migrations with the other hosts of `peers`:
    FQDN checks (and with `set_fqdn`, renaming the one host), then its firewall
    opened to those peers only, its TCP sockets' unsent bytes capped (socket_buffer.py),
    then a probe from each peer that it gets through.
    A dry run changes nothing and reports the changes it would make.

    `record(operation, host, **args)` opens the journal entry around one host's changes
    (hostprep.operations passes an Operation); none: not journaled. A dry run never is."""
    if not hosts:
        raise UsageError("no host to prepare")
    if set_fqdn is not None:
        if len(hosts) != 1:
            raise UsageError("--set-fqdn renames one host: name exactly one")
        fqdn.check_fqdn(set_fqdn)
    _require_addresses(hosts + peers)
    names: dict[str, str] = {}  # host name -> FQDN, shared so each host is asked once

    def one(host: Host) -> HostPrepReport:
        host_peers = [p for p in peers if p.name != host.name]
        report = HostPrepReport(host.name, dry_run)
        entry = nullcontext() if dry_run or record is None else record(
            "host.prepare", host, peers=[p.name for p in host_peers], set_fqdn=set_fqdn)
        try:
            with entry as op:
                _prepare_host(host, host_peers, report, names, set_fqdn)
                if op is not None:
                    op.result = report.to_dict()
        except VpdError as exc:
            report.error = str(exc)
        return report

    return _each(one, hosts)


def _each(fn, hosts: list[Host]) -> list[HostPrepReport]:
    """fn on every host at once: each host's work is a string of SSH round trips,
    and one host's changes never depend on another's."""
    with ThreadPoolExecutor(max_workers=min(len(hosts), 8)) as pool:
        return list(pool.map(fn, hosts))


def _prepare_host(host: Host, peers: list[Host], report: HostPrepReport, names: dict[str, str],
                  set_fqdn: str | None) -> None:
    if set_fqdn:
        changes, checks = fqdn.set_fqdn_plan(host, peers, set_fqdn, names)
        # Each peer's root reaches the host by its new name from now on (libvirtd's SSH hop of a
        # migration): it must trust the host's key under that name too.
        old_names = [names[host.name], host.name, host.address, host.fqdn]
        for peer in peers:
            change, found = known_hosts.change_for_rename(peer, host, set_fqdn, [n for n in old_names if n])
            checks += found
            if change:
                changes.append(change)
        report.checks += checks
        _apply(host, changes, report)
        if not report.dry_run:
            names[host.name] = set_fqdn
    report.checks += fqdn.resolution_checks(host, peers, names)
    plan = firewall.plan(host, peers)
    report.backend = plan.backend
    report.notes += plan.notes
    _apply(host, plan.changes, report)
    lowat, note = socket_buffer.plan(host)
    if note:
        report.notes.append(note)
    _apply(host, [lowat] if lowat else [], report)
    if not report.dry_run:
        report.checks += reach_checks(host, peers)


def _apply(host: Host, changes: list[Change], report: HostPrepReport) -> None:
    """Make each change and record it at once, so a failure half-way still leaves
    a full account for unprepare."""
    for change in changes:
        if report.dry_run:
            for command in change.commands:
                command.record_dry_run(change.on)
        else:
            if change.backup:
                state.backup(change.on.name, *change.backup)
            results = [run_command(change.on, c) for c in change.commands]
            record = dict(change.record)
            if change.kind == "firewalld-rules":
                present = firewalld.already_enabled(results[-1].stderr)
                record["rules"] = [r for r in record["rules"] if r not in present]
                if not record["rules"]:
                    continue  # all there already, only written differently: nothing of vpd's
            if change.on.name != host.name:
                record["target"] = change.on.model_dump(mode="json")
            state.add_record(host.name, record)
        report.changes.append(change)


def reach_checks(host: Host, peers: list[Host]) -> list[Check]:
    """From each peer, TCP connects to the ports a migration to `host` uses."""
    checks = []
    for peer in peers:
        states = firewall.probe_ports(peer, address_of(host), REACH_PORTS)
        blocked = [p for p, s in states.items() if not firewall.reachable(s)]
        detail = ", ".join(f"{p} {s}" for p, s in states.items())
        fix = None
        if blocked:
            fix = (f"something still filters {', '.join(map(str, blocked))}/tcp from {peer.name} to {host.name}: "
                   "iptables-legacy rules (vpd opens firewalld and nftables) or a firewall between the hosts")
        checks.append(Check(f"reach {peer.name}->{host.name}", not blocked, detail, fix))
    return checks


def unprepare(hosts: list[Host], record: Record | None = None) -> list[HostPrepReport]:
    """Remove exactly what `prepare` added to each host: its tagged nft rules,
    the firewalld rules and /etc/hosts lines it recorded, and a name it set.
    `record`: as for prepare."""
    def one(host: Host) -> HostPrepReport:
        report = HostPrepReport(host.name)
        try:
            with (nullcontext() if record is None else record("host.unprepare", host)) as op:
                _unprepare_host(host, report)
                if op is not None:
                    op.result = report.to_dict()
        except VpdError as exc:
            report.error = str(exc)
        return report

    return _each(one, hosts)


def _unprepare_host(host: Host, report: HostPrepReport) -> None:
    recs = state.records(host.name)
    remaining, errors = [], []
    try:
        report.changes += firewall.undo_nft(host)
    except VpdError as exc:
        errors.append(str(exc))
        remaining += [r for r in recs if r["kind"] == "nft-rule"]
    # Newest first: a hostname set after some /etc/hosts lines is restored before they go.
    for rec in reversed([r for r in recs if r["kind"] != "nft-rule"]):
        try:
            change = _undo(host, rec)
        except VpdError as exc:
            errors.append(str(exc))
            remaining.insert(0, rec)
            continue
        if change:
            report.changes.append(change)
    state.set_records(host.name, remaining)
    if not report.changes and not errors:
        report.notes.append("nothing to undo: no vpd-tagged rules and no recorded changes")
    if errors:
        raise VpdError("; ".join(errors), hint=f"what is left to undo stays in {state.state_file(host.name)}")


def _undo(host: Host, rec: dict) -> Change | None:
    on = Host(**rec["target"]) if "target" in rec else host
    if rec["kind"] == "firewalld-rules":
        return firewall.undo_firewalld(on, rec)
    if rec["kind"] == "hosts-lines":
        return fqdn.undo_hosts_lines(on, rec)
    if rec["kind"] == "hostname":
        return fqdn.undo_hostname(on, rec)
    if rec["kind"] == "known-hosts-lines":
        return known_hosts.undo_lines(on, rec)
    if rec["kind"] == "sysctl":
        return socket_buffer.undo(on, rec)
    raise VpdError(f"unknown change {rec['kind']!r} in {state.state_file(host.name)}")
