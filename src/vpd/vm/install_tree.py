"""`vm create --location ISO|DIR`: the installer's kernel and initrd found in an install tree, as
virt-install does, for a direct kernel boot with `--extra-args`.

The tree is an ISO on the host, read with pycdlib through the host's runner (`dd` of the ranges
it asks for: nothing is mounted, nothing needs root), or a directory on the host (an unpacked
ISO or a mirror). Layouts are tried in order; the first whose kernel and initrd both exist wins.
"""
from __future__ import annotations

import io
import os
import posixpath
import struct
from dataclasses import dataclass

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from ..connect.hostfiles import HostFiles
from ..core.errors import UsageError

LAYOUTS: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
    # (name, directory, kernel names, initrd names); names compare case-insensitively (ISO 9660
    # without Rock Ridge has upper-case names).
    ("debian", "install.amd", ("vmlinuz",), ("initrd.gz",)),
    ("debian", "install.386", ("vmlinuz",), ("initrd.gz",)),
    ("debian", "install.a64", ("vmlinuz",), ("initrd.gz",)),
    ("debian", "install", ("vmlinuz", "linux"), ("initrd.gz",)),
    ("fedora", "images/pxeboot", ("vmlinuz",), ("initrd.img",)),
    ("ubuntu", "casper", ("vmlinuz", "vmlinuz.efi"), ("initrd", "initrd.gz", "initrd.lz")),
    ("opensuse", "boot/x86_64/loader", ("linux",), ("initrd",)),
    ("isolinux", "isolinux", ("vmlinuz", "vmlinuz0", "linux", "bzimage"), ("initrd.img", "initrd.gz", "initrd",
                                                                          "initramfs.img", "initrd0.img")),
]
"""Debian's netinst (install.amd/), Fedora/RHEL (images/pxeboot/), Ubuntu live (casper/),
openSUSE, and any isolinux-booted ISO that keeps its kernel beside isolinux.bin."""


@dataclass(frozen=True)
class BootFiles:
    layout: str
    kernel: str
    initrd: str
    """Paths inside the tree, as the tree spells them."""


def find_boot_files(listing: dict[str, list[str]], source: str) -> BootFiles:
    """The kernel and initrd from `listing` (a layout directory -> the names in it)."""
    for name, directory, kernels, initrds in LAYOUTS:
        names = {n.lower().removesuffix(";1").rstrip("."): n for n in listing.get(directory, [])}
        kernel = next((names[k] for k in kernels if k in names), None)
        initrd = next((names[i] for i in initrds if i in names), None)
        if kernel and initrd:
            return BootFiles(name, f"{directory}/{kernel}", f"{directory}/{initrd}")
    raise UsageError(f"--location {source}: no installer kernel and initrd found",
                     hint="looked in " + ", ".join(sorted({d + "/" for _, d, _, _ in LAYOUTS}))
                     + " (Debian, Fedora/RHEL, Ubuntu, openSUSE and isolinux layouts)")


class HostFileReader(io.RawIOBase):
    """A read-only, seekable view of a file on a host, fetched in blocks with `dd` through the
    host's runner: pycdlib reads an ISO's directory records from it without mounting it."""

    BLOCK = 1 << 20

    def __init__(self, files: HostFiles, path: str, size: int):
        self.files, self.path, self.size, self.pos = files, path, size, 0
        self._cache: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def _block(self, index: int) -> bytes:
        if index not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[index] = self.files.runner.run_bytes(
                ["dd", f"if={self.path}", f"bs={self.BLOCK}", f"skip={index}", "count=1", "status=none"],
                reads=True)
        return self._cache[index]

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        want = min(len(buffer), self.size - self.pos)
        done = 0
        while done < want:
            index, offset = divmod(self.pos + done, self.BLOCK)
            chunk = self._block(index)[offset:offset + want - done]
            if not chunk:
                break
            buffer[done:done + len(chunk)] = chunk
            done += len(chunk)
        self.pos += done
        return done


