"""`vpd vm disk ...`: disks of a VM (attach-disk, detach-disk, domblklist --details).

Its own module, adding a `disk` group to the `vm` group, so VM commands and disk commands
evolve without touching each other's files. Parse, call vpd.vm.devices, render."""
from __future__ import annotations

import click

from ..storage.disks import BUSES
from ..vm import devices
from .command import command, host_option, say
from .commands_vm import vm
from .render import table


@vm.group("disk")
def disk() -> None:
    """Disks of a VM: attach a volume or a host device, detach, list."""


def _render_attached(r: dict) -> None:
    where = " and ".join(w for w, on in (("live", r["live"]), ("config", r["config"])) if on)
    say(f"{r['source']} {'attached to' if r['changed'] else 'is already'} {r['vm']} as {r['target']} "
        f"({r['bus']}, {where})")


@command(disk, "attach", render=_render_attached)
@click.argument("vm_name", metavar="VM")
@host_option()
@click.option("--vol", "vol_ref", metavar="POOL/VOL", help="A pool volume (file, LV or iSCSI LUN).")
@click.option("--device", metavar="PATH", help="A block device of the host.")
@click.option("--target", required=True, help="Device name in the guest: vdb (virtio), sdb (sata/scsi), hdb (ide).")
@click.option("--bus", type=click.Choice(BUSES), help="Default: from the target's prefix (vd/sd/hd).")
@click.option("--readonly", is_flag=True)
@click.option("--live", is_flag=True, help="Into the running guest (hot-plug).")
@click.option("--config", is_flag=True, help="Into the persistent definition (next boot).")
def disk_attach(session, vm_name, host_ref, vol_ref, device, target, bus, readonly, live, config):
    """Attach a disk (without --live/--config: to the VM as it is now, as virsh does)."""
    return devices.disk_attach(session, vm_name, host_ref, vol_ref=vol_ref, device=device, target=target, bus=bus,
                               readonly=readonly, live=live, config=config)


@command(disk, "detach", render=lambda r: say(f"{r['target']} detached from {r['vm']}" if r["changed"]
                                               else r["note"]))
@click.argument("vm_name", metavar="VM")
@host_option()
@click.option("--target", required=True, help="The disk's device name, e.g. vdb.")
@click.option("--live", is_flag=True)
@click.option("--config", is_flag=True)
def disk_detach(session, vm_name, host_ref, target, live, config):
    """Detach a disk (its volume or device stays)."""
    return devices.disk_detach(session, vm_name, host_ref, target=target, live=live, config=config)


def _render_list(r: dict) -> None:
    table(f"Disks of {r['vm']} on {r['host']}", ["type", "device", "target", "bus", "source", "format", "readonly"],
          [[d["type"], d["device"], d["target"], d["bus"], d["source"], d["format"], "yes" if d["readonly"] else ""]
           for d in r["disks"]])


@command(disk, "list", render=_render_list, bars=False, readonly=True)
@click.argument("vm_name", metavar="VM")
@host_option()
@click.option("--inactive", is_flag=True, help="The persistent definition, not the running one.")
def disk_list(session, vm_name, host_ref, inactive):
    """The VM's disks: type, device, target, bus, source, format (domblklist --details)."""
    return devices.disk_list(session, vm_name, host_ref, inactive)
