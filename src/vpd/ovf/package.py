"""OVF packages on disk: a directory (descriptor + files) or an OVA (the same, as one tar).

Packages come from elsewhere, so nothing in them is trusted: tar members must be plain
regular files with plain names (no '/', no '..', no links or devices: a member named
'../../etc/x' or a symlink never reaches the file system), every file the descriptor names
must be there with the size it declares, and a .mf manifest's digests must match. Members are
copied out one by one into a directory vpd made; tarfile's extract() is never used.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import stat
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..core.errors import UsageError
from .envelope import Envelope, File, parse_envelope

MANIFEST_ALGORITHMS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
_MANIFEST_LINE = re.compile(r"(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9A-Fa-f]+)")
_CHUNK = 1024 * 1024
MAX_NAME = 100
"""ustar's limit for a member name without a prefix: keeps every OVA readable by every tar."""

Progress = Callable[[int], None]
"""Called with the bytes handled so far."""


@dataclass(frozen=True)
class Digest:
    algorithm: str
    hexdigest: str


def check_file_name(name: str, what: str = "file name") -> str:
    """A plain file name: what an OVA member or a descriptor's href must be."""
    if (not isinstance(name, str) or not name or name in (".", "..") or len(name) > MAX_NAME
            or any(c in name for c in "/\\\0:") or any(ord(c) < 32 for c in name)):
        raise UsageError(f"unsafe {what} {name!r} in the package",
                         hint="package members must be plain file names: "
                              "no directories, '..', URLs or control characters")
    return name


def parse_manifest(data: bytes) -> dict[str, Digest]:
    """`SHA256(name)= hex` lines (VMware writes that; VirtualBox puts spaces around)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the manifest (.mf) is not text") from None
    entries: dict[str, Digest] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _MANIFEST_LINE.fullmatch(line.strip())
        if not m:
            raise UsageError(f"manifest line {number} is not 'ALGORITHM(file)= digest': {line[:80]!r}")
        algorithm, name, hexdigest = m.group(1), m.group(2).strip(), m.group(3).lower()
        check_file_name(name, "manifest entry")
        digits = MANIFEST_ALGORITHMS[algorithm]().digest_size * 2
        if len(hexdigest) != digits:
            raise UsageError(f"manifest line {number}: a {algorithm} digest has {digits} hex digits")
        if name in entries:
            raise UsageError(f"the manifest lists {name} twice")
        entries[name] = Digest(algorithm, hexdigest)
    return entries


def manifest_bytes(digests: dict[str, str]) -> bytes:
    """SHA256 lines in VMware's layout, which every OVF tool reads."""
    return "".join(f"SHA256({name})= {hexdigest}\n" for name, hexdigest in digests.items()).encode()


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done)
    return h.hexdigest()


# --- Sources: where a package's files are read from ---------------------------------------

class Source:
    """A package's files by name; subclasses read a directory or an OVA."""

    descriptor_name: str
    origin: Path

    def names(self) -> list[str]:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def local_path(self, name: str) -> Path | None:
        """The file itself when it already sits on disk uncompressed (a directory package)."""
        return None

    def read(self, name: str, limit: int) -> bytes:
        if self.size(name) > limit:
            raise UsageError(f"{name} is {self.size(name)} bytes: too large for what it should be")
        with self.open(name) as f:
            return f.read()

    def close(self) -> None:
        pass


class DirectorySource(Source):
    def __init__(self, descriptor: Path):
        self.origin = descriptor
        self.directory = descriptor.parent
        self.descriptor_name = check_file_name(descriptor.name, "descriptor name")

    def _path(self, name: str) -> Path:
        path = self.directory / check_file_name(name)
        try:
            st = path.lstat()
        except FileNotFoundError:
            raise UsageError(f"{path} is missing: the descriptor names it") from None
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{path} is not a regular file (links and devices are refused)")
        return path

    def names(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir())

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def open(self, name: str) -> IO[bytes]:
        return open(self._path(name), "rb")

    def local_path(self, name: str) -> Path | None:
        return self._path(name)


