"""`vpd export` and `vpd import`: VMs as OVF packages (a directory or an OVA)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from ..core import journal
from ..core.errors import UsageError
from ..vm import lifecycle
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, progress


@cli.command("export")
@click.argument("vm")
@click.option("--host", "host_name", required=True, help="Host the VM is defined on.")
@click.option("--ovf", "ovf_dir", type=click.Path(path_type=Path), help="Write an OVF package into this new directory.")
@click.option("--ova", "ova_file", type=click.Path(path_type=Path), help="Write a single OVA file (NAME.ova).")
@click.option("--disk-format", type=click.Choice(["vmdk", "qcow2"]), default="vmdk", show_default=True,
              help="vmdk is streamOptimized, as VMware and VirtualBox exchange it.")
@click.option("--allow-running", is_flag=True, help="Export a running guest (its disks are only crash-consistent).")
@json_option
@click.pass_context
@handle_errors
def export_cmd(ctx, vm, host_name, ovf_dir, ova_file, disk_format, allow_running, as_json) -> None:
    """Export a VM as a DMTF OVF 2.0 package with a SHA256 manifest."""
    from ..ovf.export import export_vm

    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    ovf_dir = ovf_dir.absolute() if ovf_dir else None
    ova_file = ova_file.absolute() if ova_file else None
    with journal.record("ovf.export", target=f"{host.name}/{vm}", ovf=ovf_dir, ova=ova_file,
                        disk_format=disk_format) as entry, progress(not as_json):
        exported = conns.call(host, lambda c: export_vm(c, host, vm, ovf_dir=ovf_dir, ova_file=ova_file,
                                                          disk_format=disk_format, allow_running=allow_running))
        entry.result = asdict(exported)
    if as_json:
        emit_json(entry.result)
        return
    size = sum(f["size"] for f in exported.files)
    console.print(f"{vm} exported to {exported.package} ({exported.kind.upper()}, {len(exported.files)} files, "
                  f"{size / 2**20:.1f} MiB, {exported.seconds} s)", highlight=False)
    for note in exported.notes:
        console.print(f"  note: {note}", highlight=False)


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


@cli.command("import")
@click.argument("package", type=click.Path(path_type=Path))
@click.option("--host", "host_name", required=True, help="Host to define the VM on.")
@click.option("--name", help="VM name (default: the package's).")
@click.option("--pool", help="Pool for the disks (default: 'default', or the host's only active pool).")
@click.option("--network", "networks", multiple=True, metavar="[OVFNET=]NET",
              help="libvirt network for the package's NICs: NET for all, OVFNET=NET for one (repeatable).")
@click.option("--start", is_flag=True, help="Start the VM once defined (removed again if it does not start).")
@click.option("--wait-boot", is_flag=True, help="With --start: wait for the lab guest's boot marker.")
@json_option
@click.pass_context
@handle_errors
def import_cmd(ctx, package, host_name, name, pool, networks, start, wait_boot, as_json) -> None:
    """Import an OVF package (directory or .ovf) or an OVA as a new VM."""
    from ..ovf.import_ import import_package

    if wait_boot and not start:
        raise UsageError("--wait-boot needs --start")
    mapping = _network_mapping(networks)
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    package = package.absolute()
    with journal.record("ovf.import", target=f"{host.name}/{name or package.name}", package=package, pool=pool,
                        networks=mapping, start=start) as entry, progress(not as_json):
        dom, imported = conns.call(host, lambda c: import_package(c, host, package, name=name, pool_name=pool,
                                                                    networks=mapping))
        result = asdict(imported)
        if start:
            result.update(conns.call(host, lambda c: lifecycle.start_new(dom, wait_boot=wait_boot)))
        entry.result = result
    if as_json:
        emit_json(result)
        return
    console.print(f"{imported.name} imported on {host.name} (pool {imported.pool}, {len(imported.volumes)} volumes, "
                  f"{imported.seconds} s)" + (f"; booted (boot id {result['boot_id']})" if "boot_id" in result
                                              else "; started" if start else ""), highlight=False)
    for note in imported.notes:
        console.print(f"  note: {note}", highlight=False)
