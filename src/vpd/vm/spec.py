"""What `vpd vm create` is asked for, from flags or from a spec file (`--spec vm.toml`): one
model, so both paths check the same way. Unknown keys in a file are errors, not silently
ignored typos.

    name = "web1"
    host = "hosta"
    memory = 512          # MiB
    vcpus = 2
    os_variant = "debian11"
    start = true

    [[disks]]
    size = "8G"
    pool = "default"
    bus = "virtio"

    [[disks]]
    import = "/srv/images/data.qcow2"

    [[networks]]
    network = "default"   # or: bridge = "br0"
    mac = "52:54:00:12:34:56"

    cdrom = "/srv/iso/debian-12.iso"   # or "POOL/VOLUME"; boots first, then the disk
    graphics = "vnc"                   # vnc | spice | none
    video = "virtio"

    [cloud_init]                       # a NoCloud seed, attached read-only (label cidata)
    user = "alice"
    ssh_key_file = "~/.ssh/id_ed25519.pub"
    hostname = "web1.example.org"
    # or: user_data_file = "user-data.yaml", and network_config_file = "net.yaml"
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..core.errors import UsageError
from ..core.names import parse_size
from . import cloudinit, osinfo
from .create import DiskSpec, NicSpec, VmSpec

LAB_DEFAULTS = ("ide", "virtio")
"""Without --os-variant: IDE disks (any kernel drives them, the lab guest included) and virtio NICs."""
DEFAULT_MEMORY_MIB = 128
"""Without --memory and without an OS variant that recommends more: enough for the lab guest."""
DEBIAN_MEMORY_MIB = 384
"""The Debian test guest's default: room for systemd, cloud-init, sshd and the guest agent."""


def device_defaults(os_variant: str | None) -> tuple[str, str]:
    """(disk bus, NIC model) for an OS variant such as 'debian11' or 'win11' (vm/osinfo.py)."""
    if os_variant is None:
        return LAB_DEFAULTS
    variant = osinfo.lookup(os_variant)
    return variant.disk_bus, variant.nic_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BootRequest(_Strict):
    kernel: str
    initrd: str = ""
    cmdline: str = ""


class DiskRequest(_Strict):
    size: str | None = None
    pool: str = "default"
    format: str | None = None
    bus: str | None = None
    import_: str | None = Field(default=None, alias="import")

    @model_validator(mode="after")
    def _one_source(self) -> DiskRequest:
        if (self.size is None) == (self.import_ is None):
            raise ValueError("a disk needs exactly one of size or import")
        return self


class NicRequest(_Strict):
    network: str | None = None
    bridge: str | None = None
    mac: str | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> NicRequest:
        if (self.network is None) == (self.bridge is None):
            raise ValueError("a NIC needs exactly one of network or bridge")
        return self


class CloudInitRequest(_Strict):
    """A NoCloud seed: either built from these keys, or `user_data_file` as written by hand."""

    user: str | None = None
    ssh_key_file: str | None = None
    hostname: str | None = None
    password_hash: str | None = None
    user_data_file: str | None = None
    network_config_file: str | None = None

    def seed(self, vm_name: str) -> cloudinit.Seed:
        """Every file read and checked (exit 2 on anything wrong), nothing made yet."""
        built = [k for k in ("user", "ssh_key_file", "password_hash") if getattr(self, k) is not None]
        if self.user_data_file is not None and built:
            raise UsageError(f"--cloud-init-file cannot go with --cloud-init {', '.join(built)}: "
                             "put them in the user-data file")
        hostname = cloudinit.check_hostname(self.hostname) if self.hostname is not None else None
        if self.user_data_file is not None:
            data = cloudinit.user_data_file(self.user_data_file)
        else:
            if not (self.user or self.ssh_key_file or hostname or self.password_hash):
                raise UsageError("--cloud-init needs at least one of user=, ssh-key=, hostname=, password-hash=")
            user = cloudinit.check_user(self.user) if self.user is not None else None
            keys = cloudinit.read_key_file(self.ssh_key_file) if self.ssh_key_file is not None else []
            pw = cloudinit.check_password_hash(self.password_hash) if self.password_hash is not None else None
            data = cloudinit.user_data(user, keys, hostname or vm_name, pw)
        network = (cloudinit.network_config_file(self.network_config_file)
                   if self.network_config_file is not None else None)
        return cloudinit.Seed(data, cloudinit.meta_data(vm_name, hostname), network, hostname or vm_name)