class OvaSource(Source):
    """An OVA: a tar whose first member is the descriptor (DSP0243 section 5.3)."""

    def __init__(self, path: Path):
        self.origin = path
        try:
            self.tar = tarfile.open(path, "r:")  # no compression: OVAs are plain tars
        except (tarfile.TarError, OSError) as exc:
            raise UsageError(f"{path} is not a readable OVA (tar) file: {exc}") from None
        try:
            members = self.tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            self.tar.close()
            raise UsageError(f"{path} is a corrupt OVA: {exc}") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            for member in members:
                check_file_name(member.name, "OVA member name")
                if not member.isreg():
                    raise UsageError(f"OVA member {member.name!r} is not a regular file (links, directories "
                                     "and devices are refused)")
                if member.name in self.members:
                    raise UsageError(f"the OVA holds {member.name!r} twice")
                self.members[member.name] = member
            if not members or not members[0].name.lower().endswith(".ovf"):
                raise UsageError(f"{path}: the first member of an OVA must be its .ovf descriptor")
        except UsageError:
            self.tar.close()
            raise
        self.descriptor_name = members[0].name

    def names(self) -> list[str]:
        return list(self.members)

    def _member(self, name: str) -> tarfile.TarInfo:
        member = self.members.get(name)
        if member is None:
            raise UsageError(f"the OVA has no member {name!r}, which the descriptor names")
        return member

    def size(self, name: str) -> int:
        return self._member(name).size

    def open(self, name: str) -> IO[bytes]:
        f = self.tar.extractfile(self._member(name))
        assert f is not None  # regular files only, checked above
        return f

    def close(self) -> None:
        self.tar.close()


def open_source(path: Path) -> Source:
    """A .ova file, a .ovf descriptor, or a directory holding exactly one .ovf."""
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if path.is_dir():
        found = sorted(path.glob("*.ovf"))
        if len(found) != 1:
            raise UsageError(f"{path} holds {len(found)} .ovf descriptors; name one")
        return DirectorySource(found[0])
    if path.suffix.lower() == ".ovf":
        return DirectorySource(path)
    if path.suffix.lower() == ".ova" or tarfile.is_tarfile(path):
        return OvaSource(path)
    return DirectorySource(path)


# --- Reading a package --------------------------------------------------------------------

@dataclass
class Package:
    source: Source
    envelope: Envelope
    manifest: dict[str, Digest] | None
    notes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "ova" if isinstance(self.source, OvaSource) else "ovf"

    def close(self) -> None:
        self.source.close()

    def stage(self, file: File, directory: Path, progress: Progress | None = None) -> Path:
        """The file, checked against its size and digest, as a plain uncompressed file on disk.

        A directory package's uncompressed files are checked in place; others are copied into
        `directory`. A file that fails a check is removed and a UsageError raised."""
        name = file.href
        digest = self.manifest.get(name) if self.manifest else None
        h = MANIFEST_ALGORITHMS[digest.algorithm]() if digest else None
        in_place = self.source.local_path(name) if not file.compression else None
        target = in_place or directory / name
        done = 0
        try:
            with self.source.open(name) as reader:
                writer = None if in_place else open(target, "wb")
                try:
                    while chunk := reader.read(_CHUNK):
                        if h:
                            h.update(chunk)
                        if writer:
                            writer.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done)
                finally:
                    if writer:
                        writer.close()
            if file.size is not None and done != file.size:
                raise UsageError(f"{name} is {done} bytes but the descriptor says {file.size}")
            if digest is not None and h is not None and h.hexdigest() != digest.hexdigest:
                raise UsageError(f"{name}: {digest.algorithm} digest does not match the manifest",
                                 hint="the package is corrupt or was changed after it was made")
            if file.compression == "gzip":
                target = _gunzip(target, directory / f"{name}.unpacked")
            return target
        except (OSError, EOFError, tarfile.TarError) as exc:
            if not in_place:
                target.unlink(missing_ok=True)
            raise UsageError(f"cannot read {name} from the package: {exc}") from None
        except BaseException:
            if not in_place:
                target.unlink(missing_ok=True)
            raise


