"""Domain devices, one small class per libvirt element, in the spirit of virtinst's devices/*.py.

Attribute values are typed with the full choice libvirt's domain schema allows, so any domain
libvirt reports parses, even where vpd only ever writes a few of the choices. Sub-elements vpd
does not model (alias, address, boot order...) are skipped; see LibvirtXml.
"""
from __future__ import annotations

from typing import Literal

from pydantic_xml import attr, element

from .base import Flag, LibvirtXml

DiskType = Literal["file", "block", "dir", "network", "volume", "nvme", "vhostuser", "vhostvdpa"]
DiskDevice = Literal["disk", "cdrom", "floppy", "lun"]
DiskBus = Literal["ide", "fdc", "scsi", "virtio", "xen", "usb", "uml", "sata", "sd"]
DiskCache = Literal["default", "none", "writethrough", "writeback", "directsync", "unsafe"]
InterfaceType = Literal[
    "network", "bridge", "user", "direct", "ethernet", "vhostuser", "unix", "internal", "mcast",
    "client", "server", "udp", "hostdev", "pci", "usb", "vdpa", "null", "vds",
]
CharDeviceType = Literal[
    "pty", "file", "unix", "dev", "pipe", "tcp", "udp", "null", "stdio", "vc", "spicevmc",
    "spiceport", "nmdm", "qemu-vdagent", "dbus",
]
GraphicsType = Literal["vnc", "spice", "sdl", "rdp", "desktop", "egl-headless", "dbus"]


class Emulator(LibvirtXml, tag="emulator"):
    """The QEMU binary; libvirt picks one for the domain type and arch when absent."""

    path: str


class DiskDriver(LibvirtXml, tag="driver"):
    name: str | None = attr(default=None)
    type: str | None = attr(default=None)
    """The image format: 'qcow2', 'raw'..."""
    cache: DiskCache | None = attr(default=None)


class DiskSourceHost(LibvirtXml, tag="host"):
    """A server of a network disk (an iSCSI portal, ...)."""

    name: str = attr()
    port: int | None = attr(default=None)


class DiskIqn(LibvirtXml, tag="iqn"):
    name: str = attr()


class DiskInitiator(LibvirtXml, tag="initiator"):
    """The IQN QEMU's own iSCSI initiator logs in as (the target's ACLs match it)."""

    iqn: DiskIqn = element()


class DiskAuthSecret(LibvirtXml, tag="secret"):
    type: Literal["iscsi", "ceph"] = attr()
    usage: str | None = attr(default=None)
    uuid: str | None = attr(default=None)


class DiskAuth(LibvirtXml, tag="auth"):
    """CHAP credentials of a network disk: the user name and the libvirt secret holding the password."""

    username: str = attr()
    secret: DiskAuthSecret = element()


class DiskSource(LibvirtXml, tag="source"):
    """Where the disk's data lives; which attribute is set depends on the disk's type."""

    file: str | None = attr(default=None)
    dev: str | None = attr(default=None)
    pool: str | None = attr(default=None)
    volume: str | None = attr(default=None)
    protocol: str | None = attr(default=None)
    """Network disks: 'iscsi', 'nbd', 'rbd'..."""
    name: str | None = attr(default=None)
    """Network disks: what the server calls it, e.g. 'IQN/LUN' for iSCSI."""
    hosts: list[DiskSourceHost] = element(default_factory=list)
    initiator: DiskInitiator | None = element(default=None)
    auth: DiskAuth | None = element(default=None)

    @property
    def reference(self) -> str | None:
        """The file or block device path, 'pool/volume' for pool volumes,
        'protocol://host:port/name' for network disks, else None."""
        if self.pool and self.volume:
            return f"{self.pool}/{self.volume}"
        if self.protocol and self.name:
            server = f"{self.hosts[0].name}:{self.hosts[0].port or ''}".rstrip(":") if self.hosts else ""
            return f"{self.protocol}://{server}/{self.name}"
        return self.file or self.dev


class DiskTarget(LibvirtXml, tag="target"):
    dev: str = attr()
    bus: DiskBus | None = attr(default=None)


class Disk(LibvirtXml, tag="disk"):
    type: DiskType = attr(default="file")
    device: DiskDevice = attr(default="disk")
    driver: DiskDriver | None = element(default=None)
    source: DiskSource | None = element(default=None)
    """None for an empty CD-ROM drive."""
    target: DiskTarget = element()
    readonly: Flag = element(default=False)
    shareable: Flag = element(default=False)
    serial: str | None = element(default=None)


class MacAddress(LibvirtXml, tag="mac"):
    address: str = attr()


class InterfaceSource(LibvirtXml, tag="source"):
    """`network` for type network, `bridge` for type bridge, `dev` (+ macvtap `mode`) for direct."""

    network: str | None = attr(default=None)
    bridge: str | None = attr(default=None)
    dev: str | None = attr(default=None)
    mode: str | None = attr(default=None)