class VmRequest(_Strict):
    name: str | None = None
    host: str | None = None
    memory: int | None = None
    """MiB; None: the OS variant's recommended memory, else DEFAULT_MEMORY_MIB."""
    vcpus: int = 1
    accel: str = "auto"
    os_variant: str | None = None
    lab_guest: bool = False
    debian_guest: bool = False
    """The Debian test guest (vm/debian_image.py): its disk imported as the first disk, virtio."""
    boot: BootRequest | None = None
    disks: list[DiskRequest] = []
    networks: list[NicRequest] = []
    cdrom: str | None = None
    graphics: str = "none"
    video: str | None = None
    cloud_init: CloudInitRequest | None = None
    start: bool = False
    wait_boot: bool = False

    def with_debian_root(self, image_disk: str) -> VmRequest:
        """This request with the Debian guest's image as its first disk (a copy, in the pool of
        the first disk asked for, else `default`) and enough memory for systemd and cloud-init."""
        pool = self.disks[0].pool if self.disks else "default"
        root = DiskRequest.model_validate({"import": image_disk, "pool": pool, "bus": "virtio"})
        memory = self.memory if self.memory is not None or self.os_variant else DEBIAN_MEMORY_MIB
        return self.model_copy(update={"disks": [root, *self.disks], "memory": memory})

    def to_spec(self, name: str, kernel: str | None = None, initrd: str | None = None,
                cmdline: str = "") -> VmSpec:
        """The checked VmSpec; `kernel`/`initrd`/`cmdline` come from the lab guest when it is used."""
        bus, model = LAB_DEFAULTS
        notes: list[str] = []
        memory = self.memory
        if self.os_variant is not None:
            variant = osinfo.lookup(self.os_variant)
            bus, model = variant.disk_bus, variant.nic_model
            if memory is None and variant.recommended_memory_mib:
                memory = variant.recommended_memory_mib
                notes.append(f"memory {memory} MiB: what {variant.name} recommends ({variant.source})")
            if memory is not None and variant.min_memory_mib and memory < variant.min_memory_mib:
                notes.append(f"memory {memory} MiB is below the {variant.min_memory_mib} MiB {variant.name} needs")
            for d in self.disks:
                size = parse_size(d.size, "disk size") if d.size is not None else None
                if size is not None and variant.min_disk_bytes and size < variant.min_disk_bytes:
                    notes.append(f"a {d.size} disk is below the {variant.min_disk_bytes / 2**30:.0f} GiB "
                                 f"{variant.name} needs")
                    break
            if variant.source == "built-in":
                notes.append("osinfo-db is not installed: OS defaults from vpd's built-in families")
        memory = memory or DEFAULT_MEMORY_MIB
        if self.boot is not None:
            kernel, initrd, cmdline = self.boot.kernel, self.boot.initrd, self.boot.cmdline
        disks = [DiskSpec(size=parse_size(d.size, "disk size") if d.size is not None else None, pool=d.pool,
                          format=d.format or "qcow2", bus=d.bus or bus, import_image=d.import_)
                 for d in self.disks]
        nics = [NicSpec(kind="network" if n.network else "bridge", source=n.network or n.bridge, mac=n.mac,
                        model=n.model or model) for n in self.networks]
        return VmSpec(name=name, kernel=kernel, initrd=initrd, cmdline=cmdline, memory_mib=memory,
                      vcpus=self.vcpus, disks=disks, nics=nics, accel=self.accel, os_variant=self.os_variant,
                      cdrom=self.cdrom, graphics=self.graphics, video=self.video, notes=notes,
                      seed=self.cloud_init.seed(name) if self.cloud_init is not None else None)


def load_request(path: str | Path) -> VmRequest:
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"cannot read spec file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"spec file {path} is not valid TOML: {exc}") from None
    try:
        return VmRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise UsageError(f"spec file {path}: {where}: {first['msg']}",
                         hint=f"{exc.error_count()} problem(s); see `vpd vm create --help` for the keys") from None