def _gunzip(packed: Path, unpacked: Path) -> Path:
    try:
        with gzip.open(packed, "rb") as src, open(unpacked, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
    except (OSError, EOFError) as exc:
        unpacked.unlink(missing_ok=True)
        raise UsageError(f"{packed.name} is not valid gzip data: {exc}") from None
    if packed.parent == unpacked.parent:
        packed.unlink(missing_ok=True)
    return unpacked


def read_package(path: Path) -> Package:
    """Open a package and check everything that can be checked without reading the disks:
    the descriptor (and its digest), the References against the files present and the manifest."""
    source = open_source(path)
    try:
        descriptor = source.read(source.descriptor_name, 16 * 1024 * 1024)
        manifest_name = Path(source.descriptor_name).stem + ".mf"
        manifest = None
        notes = []
        if manifest_name in source.names():
            manifest = parse_manifest(source.read(manifest_name, 1024 * 1024))
            digest = manifest.get(source.descriptor_name)
            if digest is None:
                raise UsageError(f"the manifest does not cover the descriptor {source.descriptor_name}")
            if MANIFEST_ALGORITHMS[digest.algorithm](descriptor).hexdigest() != digest.hexdigest:
                raise UsageError(f"{source.descriptor_name}: {digest.algorithm} digest does not match the manifest",
                                 hint="the package is corrupt or was changed after it was made")
        else:
            notes.append("no manifest (.mf): file integrity was not verified")
        envelope = parse_envelope(descriptor)
        seen_ids, seen_hrefs = set(), set()
        for f in envelope.references.files:
            check_file_name(f.href, "file reference")
            if f.id in seen_ids or f.href in seen_hrefs:
                raise UsageError(f"the descriptor lists file {f.id} ({f.href}) twice")
            seen_ids.add(f.id)
            seen_hrefs.add(f.href)
            if f.chunk_size:
                raise UsageError(f"{f.href} is split in chunks (ovf:chunkSize): not supported")
            if f.compression not in (None, "", "identity", "gzip"):
                raise UsageError(f"{f.href}: compression {f.compression!r} is not supported (gzip is)")
            if f.compression in ("", "identity"):
                f.compression = None
            if f.href not in source.names():
                raise UsageError(f"{f.href} is missing from the package: the descriptor names it")
            if f.size is not None and f.compression is None and source.size(f.href) != f.size:
                raise UsageError(f"{f.href} is {source.size(f.href)} bytes but the descriptor says {f.size}")
            if manifest is not None and f.href not in manifest:
                raise UsageError(f"the manifest does not cover {f.href}")
        if manifest is not None:
            stray = set(manifest) - seen_hrefs - {source.descriptor_name}
            if stray:
                raise UsageError(f"the manifest lists files the package does not reference: {', '.join(sorted(stray))}")
        return Package(source, envelope, manifest, notes)
    except BaseException:
        source.close()
        raise


# --- Writing a package --------------------------------------------------------------------

def write_ova(destination: Path, members: list[tuple[str, Path]], progress: Progress | None = None) -> None:
    """A ustar OVA with `members` in order (descriptor first, then manifest, then files).

    Written beside `destination` under a temporary name and renamed at the end, so a failure
    never leaves a partial OVA where the user asked for one."""
    partial = destination.with_name(f".{destination.name}.partial")
    done = 0
    try:
        with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name, path in members:
                info = tarfile.TarInfo(check_file_name(name))
                info.size = path.stat().st_size
                info.mtime = int(time.time())
                info.mode = 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, _Counting(f, progress, offset=done))
                done += info.size
        os.replace(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class _Counting:
    """A reader that reports `offset` + how much it read (for the OVA writer's progress)."""

    def __init__(self, f: IO[bytes], report: Progress | None, offset: int = 0):
        self.f, self.report, self.offset, self.count = f, report, offset, 0

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.count += len(data)
        if self.report:
            self.report(self.offset + self.count)
        return data


def iter_members(path: Path) -> Iterator[str]:
    """Member names of an OVA in order (for tests and `vpd export` reports)."""
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            yield member.name
