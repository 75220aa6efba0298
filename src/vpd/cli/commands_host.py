"""`vpd host list|prepare|unprepare|drain|maintenance`: parse, call the library, render."""
from __future__ import annotations

import click
from rich.text import Text

from ..host.facts import list_hosts
from ..hostprep import operations as hostprep_ops
from ..ops import require_an_answer
from ..ops.results import jsonable
from .command import command, say
from .main import cli
from .render import console, table


@cli.group()
def host() -> None:
    """Hosts of the inventory."""


def _render_list(r: dict) -> None:
    table(f"hosts ({r['inventory']})",
          ["host", "reachable", "FQDN", "libvirt", "QEMU", "arch/CPU", "mem free/total MiB", "VMs run/all", "accel"],
          [[f["name"], "yes" if f["reachable"] else "NO", f["fqdn"], f["libvirt_version"], f["qemu_version"],
            f"{f['arch']}/{f['cpu_model']}" if f["reachable"] else None,
            f"{f['memory_free_mib']}/{f['memory_total_mib']}" if f["reachable"] else None,
            f"{f['vms_running']}/{f['vms_total']}" if f["reachable"] else None, f["accel"]] for f in r["hosts"]])
    for f in r["hosts"]:
        if not f["reachable"]:
            say(f"{f['name']}: {f['error']}", "red")
        elif f["versions_ok"] is False:
            say(f"{f['name']}: libvirt {f['libvirt_version']} / QEMU {f['qemu_version']} is older than "
                "vpd needs (libvirt >= 11, QEMU >= 10: QEMU 7.2 corrupts guests migrated under TCG); "
                "on Debian 12 install them from bookworm-backports (scripts/setup.sh does)", "yellow")


@command(host, "list", render=_render_list, bars=False, readonly=True)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
def host_list(session, names: tuple[str, ...]):
    """Each host: reachable, FQDN, libvirt/QEMU versions, CPU, memory, VMs, KVM or TCG."""
    facts = list_hosts(session.conns, session.hosts(names))
    return require_an_answer({"inventory": session.inventory.source, "hosts": [f.to_dict() for f in facts]},
                             [f.error or (None if f.reachable else "unreachable") for f in facts])


