"""The lab guest, vpd's tiny demo guest (`vpd vm create --lab-guest`): the
host's own cloud kernel booted straight into a busybox initramfs (see
guest/init for what the guest does). It is a product feature, not only the
lab's: the lab's tests and benchmarks boot it, and vm/accel boots it once to
learn whether KVM works on this machine.

The initramfs is built once into a cache directory and rebuilt only when one
of its inputs changes; a cache hit costs a few hashes, not a build.
"""
from __future__ import annotations

import fcntl
import gzip
import hashlib
import importlib.resources
import lzma
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..core.errors import VpdError

BASE_CMDLINE = "console=ttyS0 quiet"
BOOT_DIR = Path("/boot")
MODULES_ROOT = Path("/lib/modules")
BUSYBOX = Path("/bin/busybox")
GUEST_SOURCES = importlib.resources.files(__package__) / "guest"

# Drivers the guest loads; the cloud kernel builds all of them as modules.
# Their dependencies are resolved from modules.dep. ata_piix + sd_mod: an IDE
# disk (sda); virtio_blk/virtio_net: virtio devices; button + evdev: acpid sees
# the ACPI power button, so `virsh shutdown` works; bonding: bonds in the guest
# (guest/bond, Práctica 8).
GUEST_MODULES = ("ata_piix", "sd_mod", "virtio_blk", "virtio_net", "button", "evdev", "bonding")
# Parameters given to insmod. max_bonds=0: the driver makes no bond0 by itself, so a guest
# without a bond shows no extra interface; guest/bond makes the bonds it is asked for.
MODULE_PARAMS = {"bonding": "max_bonds=0"}

INITRD_NAME = "vpd-guest-initrd.img"
STAMP_NAME = "vpd-guest-initrd.inputs"
# The same initramfs with iperf3 and its shared libraries appended (`--lab-guest-iperf3`, for
# `vpd net perf`): a second gzip'd cpio after the first, which the kernel unpacks over it. Kept
# apart because it adds about 8 MiB of RAM to the guest (libcrypto alone is 4.6 MiB) and lab
# guests run in 64 MiB.
IPERF3_INITRD_NAME = "vpd-guest-initrd-iperf3.img"
IPERF3_STAMP_NAME = "vpd-guest-initrd-iperf3.inputs"
IPERF3 = Path("/usr/bin/iperf3")
# Where guest/init expects its modules and their load order.
GUEST_MODULE_DIR = "lib/modules/vpd"
# How a signed module ends (see _without_signature).
_SIGNATURE_MAGIC = b"~Module signature appended~\n"
_SIGNATURE_INFO_BYTES = 12


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path
    cmdline: str

    def cmdline_with_dirtier(self, size_mib: int, rate_mib_s: int) -> str:
        """The command line that makes the guest run vpd-dirtier (rate 0 = unthrottled)."""
        return f"{self.cmdline} vpd.dirty={size_mib},{rate_mib_s}"


def find_guest_kernel() -> Path:
    """The newest /boot/vmlinuz-*-cloud-amd64 (else any /boot/vmlinuz-*) whose
    modules are installed in /lib/modules/<version>."""
    for pattern in ("vmlinuz-*-cloud-amd64", "vmlinuz-*"):
        usable = [k for k in BOOT_DIR.glob(pattern) if (_modules_dir(k) / "modules.dep").is_file()]
        if usable:
            return max(usable, key=lambda k: _version_sort_key(_kernel_version(k)))
    raise VpdError(
        f"no guest kernel: no {BOOT_DIR}/vmlinuz-* with its modules in {MODULES_ROOT}/<version>",
        hint="install linux-image-cloud-amd64 (scripts/setup.sh does)",
    )