class IsoTree:
    """An install ISO on the host, opened with pycdlib (Rock Ridge or Joliet names when it has
    them, else plain ISO 9660 names)."""

    def __init__(self, files: HostFiles, path: str):
        self.path = path
        size = files.runner.run(["stat", "-L", "-c", "%s", "--", path], reads=True).stdout.strip()
        self.iso = pycdlib.PyCdlib()
        try:
            self.iso.open_fp(HostFileReader(files, path, int(size)))
        except (PyCdlibException, ValueError, struct.error) as exc:
            raise UsageError(f"--location {path} is not an ISO 9660 image: {exc}") from None
        self.facade = (self.iso.get_rock_ridge_facade() if self.iso.has_rock_ridge()
                       else self.iso.get_joliet_facade() if self.iso.has_joliet() else self.iso.get_iso9660_facade())

    def _native(self, path: str) -> str:
        if isinstance(self.facade, pycdlib.facade.PyCdlibISO9660):
            return "/" + path.upper()
        return "/" + path

    def listing(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for _, directory, _, _ in LAYOUTS:
            for native in {self._native(directory), "/" + directory}:
                try:
                    children = list(self.facade.list_children(native))
                except PyCdlibException:
                    continue
                out[directory] = [self._name(c) for c in children if c is not None and not c.is_dir()]
                break
        return out

    def _name(self, record) -> str:  # type: ignore[no-untyped-def]
        if isinstance(self.facade, pycdlib.facade.PyCdlibRockRidge):
            return record.rock_ridge.name().decode()
        if isinstance(self.facade, pycdlib.facade.PyCdlibJoliet):
            return record.file_identifier().decode("utf-16_be")
        return record.file_identifier().decode()

    def extent(self, inside: str) -> tuple[int, int]:
        """(byte offset, length) of a file in the ISO: ISO 9660 stores a file under 4 GiB as one
        contiguous extent, so `dd` on the host can copy it out without vpd seeing its bytes."""
        directory, name = posixpath.split(inside)
        native = self._native(directory).rstrip("/") + "/" + name  # `name` as listed: ';1' kept
        record = self.facade.get_record(native)
        return record.extent_location() * self.iso.logical_block_size, record.get_data_length()

    def close(self) -> None:
        self.iso.close()


def dir_listing(files: HostFiles, path: str) -> dict[str, list[str]]:
    """The layout directories of an install tree that is a directory on the host."""
    out = files.runner.run(["find", "--", path, "-mindepth", "2", "-maxdepth", "4", "-type", "f",
                            "-printf", "%P\\n"], reads=True, check=False).stdout
    listing: dict[str, list[str]] = {}
    for line in out.splitlines():
        directory, _, name = line.rpartition("/")
        listing.setdefault(directory, []).append(name)
    return listing


@dataclass(frozen=True)
class Location:
    """What `--location` resolved to on the host, before anything is made."""

    source: str
    is_iso: bool
    boot: BootFiles
    extents: tuple[tuple[int, int], tuple[int, int]] | None = None
    """For an ISO: (offset, length) of the kernel and of the initrd in it."""


def locate(files: HostFiles, path: str, host: str) -> Location:
    """Find the kernel and initrd of the install tree at `path` on the host (exit 2 if there is none)."""
    if files.is_dir(path):
        return Location(path, False, find_boot_files(dir_listing(files, path), path))
    if not files.exists(path):
        raise UsageError(f"--location {path}: no such ISO or directory on {host}")
    tree = IsoTree(files, path)
    try:
        boot = find_boot_files(tree.listing(), path)
        return Location(path, True, boot, (tree.extent(boot.kernel), tree.extent(boot.initrd)))
    finally:
        tree.close()


def copy_out(files: HostFiles, iso: str, extent: tuple[int, int], target: str) -> None:
    """Copy one file out of the ISO into `target` (a volume vpd just made), on the host itself."""
    offset, length = extent
    files.runner.run(["dd", f"if={iso}", f"of={target}", "bs=1M", f"skip={offset}", f"count={length}",
                      "iflag=skip_bytes,count_bytes", "conv=notrunc", "status=none"], timeout=600)
