"""/api/v1/vms/{name}/disks and /interfaces: a VM's disks and NICs (`vpd vm disk|iface ...`),
through vm.devices. The VM is found across the inventory unless `host` is given."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...network.ifaces import NIC_MODELS
from ...ops import Session
from ...storage.disks import BUSES
from ...vm import devices
from ...vm import operations as vm_ops
from ..auth import Principal, operator, viewer
from .common import ERRORS, MaybeHost, session, submit

router = APIRouter(prefix="/vms", tags=["vm devices"], dependencies=[Depends(viewer)], responses=ERRORS)


class DiskAttach(BaseModel):
    target: str = Field(description="Device name in the guest: vdb (virtio), sdb (sata/scsi), hdb (ide)")
    vol: str | None = Field(None, description="A pool volume POOL/VOL")
    device: str | None = Field(None, description="Or a block device of the host")
    bus: Literal[BUSES] | None = Field(None, description="Default: from the target's prefix")
    readonly: bool = False
    live: bool = Field(False, description="Into the running guest (hot-plug)")
    config: bool = Field(False, description="Into the persistent definition (without live/config: as virsh does)")


class IfaceAttach(BaseModel):
    network: str | None = Field(None, description="A libvirt network of the VM's host")
    bridge: str | None = Field(None, description="Or a host bridge")
    model: Literal[NIC_MODELS] = "virtio"
    mac: str | None = Field(None, description="Unique in the inventory (default: a new 52:54:00:xx:xx:xx)")
    live: bool | None = Field(None, description="Change the running VM (default: if it runs)")
    config: bool | None = Field(None, description="Change its definition (default: if it is defined)")


def _target(s: Session, name: str, host: str | None) -> str:
    """HOST/VM for the job, found now (unknown VM: 404 at once, not in the job)."""
    return f"{vm_ops.locate(s, name, host).host.name}/{name}"


@router.get("/{name}/disks")
def disks_list(name: str, host: MaybeHost = None, inactive: bool = False, s: Session = Depends(session)) -> dict:
    """The VM's disks: type, device, target, bus, source, format (domblklist --details)."""
    return devices.disk_list(s, name, host, inactive)


@router.post("/{name}/disks", status_code=202)
def disks_attach(request: Request, name: str, body: DiskAttach, host: MaybeHost = None,
                 who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Attach a pool volume or a host device; the same source at the same target again is a no-op."""
    from ...core.errors import UsageError

    if bool(body.vol) == bool(body.device):
        raise UsageError("give exactly one of vol (POOL/VOL) or device (PATH)")
    return submit(request, who, "vm.disk.attach", _target(s, name, host), lambda js: devices.disk_attach(
        js, name, host, vol_ref=body.vol, device=body.device, target=body.target, bus=body.bus,
        readonly=body.readonly, live=body.live, config=body.config))


@router.delete("/{name}/disks/{target}", status_code=202)
def disks_detach(request: Request, name: str, target: str, host: MaybeHost = None, live: bool = False,
                 config: bool = False, who: Principal = Depends(operator),
                 s: Session = Depends(session)) -> JSONResponse:
    """Detach the disk at `target` (its volume or device stays)."""
    return submit(request, who, "vm.disk.detach", _target(s, name, host), lambda js: devices.disk_detach(
        js, name, host, target=target, live=live, config=config))


@router.get("/{name}/interfaces")
def interfaces_list(name: str, host: MaybeHost = None, s: Session = Depends(session)) -> dict:
    """The VM's NICs with their addresses (DHCP leases, else the host's ARP table)."""
    return devices.iface_list(s, name, host)


@router.post("/{name}/interfaces", status_code=202)
def interfaces_attach(request: Request, name: str, body: IfaceAttach, host: MaybeHost = None,
                      who: Principal = Depends(operator), s: Session = Depends(session)) -> JSONResponse:
    """Attach a NIC on a network or a bridge; its MAC is checked against every host."""
    return submit(request, who, "vm.iface.attach", _target(s, name, host), lambda js: devices.iface_attach(
        js, name, host, **body.model_dump()))


@router.delete("/{name}/interfaces/{mac}", status_code=202)
def interfaces_detach(request: Request, name: str, mac: str, host: MaybeHost = None, live: bool | None = None,
                      config: bool | None = None, who: Principal = Depends(operator),
                      s: Session = Depends(session)) -> JSONResponse:
    """Detach the NIC with that MAC (a running guest must acknowledge the unplug)."""
    return submit(request, who, "vm.iface.detach", _target(s, name, host), lambda js: devices.iface_detach(
        js, name, host, mac=mac, live=live, config=config))