def build_guest_image(cache_dir: Path, *, force: bool = False) -> GuestImage:
    """Build (or reuse) the guest initramfs in cache_dir.

    Safe to call from concurrent processes: builds are serialised by a lock
    file and every artifact appears by rename, so no reader sees a half file.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    kernel = find_guest_kernel()
    initrd = cache_dir / INITRD_NAME
    stamp = cache_dir / STAMP_NAME
    image = GuestImage(kernel=kernel, initrd=initrd, cmdline=BASE_CMDLINE)
    inputs_digest = _inputs_digest(kernel)

    def up_to_date() -> bool:
        return not force and initrd.is_file() and stamp.is_file() and stamp.read_text().strip() == inputs_digest

    if up_to_date():
        return image
    with open(cache_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Another process may have finished the same build while we waited.
        if up_to_date():
            return image
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as work:
            work_dir = Path(work)
            dirtier = _compile_dirtier(work_dir)
            built = work_dir / INITRD_NAME
            with open(built, "wb") as out:
                _write_initramfs(out, kernel, dirtier)
            os.replace(built, initrd)
            # The stamp goes last: it vouches for an initrd already in place.
            stamp_tmp = work_dir / STAMP_NAME
            stamp_tmp.write_text(inputs_digest + "\n")
            os.replace(stamp_tmp, stamp)
    return image


def build_iperf3_image(cache_dir: Path) -> GuestImage:
    """The guest image with iperf3 in it (built on first use, like the plain one)."""
    base = build_guest_image(cache_dir)
    if not IPERF3.is_file():
        raise VpdError(f"cannot put iperf3 in the lab guest: {IPERF3} is not installed",
                       hint="apt-get install iperf3 (scripts/setup.sh does)")
    files = _shared_objects(IPERF3)
    digest = hashlib.sha256((cache_dir / STAMP_NAME).read_bytes())
    for f in [IPERF3, *files]:
        st = f.stat()
        digest.update(f"{f}:{f.resolve()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    initrd, stamp = cache_dir / IPERF3_INITRD_NAME, cache_dir / IPERF3_STAMP_NAME
    image = GuestImage(kernel=base.kernel, initrd=initrd, cmdline=base.cmdline)
    if initrd.is_file() and stamp.is_file() and stamp.read_text().strip() == digest.hexdigest():
        return image
    with open(cache_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as work:
            built = Path(work) / IPERF3_INITRD_NAME
            with open(built, "wb") as out:
                out.write(base.initrd.read_bytes())
                with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as compressed:
                    cpio = _CpioWriter(compressed)
                    for directory in sorted({str(f.parent).lstrip("/") for f in files}):
                        cpio.directory(directory)
                    cpio.file("usr/bin/iperf3", IPERF3.read_bytes(), mode=0o755)
                    for f in files:
                        cpio.file(str(f).lstrip("/"), f.read_bytes(), mode=0o755)
                    cpio.close()
            os.replace(built, initrd)
            stamp_tmp = Path(work) / IPERF3_STAMP_NAME
            stamp_tmp.write_text(digest.hexdigest() + "\n")
            os.replace(stamp_tmp, stamp)
    return image


def _shared_objects(binary: Path) -> list[Path]:
    """The libraries and loader `binary` needs, by the paths the loader looks them up at (ldd)."""
    try:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        raise VpdError(f"cannot list the libraries of {binary}: {exc}") from None
    return parse_ldd(out)


def parse_ldd(text: str) -> list[Path]:
    found = []
    for line in text.splitlines():
        m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if m:
            found.append(Path(m.group(1)))
    return found


def _kernel_version(kernel: Path) -> str:
    return kernel.name.removeprefix("vmlinuz-")


def _modules_dir(kernel: Path) -> Path:
    return MODULES_ROOT / _kernel_version(kernel)


def _version_sort_key(version: str) -> list[tuple[int, int, str]]:
    """Numeric parts compare as numbers, so 6.12 sorts after 6.9."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", version) if part]


def _inputs_digest(kernel: Path) -> str:
    digest = hashlib.sha256()
    parts = [
        (GUEST_SOURCES / "init").read_bytes(),
        (GUEST_SOURCES / "dirtier.c").read_bytes(),
        (GUEST_SOURCES / "bond").read_bytes(),
        _kernel_version(kernel).encode(),
        BUSYBOX.read_bytes(),
        # This builder decides the initramfs layout: changing it must rebuild.
        Path(__file__).read_bytes(),
    ]
    for part in parts:
        # Length-prefixed so that moving bytes between parts changes the digest.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _compile_dirtier(work_dir: Path) -> Path:
    # Package data need not be a file on disk (e.g. inside a zip): copy it out.
    source = work_dir / "dirtier.c"
    source.write_bytes((GUEST_SOURCES / "dirtier.c").read_bytes())
    binary = work_dir / "vpd-dirtier"
    # Static: the guest has no libc, only busybox.
    argv = ["gcc", "-static", "-O2", "-s", "-Wall", "-Wextra", "-o", str(binary), str(source)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        raise VpdError("cannot build the lab guest: gcc is not installed",
                       hint="run scripts/setup.sh (installs gcc and libc6-dev)") from None
    if result.returncode != 0:
        raise VpdError(f"cannot build the lab guest: gcc failed compiling dirtier.c:\n{result.stderr.strip()}",
                       hint="a static build needs libc.a: install libc6-dev (scripts/setup.sh does)")
    return binary


def _write_initramfs(out: BinaryIO, kernel: Path, dirtier: Path) -> None:
    # mtime=0 and fixed cpio metadata: the same inputs give the same bytes.
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as compressed:
        cpio = _CpioWriter(compressed)
        for directory in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run",
                          "tmp", "etc", "lib", "lib/modules", GUEST_MODULE_DIR):
            cpio.directory(directory)
        # The kernel opens /dev/console for init before init can mount devtmpfs.
        cpio.char_device("dev/console", major=5, minor=1)
        cpio.file("init", (GUEST_SOURCES / "init").read_bytes(), mode=0o755)
        cpio.file("bin/busybox", BUSYBOX.read_bytes(), mode=0o755)
        cpio.file("bin/vpd-dirtier", dirtier.read_bytes(), mode=0o755)
        cpio.file("bin/vpd-bond", (GUEST_SOURCES / "bond").read_bytes(), mode=0o755)
        load_order = _modules_in_load_order(_modules_dir(kernel), GUEST_MODULES)
        keep_signatures = _module_signatures_required(kernel)
        for module_path in load_order:
            module = _read_module(module_path)
            if not keep_signatures:
                module = _without_signature(module)
            cpio.file(f"{GUEST_MODULE_DIR}/{_module_file_name(module_path)}", module, mode=0o644)
        order_text = "".join(" ".join(filter(None, (_module_file_name(p), MODULE_PARAMS.get(_module_name(p.name)))))
                             + "\n" for p in load_order)
        cpio.file(f"{GUEST_MODULE_DIR}/load-order", order_text.encode(), mode=0o644)
        cpio.close()


