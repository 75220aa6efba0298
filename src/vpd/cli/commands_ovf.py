"""`vpd export` and `vpd import`: VMs as OVF packages (a directory or an OVA). Parse, call
vpd.ovf.operations, render."""
from __future__ import annotations

from pathlib import Path

import click

from ..core.errors import UsageError
from ..ovf import operations as ovf_ops
from .command import command, host_option, say
from .main import LocalPath, cli


def _render_exported(r: dict) -> None:
    size = sum(f["size"] for f in r["files"])
    say(f"{r['vm']} exported to {r['package']} ({r['kind'].upper()}, {len(r['files'])} files, "
        f"{size / 2**20:.1f} MiB, {r['seconds']} s)")
    for note in r["notes"]:
        say(f"  note: {note}")


@command(cli, "export", render=_render_exported)
@click.argument("vm")
@host_option()
@click.option("--ovf", "ovf_dir", type=LocalPath(path_type=Path), help="Write an OVF package into this new directory.")
@click.option("--ova", "ova_file", type=LocalPath(path_type=Path), help="Write a single OVA file (NAME.ova).")
@click.option("--disk-format", type=click.Choice(["vmdk", "qcow2"]), default="vmdk", show_default=True,
              help="vmdk is streamOptimized, as VMware and VirtualBox exchange it.")
@click.option("--allow-running", is_flag=True, help="Export a running guest (its disks are only crash-consistent).")
def export_cmd(session, vm, host_ref, ovf_dir, ova_file, disk_format, allow_running):
    """Export a VM as a DMTF OVF 2.0 package with a SHA256 manifest."""
    return ovf_ops.export(session, vm, host_ref, ovf_dir, ova_file, disk_format, allow_running)


def _network_mapping(values: tuple[str, ...]) -> dict[str, str]:
    """--network NET (every NIC) or --network OVFNET=NET (repeatable)."""
    mapping: dict[str, str] = {}
    for value in values:
        source, sep, target = value.rpartition("=")
        key = source if sep else "*"
        if not target or (sep and not source):
            raise UsageError(f"--network {value!r}: use NET or OVFNET=NET")
        if key in mapping:
            raise UsageError(f"--network maps {key if sep else 'every NIC'} twice")
        mapping[key] = target
    return mapping


def _render_imported(r: dict) -> None:
    say(f"{r['name']} imported on {r['host']} (pool {r['pool']}, {len(r['volumes'])} volumes, {r['seconds']} s)"
        + (f"; booted (boot id {r['boot_id']})" if "boot_id" in r else "; started" if r.get("started") else ""))
    for note in r["notes"]:
        say(f"  note: {note}")


@command(cli, "import", render=_render_imported)
@click.argument("package", type=LocalPath(path_type=Path))
@click.option("--host", "host_ref", required=True, help="Host to define the VM on (name, FQDN or address).")
@click.option("--name", help="VM name (default: the package's).")
@click.option("--pool", help="Pool for the disks (default: 'default', or the host's only active pool).")
@click.option("--network", "networks", multiple=True, metavar="[OVFNET=]NET",
              help="libvirt network for the package's NICs: NET for all, OVFNET=NET for one (repeatable).")
@click.option("--start", is_flag=True, help="Start the VM once defined (removed again if it does not start).")
@click.option("--wait-boot", is_flag=True, help="With --start: wait for the lab guest's boot marker.")
def import_cmd(session, package, host_ref, name, pool, networks, start, wait_boot):
    """Import an OVF package (directory or .ovf) or an OVA as a new VM."""
    return ovf_ops.import_(session, package, host_ref, name, pool, _network_mapping(networks), start, wait_boot)
