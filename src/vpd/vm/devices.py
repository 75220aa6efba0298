"""A VM's disks and NICs as front ends change them (CLI, web API, scripts): `vm disk ...` and
`vm iface ...`. Each finds the VM across the inventory (or on the host given), runs a change
inside an Operation (journal entry, the VM's lock) and returns a plain result. The work itself
lives in storage.disks and network.ifaces; a new NIC's MAC is checked against every host."""
from __future__ import annotations

from ..core.errors import UsageError
from ..network import ifaces
from ..network.hostnet import host_network
from ..ops import Operation, Session
from ..ops.locks import vm_key
from ..storage import disks
from ..storage.volumes import parse_vol_ref
from . import identity
from .inventory import locate_vm

# --- disks -------------------------------------------------------------------------------


def disk_attach(session: Session, vm_name: str, host_ref: str | None = None, *, vol_ref: str | None = None,
                device: str | None = None, target: str, bus: str | None = None, readonly: bool = False,
                live: bool = False, config: bool = False) -> dict:
    """Attach a pool volume (POOL/VOL) or a host block device as `target` (without live/config:
    to the VM as it is now, as virsh does). The same source at the same target again is a no-op."""
    if bool(vol_ref) == bool(device):
        raise UsageError("give exactly one of --vol POOL/VOL or --device PATH")
    bus = bus or disks.default_bus(target)
    disks.check_target(target, bus)
    ref = parse_vol_ref(vol_ref) if vol_ref else None
    vm = locate_vm(session, vm_name, host_ref)
    host = vm.host
    with Operation(session, "vm.disk.attach", target=f"{host.name}/{vm_name}", locks=[vm_key(vm_name)], vol=vol_ref,
                   device=device, disk_target=target, bus=bus, live=live, config=config) as op:
        def attach(c):
            spec = (disks.volume_disk(host, c, ref[0], ref[1], target, bus, readonly) if ref
                    else disks.device_disk(host, device, target, bus, readonly))
            return disks.attach(host, vm.domain, spec, live=live, config=config)

        op.result = session.call(host, attach)
    return op.result


def disk_detach(session: Session, vm_name: str, host_ref: str | None = None, *, target: str, live: bool = False,
                config: bool = False) -> dict:
    """Detach the disk at `target` (its volume or device stays); none there is a no-op with a note."""
    disks.check_target(target, disks.default_bus(target))
    vm = locate_vm(session, vm_name, host_ref)
    host = vm.host
    with Operation(session, "vm.disk.detach", target=f"{host.name}/{vm_name}", locks=[vm_key(vm_name)],
                   disk_target=target, live=live, config=config) as op:
        op.result = session.call(host, lambda _c: disks.detach(host, vm.domain, target, live=live, config=config))
    return op.result


def disk_list(session: Session, vm_name: str, host_ref: str | None = None, inactive: bool = False) -> dict:
    vm = locate_vm(session, vm_name, host_ref)
    found = session.call(vm.host, lambda _c: disks.list_disks(vm.domain, inactive))
    return {"host": vm.host.name, "vm": vm_name, "disks": [d.to_dict() for d in found]}


# --- network interfaces --------------------------------------------------------------------


def iface_attach(session: Session, name: str, host_ref: str | None = None, *, network: str | None = None,
                 bridge: str | None = None, model: str = "virtio", mac: str | None = None,
                 live: bool | None = None, config: bool | None = None) -> dict:
    """Attach a NIC on a libvirt network or a host bridge. A given MAC must be free on every host
    (VMs migrate, hosts share LANs); without one, a free one is made up. The same MAC on the same
    source again is a no-op."""
    req = ifaces.AttachRequest(network=network, bridge=bridge, model=model, mac=mac, live=live, config=config)
    vm = locate_vm(session, name, host_ref)
    host = vm.host
    ids = identity.gather(session, exclude_vm=name)
    if ids.unreachable:
        session.notice(f"{', '.join(ids.unreachable)} did not answer: the MACs of VMs there were not checked")
    if req.mac is not None:
        ids.require_free_macs([req.mac])
    hostnet = host_network(host) if bridge else None
    with Operation(session, "vm.iface.attach", target=f"{host.name}/{name}", locks=[vm_key(name)], network=network,
                   bridge=bridge, model=model, mac=req.mac, live=live, config=config) as op:
        op.result = session.call(host, lambda c: ifaces.attach(c, host, vm.domain, req, macs_elsewhere=ids.taken_macs(),
                                                               hostnet=hostnet))
    return op.result


def iface_detach(session: Session, name: str, host_ref: str | None = None, *, mac: str | None = None,
                 network: str | None = None, bridge: str | None = None, live: bool | None = None,
                 config: bool | None = None) -> dict:
    """Detach the NIC with that MAC (or the one on that network or bridge); a running guest must
    acknowledge the unplug, which is waited for."""
    vm = locate_vm(session, name, host_ref)
    host = vm.host
    with Operation(session, "vm.iface.detach", target=f"{host.name}/{name}", locks=[vm_key(name)], mac=mac,
                   network=network, bridge=bridge, live=live, config=config) as op:
        op.result = session.call(host, lambda _c: ifaces.detach(vm.domain, host, mac=mac, network=network,
                                                                bridge=bridge, live=live, config=config))
    return op.result


def iface_link(session: Session, name: str, iface: str, state: str, host_ref: str | None = None, *,
               live: bool | None = None, config: bool | None = None) -> dict:
    """Set a NIC's link up or down (virsh domif-setlink): the guest sees its cable unplugged or
    plugged; by default in the running VM and in its definition alike."""
    vm = locate_vm(session, name, host_ref)
    host = vm.host
    with Operation(session, "vm.iface.link", target=f"{host.name}/{name}", locks=[vm_key(name)], iface=iface,
                   state=state, live=live, config=config) as op:
        op.result = session.call(host, lambda _c: ifaces.set_link(vm.domain, host, iface, state, live=live,
                                                                  config=config))
    return op.result


def iface_list(session: Session, name: str, host_ref: str | None = None) -> dict:
    """The VM's NICs with their addresses (DHCP leases, else the host's ARP table)."""
    vm = locate_vm(session, name, host_ref)
    rows = session.call(vm.host, lambda _c: ifaces.list_interfaces(vm.domain, vm.host))
    return {"vm": name, "host": vm.host.name, "interfaces": rows}