@command(host, "prepare", render=lambda r: _render_reports(r), bars=False)
@click.argument("names", metavar="HOST...", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Print the changes (the exact commands) and change nothing.")
@click.option("--set-fqdn", "fqdn_name", metavar="NAME",
              help="Rename the (one) host to this FQDN and add the /etc/hosts lines that are missing.")
def host_prepare(session, names: tuple[str, ...], dry_run: bool, fqdn_name: str | None):
    """Make hosts ready for live migration between them.

    Checks that each host has a unique FQDN that every peer resolves, and opens
    SSH (22), libvirt (16509, 16514) and the migration ports (49152-49216/tcp)
    to the peer hosts only: the other hosts named, or with one host named, the
    rest of the inventory. firewalld where it runs, nftables otherwise."""
    return hostprep_ops.prepare(session, names, dry_run=dry_run, set_fqdn=fqdn_name)


@command(host, "unprepare", render=lambda r: _render_reports(r), bars=False)
@click.argument("names", metavar="HOST...", nargs=-1, required=True)
def host_unprepare(session, names: tuple[str, ...]):
    """Remove exactly what `vpd host prepare` added to these hosts, and nothing else."""
    return hostprep_ops.unprepare(session, names)


def _render_reports(result: dict) -> None:
    for r in result["hosts"]:
        done = ("dry run: nothing was changed" if r["dry_run"] else "prepared") if result["action"] == "prepare" \
            else "unprepared"
        _render_report(r, done)


def _render_report(r: dict, done: str) -> None:
    heading = r["host"] + (f" (firewall: {r['backend']})" if r["backend"] else "")
    if r["checks"]:
        table(f"{heading}: checks", ["check", "ok", "detail", "fix"],
              [[c["name"], "yes" if c["ok"] else ("NO" if c["blocking"] else "warn"), c["detail"], c["fix"]]
               for c in r["checks"]])
    if r["changes"]:
        table(f"{heading}: {'changes to make' if r['dry_run'] else 'changes made'}", ["#", "on", "change"],
              [[i, c["on"], c["summary"]] for i, c in enumerate(r["changes"], 1)])
        # The exact commands, unwrapped so they can be copied.
        for i, c in enumerate(r["changes"], 1):
            for cmd in c["commands"]:
                say(f"  [{i}] $ {cmd}")
    for note in r["notes"]:
        say(f"{r['host']}: {note}", "dim")
    if r["error"]:
        console.print(Text.assemble((f"{r['host']}: error:", "bold red"), " ", r["error"]), highlight=False,
                      soft_wrap=True)
    elif r["ok"]:
        say(f"{r['host']}: {done}" + ("" if r["changes"] else " (no changes needed)"))
    else:
        say(f"{r['host']}: checks failed", "red")


def _targets(to: str) -> list[str] | None:
    return None if to == "auto" else [t.strip() for t in to.split(",") if t.strip()]


def _render_plan(plan: dict, title: str) -> None:
    table(title, ["VM", "from", "to", "why"],
          [[p["vm"], p["source"], p["host"] or "NOT placed", p["reason"]] for p in plan["placements"]])


def _render_drain(r) -> None:
    r = jsonable(r)  # a DrainResult, also when a failed drain attaches it to its error
    _render_plan(r["plan"], f"drain {r['host']}: plan")
    if r.get("parallel_reason"):
        say(f"migrations at once: {r['parallel_reason']}")
    if r["dry_run"]:
        say("dry run: nothing was moved")
        return
    if r["results"]:
        table(f"drain {r['host']}: results", ["VM", "to", "moved", "stage", "now on", "mode", "downtime ms", "s",
                                              "error"],
              [[x["vm"], x["destination"], "yes" if x["moved"] else "NO", x["stage"],
                ", ".join(f"{h} ({s})" for h, s in x.get("on", {}).items()) or "?", x["mode"], x["downtime_ms"],
                x["seconds"], x["error"]] for x in r["results"]])
    if r.get("phase_seconds"):
        say("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["phase_seconds"].items()))
    say(f"{r['host']}: {len(r['moved'])} moved, {len(r['not_moved'])} not moved ({r['seconds']} s)",
        "red" if r["not_moved"] else "green")


@command(host, "drain", render=_render_drain)
@click.argument("name", metavar="HOST")
@click.option("--to", "to", default="auto", show_default=True, metavar="auto|H1,H2",
              help="Where the VMs may go: auto (every other host) or these hosts; placement picks among them.")
@click.option("--parallel", type=click.IntRange(1, 16), default=None,
              help="Migration jobs at once on the link, as many more running their checks meanwhile "
                   "(default: as many as the source's link carries at twice the guests' measured dirty "
                   "rates, at most 2 per source CPU).")
@click.option("--include-stopped", is_flag=True, help="Move stopped VMs' definitions too (cold).")
@click.option("--max-downtime", "max_downtime_ms", default=300, show_default=True, type=int, help="ms, per VM.")
@click.option("--compression", type=click.Choice(["none", "zstd"]), default="none", show_default=True,
              help="zstd: pages compressed over multifd connections, for a slow link and idle CPUs.")
@click.option("--dry-run", is_flag=True, help="Print the plan (which VM goes where, and why) and move nothing.")
def host_drain(session, name, to, parallel, include_stopped, max_downtime_ms, compression, dry_run):
    """Move every running VM off HOST, each with vpd migrate's preflight, access, validation and report.

    Placement (free memory after overhead, vCPU commitment, CPU, storage, anti-affinity groups,
    hosts in maintenance) chooses each VM's host. A VM refused (no host, a failed preflight) is
    reported and the others still move; exit 1 if any VM did not move."""
    from ..migration.drain import drain

    return drain(session, name, _targets(to), parallel=parallel, include_stopped=include_stopped,
                 dry_run=dry_run, options={"max_downtime_ms": max_downtime_ms, "compression": compression})


def _render_maintenance(r: dict) -> None:
    if r.get("standby"):
        say(f"{r['host']}: cluster {r['cluster']} member {'in standby' if r['maintenance'] else 'back from standby'}")
    if r.get("drain") and "plan" in r["drain"]:
        _render_drain(r["drain"])
    elif r.get("drain"):
        say(f"{r['host']}: drain failed: {r['drain'].get('error')}", "red")
    if r["maintenance"]:
        say(f"{r['host']}: in maintenance (vpd places no VM there; `vpd host maintenance off {r['host']}` ends it)")
    else:
        say(f"{r['host']}: back in service" + ("" if r.get("was_on") else " (it was not in maintenance)"))


@command(host, "maintenance", render=_render_maintenance)
@click.argument("state", type=click.Choice(["on", "off"]))
@click.argument("name", metavar="HOST")
@click.option("--to", "to", default="auto", show_default=True, metavar="auto|H1,H2",
              help="on: where its VMs may go.")
@click.option("--include-stopped", is_flag=True, help="on: move stopped VMs' definitions too.")
@click.option("--parallel", type=click.IntRange(1, 16), default=None,
              help="on: migrations at once (default: chosen as `host drain` does).")
def host_maintenance(session, state, name, to, include_stopped, parallel):
    """on: mark HOST (vpd places nothing there), standby when it is a cluster member, drain it.
    off: clear the mark (and the standby); VMs are not moved back."""
    from ..cluster.maintenance import maintenance

    return maintenance(session, name, state == "on", _targets(to), include_stopped, parallel=parallel)


@command(host, "maintenance-list", render=lambda r: table("hosts in maintenance", ["host", "since", "reason"],
                                                         [[h, v["since"], v["reason"]] for h, v in r.items()]),
         bars=False, readonly=True)
def host_maintenance_list(session):
    """Hosts vpd keeps in maintenance."""
    from ..host.maintenance import marked

    return marked()


@host.group("check")
def host_check() -> None:
    """Read-only audits of hosts."""


def _render_security(r: dict) -> None:
    for h in r["hosts"]:
        if h["error"]:
            say(f"{h['host']}: {h['error']}", "red")
            continue
        table(f"{h['host']}: security", ["check", "ok", "evidence", "fix"],
              [[c["name"], "yes" if c["ok"] else "NO", c["detail"], c["fix"]] for c in h["checks"]])
        if h.get("note"):
            say(f"{h['host']}: {h['note']}", "dim")


@command(host_check, "security", render=_render_security, bars=False, readonly=True)
@click.argument("names", metavar="HOST...", nargs=-1)
def host_check_security(session, names: tuple[str, ...]):
    """sVirt and exposure: libvirt's security driver and its mode (getenforce, aa-status), each running
    VM's label and disk files (permissions, svirt_image_t), SELinux booleans the pools need,
    libvirtd on TCP without auth, graphics open without a password. Read-only; every host of the
    inventory when none is named."""
    from ..host.security import check_hosts

    found = check_hosts(session, session.hosts(names))
    return require_an_answer({"hosts": found}, [h["error"] for h in found])
