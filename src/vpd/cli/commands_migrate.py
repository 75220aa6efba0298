from __future__ import annotations

import click

from ..core import journal
from ..migration.migrate import MigrateOptions
from ..migration.operations import migrate_vm
from .command import command, say
from .main import cli
from .render import table


@command(cli, "migrate", render=lambda report: print_report(report))
@click.argument("name")
@click.option("--to", "dst_name", required=True,
              help="Destination host (inventory name, FQDN or address), or auto: the host placement picks "
                   "(as vpd host drain does).")
@click.option("--from", "src_name", help="Source host (default: the host the VM runs on).")
@click.option("--live/--offline", "live", default=None, help="Default: live if running, offline if not.")
@click.option("--persistent", is_flag=True, help="Define it persistently on the destination.")
@click.option("--undefinesource", is_flag=True, help="Remove its definition from the source.")
@click.option("--copy-storage", is_flag=True, help="No shared storage: copy the disks with the guest.")
@click.option("--max-downtime", "max_downtime_ms", default=300, show_default=True, type=int, help="ms")
@click.option("--bandwidth", "bandwidth_mib", type=int, help="MiB/s cap.")
@click.option("--auto-converge", is_flag=True)
@click.option("--postcopy", is_flag=True)
@click.option("--compressed", is_flag=True, help="libvirt's default compression (xbzrle), as virsh's.")
@click.option("--compression", type=click.Choice(["none", "zstd"]), default="none", show_default=True,
              help="zstd: pages compressed over multifd connections (for a slow link; the pause is less even).")
@click.option("--timeout", "timeout_s", type=float, help="Seconds before --timeout-action.")
@click.option("--timeout-action", type=click.Choice(["abort", "postcopy", "suspend"]), default="abort",
              show_default=True)
@click.option("--stall", "stall_s", default=30.0, show_default=True, type=float,
              help="Abort when no data moves for this many seconds.")
@click.option("--dry-run", is_flag=True, help="Run the preflight and show the plan; change nothing.")
def migrate_cmd(session, name, dst_name, src_name, live, persistent, undefinesource, copy_storage, max_downtime_ms,
                bandwidth_mib, auto_converge, postcopy, compressed, compression, timeout_s, timeout_action, stall_s,
                dry_run):
    """Migrate a VM to another host: preflight, temporary access, job, validation, report."""
    opts = MigrateOptions(live=live, persistent=persistent, undefine_source=undefinesource, copy_storage=copy_storage,
                          max_downtime_ms=max_downtime_ms, bandwidth_mib=bandwidth_mib, auto_converge=auto_converge,
                          postcopy=postcopy, compressed=compressed, compression=compression, timeout_s=timeout_s,
                          timeout_action=timeout_action, stall_s=stall_s, dry_run=dry_run)
    return migrate_vm(session, name, dst_name, opts, src_name)


def print_report(report) -> None:
    table(f"preflight: {report.vm} {report.source} -> {report.destination} ({report.mode})",
          ["check", "ok", "detail", "fix"],
          [[c.name, "yes" if c.ok else ("NO" if c.blocking else "warn"), c.detail, c.fix] for c in report.preflight])
    if report.validation:
        table("validation", ["check", "ok", "detail"],
              [[c.name, "yes" if c.ok else "NO", c.detail] for c in report.validation])
    if report.dry_run:
        say(f"dry run: flags {' '.join(report.flags)}; nothing changed")
        return
    if report.job_seconds is not None:
        sent = f"{report.bytes_sent / 2**20:.1f} MiB" if report.bytes_sent else "-"
        say(f"total {report.total_seconds} s, job {report.job_seconds} s, downtime "
            f"{report.downtime_ms if report.downtime_ms is not None else '-'} ms, sent {sent}, "
            f"iterations {report.iterations or '-'}; flags {' '.join(report.flags)}")
    for step in report.policy_steps:
        say(f"  policy: {step}")
    if report.grant:
        say(f"temporary access {report.grant} granted and revoked")
    if report.ok:
        say(f"{report.vm} now runs on {report.destination}", "green")


def _render_history(rows: list[dict]) -> None:
    table("migrations", ["id", "target", "status", "downtime ms", "total s", "error"],
          [[r["id"], r["target"], r["status"], (r["result"] or {}).get("downtime_ms"),
            (r["result"] or {}).get("total_seconds"), (r["result"] or {}).get("error")] for r in rows])


@command(cli, "history", render=_render_history, bars=False, readonly=True)
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
def history_cmd(session, limit: int):
    """Past migrations with their reports (from the journal)."""
    return journal.entries(limit, "migrate")
