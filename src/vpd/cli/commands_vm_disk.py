"""`vpd vm disk ...`: disks of a VM (attach-disk, detach-disk, domblklist --details).

Its own module, adding a `disk` group to the `vm` group, so VM commands and disk commands
evolve without touching each other's files."""
from __future__ import annotations

import click

from ..core import journal
from ..core.errors import UsageError
from ..storage import disks
from ..storage.volumes import parse_vol_ref
from ..vm.inventory import find_domain
from . import context
from .commands_vm import vm
from .main import handle_errors, json_option
from .render import console, emit_json, table


@vm.group("disk")
def disk() -> None:
    """Disks of a VM: attach a volume or a host device, detach, list."""


@disk.command("attach")
@click.argument("vm_name", metavar="VM")
@click.option("--host", "host_name", required=True)
@click.option("--vol", "vol_ref", metavar="POOL/VOL", help="A pool volume (file, LV or iSCSI LUN).")
@click.option("--device", metavar="PATH", help="A block device of the host.")
@click.option("--target", required=True, help="Device name in the guest: vdb (virtio), sdb (sata/scsi), hdb (ide).")
@click.option("--bus", type=click.Choice(disks.BUSES), help="Default: from the target's prefix (vd/sd/hd).")
@click.option("--readonly", is_flag=True)
@click.option("--live", is_flag=True, help="Into the running guest (hot-plug).")
@click.option("--config", is_flag=True, help="Into the persistent definition (next boot).")
@json_option
@click.pass_context
@handle_errors
def disk_attach(ctx, vm_name, host_name, vol_ref, device, target, bus, readonly, live, config, as_json) -> None:
    """Attach a disk (without --live/--config: to the VM as it is now, as virsh does)."""
    if bool(vol_ref) == bool(device):
        raise UsageError("give exactly one of --vol POOL/VOL or --device PATH")
    bus = bus or {"vd": "virtio", "sd": "sata", "hd": "ide"}.get((target or "")[:2], "virtio")
    disks.check_target(target, bus)
    ref = parse_vol_ref(vol_ref) if vol_ref else None
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    with journal.record("vm.disk.attach", target=f"{host.name}/{vm_name}", vol=vol_ref, device=device,
                        disk_target=target, bus=bus, live=live, config=config) as entry:
        def attach(c):
            dom = find_domain(c, host, vm_name)
            spec = (disks.volume_disk(host, c, ref[0], ref[1], target, bus, readonly) if ref
                    else disks.device_disk(host, device, target, bus, readonly))
            return disks.attach(host, dom, spec, live=live, config=config)
        entry.result = conns.call(host, attach)
    r = entry.result
    if as_json:
        emit_json(r)
    else:
        where = " and ".join(w for w, on in (("live", r["live"]), ("config", r["config"])) if on)
        console.print(f"{r['source']} {'attached to' if r['changed'] else 'is already'} {vm_name} as {target} "
                      f"({bus}, {where})", highlight=False)


@disk.command("detach")
@click.argument("vm_name", metavar="VM")
@click.option("--host", "host_name", required=True)
@click.option("--target", required=True, help="The disk's device name, e.g. vdb.")
@click.option("--live", is_flag=True)
@click.option("--config", is_flag=True)
@json_option
@click.pass_context
@handle_errors
def disk_detach(ctx, vm_name, host_name, target, live, config, as_json) -> None:
    """Detach a disk (its volume or device stays)."""
    disks.check_target(target, {"vd": "virtio", "sd": "sata", "hd": "ide"}.get(target[:2], "virtio"))
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    with journal.record("vm.disk.detach", target=f"{host.name}/{vm_name}", disk_target=target, live=live,
                        config=config) as entry:
        entry.result = conns.call(host, lambda c: disks.detach(host, find_domain(c, host, vm_name), target,
                                                               live=live, config=config))
    r = entry.result
    if as_json:
        emit_json(r)
    else:
        console.print(f"{target} detached from {vm_name}" if r["changed"] else r["note"], highlight=False)


@disk.command("list")
@click.argument("vm_name", metavar="VM")
@click.option("--host", "host_name", required=True)
@click.option("--inactive", is_flag=True, help="The persistent definition, not the running one.")
@json_option
@click.pass_context
@handle_errors
def disk_list(ctx, vm_name, host_name, inactive, as_json) -> None:
    """The VM's disks: type, device, target, bus, source, format (domblklist --details)."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    found = conns.call(host, lambda c: disks.list_disks(find_domain(c, host, vm_name), inactive))
    if as_json:
        emit_json({"host": host.name, "vm": vm_name, "disks": [d.to_dict() for d in found]})
        return
    table(f"Disks of {vm_name} on {host.name}", ["type", "device", "target", "bus", "source", "format", "readonly"],
          [[d.type, d.device, d.target, d.bus, d.source, d.format, "yes" if d.readonly else ""] for d in found])