def _module_name(path: str) -> str:
    """modules.dep path -> module name; the kernel treats '-' and '_' alike."""
    return re.sub(r"\.ko(\.\w+)?$", "", path.rsplit("/", 1)[-1]).replace("-", "_")


def _module_file_name(path: Path) -> str:
    return _module_name(path.name) + ".ko"


def _modules_in_load_order(modules_dir: Path, wanted: tuple[str, ...]) -> list[Path]:
    """The .ko files for `wanted` and everything they need, dependencies first.
    Modules built into the kernel are skipped."""
    dependencies: dict[str, list[str]] = {}
    paths: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        module_path, _, needs = line.partition(":")
        name = _module_name(module_path)
        paths[name] = module_path
        dependencies[name] = [_module_name(p) for p in needs.split()]
    builtin_file = modules_dir / "modules.builtin"
    builtin = {_module_name(p) for p in builtin_file.read_text().split()} if builtin_file.is_file() else set()

    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered or name in builtin:
            return
        if name not in paths:
            raise VpdError(f"cannot build the lab guest: kernel module {name} is not in {modules_dir}",
                           hint="the guest kernel must provide the IDE, virtio, ACPI button and bonding drivers")
        for dependency in dependencies[name]:
            visit(dependency)
        ordered.append(name)

    for name in wanted:
        visit(name)
    return [modules_dir / paths[name] for name in ordered]


def _read_module(path: Path) -> bytes:
    """The module's ELF bytes: busybox insmod cannot load compressed modules."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        # No zstd in the standard library before Python 3.14.
        try:
            return subprocess.run(["zstd", "-dc", "--", str(path)], capture_output=True, check=True).stdout
        except FileNotFoundError:
            raise VpdError(f"cannot build the lab guest: {path} is zstd-compressed and zstd is not installed",
                           hint="install zstd") from None
    return data


def _module_signatures_required(kernel: Path) -> bool:
    """Whether the kernel refuses unsigned modules; without its config, assume so."""
    config = BOOT_DIR / f"config-{_kernel_version(kernel)}"
    if not config.is_file():
        return True
    enforcing = ("CONFIG_MODULE_SIG_FORCE=y", "CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY=y",
                 "CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY=y")
    return any(line in enforcing for line in config.read_text().splitlines())


def _without_signature(module: bytes) -> bytes:
    """The module without its appended signature. Checking signatures in the
    emulated guest costs about 0.2 s of its boot; an unsigned module only
    taints the kernel ("E"), which is harmless in a lab guest."""
    if not module.endswith(_SIGNATURE_MAGIC):
        return module
    # Layout: module, signature, struct module_signature (12 bytes, ending in
    # the signature's big-endian length), magic.
    info_end = len(module) - len(_SIGNATURE_MAGIC)
    signature_length = int.from_bytes(module[info_end - 4:info_end], "big")
    return module[:info_end - _SIGNATURE_INFO_BYTES - signature_length]


class _CpioWriter:
    """Writes a cpio archive in the "newc" format the kernel unpacks as initramfs.

    Python builds it (rather than the cpio tool) so that /dev/console can be a
    device node without root and the metadata stays reproducible.
    """

    def __init__(self, out: BinaryIO):
        self._out = out
        self._next_inode = 1

    def directory(self, name: str) -> None:
        self._entry(name, mode=0o040755, data=b"")

    def file(self, name: str, data: bytes, *, mode: int) -> None:
        self._entry(name, mode=0o100000 | mode, data=data)

    def char_device(self, name: str, *, major: int, minor: int) -> None:
        self._entry(name, mode=0o020600, data=b"", rdev=(major, minor))

    def close(self) -> None:
        self._entry("TRAILER!!!", mode=0, data=b"")

    def _entry(self, name: str, *, mode: int, data: bytes, rdev: tuple[int, int] = (0, 0)) -> None:
        encoded_name = name.encode() + b"\0"
        is_directory = mode & 0o170000 == 0o040000
        fields = [
            self._next_inode, mode, 0, 0,  # inode, mode, uid, gid
            2 if is_directory else 1,  # links
            0, len(data),  # mtime, file size
            0, 0, rdev[0], rdev[1],  # device of the archive (unused), device node numbers
            len(encoded_name), 0,  # name size, checksum (unused in "newc")
        ]
        self._next_inode += 1
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self._out.write(header + encoded_name + _padding(len(header) + len(encoded_name)))
        self._out.write(data + _padding(len(data)))


def _padding(length: int) -> bytes:
    return b"\0" * (-length % 4)