class InterfaceModel(LibvirtXml, tag="model"):
    type: str = attr()
    """The emulated NIC: 'virtio', 'e1000', 'rtl8139'..."""


class InterfaceTarget(LibvirtXml, tag="target"):
    dev: str = attr()
    """The host-side tap or macvtap device."""


class InterfaceLink(LibvirtXml, tag="link"):
    state: Literal["up", "down"] = attr()
    """The virtual cable: 'down' is an unplugged NIC as the guest sees it."""


class Interface(LibvirtXml, tag="interface"):
    type: InterfaceType = attr()
    mac: MacAddress | None = element(default=None)
    source: InterfaceSource | None = element(default=None)
    model: InterfaceModel | None = element(default=None)
    target: InterfaceTarget | None = element(default=None)
    link: InterfaceLink | None = element(default=None)


class CharSource(LibvirtXml, tag="source"):
    """`path` of the file or socket; for a running pty device, the /dev/pts node libvirt chose."""

    path: str | None = attr(default=None)
    mode: Literal["bind", "connect"] | None = attr(default=None)


class CharTarget(LibvirtXml, tag="target"):
    """`port` numbers serial ports; `type` and `name` select what the guest sees ('serial', 'virtio')."""

    type: str | None = attr(default=None)
    port: int | None = attr(default=None)
    name: str | None = attr(default=None)
    state: Literal["connected", "disconnected"] | None = attr(default=None)
    """A running guest's virtio-serial port: whether the guest has it open (libvirt reports, never set)."""


class CharLog(LibvirtXml, tag="log"):
    """A host file that receives a copy of everything the guest writes to the device."""

    file: str = attr()
    append: Literal["on", "off"] | None = attr(default=None)


class CharDevice(LibvirtXml):
    """What serial ports, consoles and channels share in libvirt's schema."""

    type: CharDeviceType = attr()
    source: CharSource | None = element(default=None)
    target: CharTarget | None = element(default=None)
    log: CharLog | None = element(default=None)


class Serial(CharDevice, tag="serial"):
    """A guest serial port; target port N is the guest's ttySN."""


class Console(CharDevice, tag="console"):
    """The guest console; target type 'serial' makes it an alias of a serial port, not a new device."""


class Channel(CharDevice, tag="channel"):
    """A named host-guest pipe, e.g. a unix socket seen by the guest as a virtio-serial port."""


GUEST_AGENT_PORT = "org.qemu.guest_agent.0"
"""The virtio-serial port name qemu-guest-agent opens in the guest, and libvirt connects to."""


def guest_agent_channel() -> Channel:
    """The QEMU guest agent's channel: a unix socket on the host (libvirt picks its path under
    /var/lib/libvirt/qemu/channel) that is the guest's virtio-serial port GUEST_AGENT_PORT.
    A guest without the agent never opens the port: libvirt then answers agent calls with
    "not connected" at once, so the channel costs nothing."""
    return Channel(type="unix", target=CharTarget(type="virtio", name=GUEST_AGENT_PORT))


class GraphicsListen(LibvirtXml, tag="listen"):
    """Where the VNC/SPICE server listens: type 'address' with an IP ('127.0.0.1': the host only)."""

    type: Literal["address", "network", "socket", "none"] = attr()
    address: str | None = attr(default=None)


class Graphics(LibvirtXml, tag="graphics"):
    type: GraphicsType = attr()
    port: int | None = attr(default=None)
    """-1 together with autoport 'yes' lets libvirt pick a free port; a running guest reports the one taken."""
    autoport: Literal["yes", "no"] | None = attr(default=None)
    listen: str | None = attr(default=None)
    passwd: str | None = attr(default=None)
    """VNC (at most 8 characters) or SPICE password; libvirt shows it only with VIR_DOMAIN_XML_SECURE."""
    listens: list[GraphicsListen] = element(default_factory=list)


VideoModelType = Literal["vga", "cirrus", "vmvga", "xen", "vbox", "qxl", "virtio", "gop", "bochs", "ramfb", "none"]


class VideoModel(LibvirtXml, tag="model"):
    type: VideoModelType = attr()
    heads: int | None = attr(default=None)
    primary: Literal["yes", "no"] | None = attr(default=None)


class Video(LibvirtXml, tag="video"):
    """The guest's graphics card, what a VNC/SPICE display shows."""

    model: VideoModel = element()


class Devices(LibvirtXml, tag="devices"):
    emulator: Emulator | None = element(default=None)
    disks: list[Disk] = element(default_factory=list)
    interfaces: list[Interface] = element(default_factory=list)
    serials: list[Serial] = element(default_factory=list)
    consoles: list[Console] = element(default_factory=list)
    channels: list[Channel] = element(default_factory=list)
    graphics: list[Graphics] = element(default_factory=list)
    videos: list[Video] = element(default_factory=list)
