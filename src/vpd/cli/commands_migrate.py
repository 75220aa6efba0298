from __future__ import annotations

import click

from ..core import journal
from ..migration.migrate import MigrateOptions, migrate, raise_for
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, progress, table


@cli.command("migrate")
@click.argument("name")
@click.option("--to", "dst_name", required=True, help="Destination host.")
@click.option("--from", "src_name", help="Source host (default: the host the VM runs on).")
@click.option("--live/--offline", "live", default=None, help="Default: live if running, offline if not.")
@click.option("--persistent", is_flag=True, help="Define it persistently on the destination.")
@click.option("--undefinesource", is_flag=True, help="Remove its definition from the source.")
@click.option("--copy-storage", is_flag=True, help="No shared storage: copy the disks with the guest.")
@click.option("--max-downtime", "max_downtime_ms", default=300, show_default=True, type=int, help="ms")
@click.option("--bandwidth", "bandwidth_mib", type=int, help="MiB/s cap.")
@click.option("--auto-converge", is_flag=True)
@click.option("--postcopy", is_flag=True)
@click.option("--compressed", is_flag=True)
@click.option("--timeout", "timeout_s", type=float, help="Seconds before --timeout-action.")
@click.option("--timeout-action", type=click.Choice(["abort", "postcopy", "suspend"]), default="abort", show_default=True)
@click.option("--stall", "stall_s", default=30.0, show_default=True, type=float,
              help="Abort when no data moves for this many seconds.")
@click.option("--dry-run", is_flag=True, help="Run the preflight and show the plan; change nothing.")
@json_option
@click.pass_context
@handle_errors
def migrate_cmd(ctx, name, dst_name, src_name, live, persistent, undefinesource, copy_storage, max_downtime_ms,
                bandwidth_mib, auto_converge, postcopy, compressed, timeout_s, timeout_action, stall_s, dry_run,
                as_json) -> None:
    """Migrate a VM to another host: preflight, temporary access, job, validation, report."""
    opts = MigrateOptions(live=live, persistent=persistent, undefine_source=undefinesource, copy_storage=copy_storage,
                          max_downtime_ms=max_downtime_ms, bandwidth_mib=bandwidth_mib, auto_converge=auto_converge,
                          postcopy=postcopy, compressed=compressed, timeout_s=timeout_s,
                          timeout_action=timeout_action, stall_s=stall_s, dry_run=dry_run)
    inv = context.inventory(ctx)
    dst = inv.get(dst_name)
    conns = context.connections(ctx)
    src = inv.get(src_name) if src_name else _locate(conns, inv, name)
    with journal.record("migrate", target=f"{src.name}/{name}->{dst.name}", **vars(opts)) as entry, \
            progress(not as_json):
        report = migrate(conns, src, dst, name, opts)
        entry.result = report.to_dict()
        if as_json:
            emit_json(report.to_dict())
        else:
            print_report(report)
        raise_for(report)


def _locate(conns, inv, name: str):
    """The host where the VM runs; else the one host that defines it."""
    from ..core.errors import NotFound, UsageError
    from ..vm.inventory import list_vms

    found = [(h.host, v.state) for h in list_vms(conns, inv.hosts, include_inactive=True) for v in h.vms
             if v.name == name]
    running = [host for host, state in found if state in ("running", "paused")]
    if running:
        return inv.get(running[0])
    if len(found) == 1:
        return inv.get(found[0][0])
    if not found:
        raise NotFound(f"no VM named {name!r} on any host", hint="`vpd vm list --all`")
    raise UsageError(f"{name} is defined on {', '.join(h for h, _ in found)} and runs nowhere",
                     hint="say which one with --from HOST")


def print_report(report) -> None:
    table(f"preflight: {report.vm} {report.source} -> {report.destination} ({report.mode})",
          ["check", "ok", "detail", "fix"],
          [[c.name, "yes" if c.ok else ("NO" if c.blocking else "warn"), c.detail, c.fix] for c in report.preflight])
    if report.validation:
        table("validation", ["check", "ok", "detail"],
              [[c.name, "yes" if c.ok else "NO", c.detail] for c in report.validation])
    if report.dry_run:
        console.print(f"dry run: flags {' '.join(report.flags)}; nothing changed")
        return
    if report.job_seconds is not None:
        sent = f"{report.bytes_sent / 2**20:.1f} MiB" if report.bytes_sent else "-"
        console.print(f"total {report.total_seconds} s, job {report.job_seconds} s, downtime "
                      f"{report.downtime_ms if report.downtime_ms is not None else '-'} ms, sent {sent}, "
                      f"iterations {report.iterations or '-'}; flags {' '.join(report.flags)}", highlight=False)
    for step in report.policy_steps:
        console.print(f"  policy: {step}", highlight=False)
    if report.grant:
        console.print(f"temporary access {report.grant} granted and revoked", highlight=False)
    if report.ok:
        console.print(f"[green]{report.vm} now runs on {report.destination}[/]")


@cli.command("history")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@json_option
@handle_errors
def history_cmd(limit: int, as_json: bool) -> None:
    """Past migrations with their reports (from the journal)."""
    rows = journal.entries(limit, "migrate")
    if as_json:
        emit_json(rows)
        return
    table("migrations", ["id", "target", "status", "downtime ms", "total s", "error"],
          [[r["id"], r["target"], r["status"], (r["result"] or {}).get("downtime_ms"),
            (r["result"] or {}).get("total_seconds"), (r["result"] or {}).get("error")] for r in rows])
