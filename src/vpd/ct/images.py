"""Container images: the local busybox image vpd builds (no image server is reachable here),
and import/list/delete on a host's incusd.

An Incus "split" image is what the seed imports (`lxc image import METADATA ROOTFS`): a
metadata tarball holding metadata.yaml, and a rootfs tarball holding the root file system."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..core import paths
from ..core.errors import NotFound, UsageError, VpdError
from . import checks
from .client import IncusClient, path

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox")
# The image's /etc: root's account, and an init that only mounts what a shell needs, then keeps
# a root shell on the console (`vpd ct console`; whoever reaches incusd is root there anyway). No
# hostname here: Incus sets the container's, and an inittab line would override it.
INITTAB = """::sysinit:/bin/mount -t proc proc /proc
::sysinit:/bin/mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
::sysinit:/bin/mkdir -p /run/lock
::sysinit:/etc/mount-cgroups
::sysinit:/sbin/ip link set lo up
::sysinit:/sbin/udhcpc -b -q -i eth0 -s /etc/udhcpc.script
::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
"""
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
# udhcpc only reports a lease: this applies it (address, default route).
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -z "$router" ] || ip route replace default via "${router%% *}" dev "$interface" ;;
esac
exit 0
"""
# The container's own cgroups at /sys/fs/cgroup (left empty here), so `limits.*` show inside.
MOUNT_CGROUPS = """#!/bin/sh
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup 2>/dev/null || exit 0
while IFS=: read -r id ctrl path; do
  case "$ctrl" in
    "") mkdir -p /sys/fs/cgroup/unified; mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified ;;
    name=*) dir="/sys/fs/cgroup/${ctrl#name=}"; mkdir -p "$dir"; mount -t cgroup -o "none,$ctrl" cgroup "$dir" ;;
    *) mkdir -p "/sys/fs/cgroup/$ctrl"; mount -t cgroup -o "$ctrl" cgroup "/sys/fs/cgroup/$ctrl" ;;
  esac
done < /proc/self/cgroup
exit 0
"""
GROUP = "root:x:0:\nnogroup:x:65534:\n"
DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp", "run", "root", "var/log", "home")


@dataclass(frozen=True)
class ImageFiles:
    metadata: Path
    rootfs: Path

    def to_dict(self) -> dict:
        return {"metadata": str(self.metadata), "rootfs": str(self.rootfs)}


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        p = Path(candidate)
        if p.is_file() and b"statically linked" in subprocess.run(["file", "-L", str(p)], capture_output=True).stdout:
            return p
    for candidate in BUSYBOX_CANDIDATES:  # without `file`: trust a busybox that runs alone
        if Path(candidate).is_file():
            return Path(candidate)
    raise VpdError("no static busybox on this machine", hint="run scripts/setup.sh (installs busybox-static)")


def metadata_yaml(created: int, description: str = "vpd busybox") -> str:
    return (f"architecture: x86_64\ncreation_date: {created}\nproperties:\n"
            f"  description: {description}\n  os: busybox\n  release: vpd\n")


def _add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o644,
         link: str | None = None, mtime: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = mtime
    if link is not None:
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
        tar.addfile(info)
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, mode
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))


def build_busybox(out_dir: Path | None = None) -> ImageFiles:
    """The two tarballs of a busybox container image, built once per busybox binary and kept
    in the cache (VPD_CACHE/ct-images/busybox-<hash>/)."""
    busybox = find_busybox()
    blob = busybox.read_bytes()
    # The cache key covers the recipe too: a changed inittab or script makes a new image.
    recipe = "\0".join((INITTAB, MOUNT_CGROUPS, UDHCPC_SCRIPT, PASSWD, GROUP, metadata_yaml(0), *DIRS))
    digest = hashlib.sha256(blob + recipe.encode()).hexdigest()[:16]
    target = out_dir or paths.cache_dir() / "ct-images" / f"busybox-{digest}"
    files = ImageFiles(target / "busybox.metadata.tar.xz", target / "busybox.rootfs.tar.xz")
    if files.metadata.exists() and files.rootfs.exists():
        return files
    names = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    created = int(busybox.stat().st_mtime)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(tmp / files.rootfs.name, "w:xz") as tar:
        for d in DIRS:
            _add(tar, d, mode=0o1777 if d == "tmp" else 0o700 if d == "root" else 0o755, mtime=created)
        _add(tar, "bin/busybox", data=blob, mode=0o755, mtime=created)
        for name in sorted(set(names)):
            if name in ("bin/busybox",) or ".." in name.split("/"):
                continue
            depth = name.count("/")
            _add(tar, name, link="../" * depth + "bin/busybox", mtime=created)
        if "sbin/init" not in names:
            _add(tar, "sbin/init", link="../bin/busybox", mtime=created)
        for name, text in (("etc/inittab", INITTAB), ("etc/passwd", PASSWD), ("etc/group", GROUP),
                           ("etc/shells", "/bin/sh\n"), ("etc/hosts", "127.0.0.1 localhost\n")):
            _add(tar, name, data=text.encode(), mtime=created)
        _add(tar, "etc/mount-cgroups", data=MOUNT_CGROUPS.encode(), mode=0o755, mtime=created)
        _add(tar, "etc/udhcpc.script", data=UDHCPC_SCRIPT.encode(), mode=0o755, mtime=created)
    with tarfile.open(tmp / files.metadata.name, "w:xz") as tar:
        _add(tar, "metadata.yaml", data=metadata_yaml(created).encode(), mtime=created)
    if target.exists():
        shutil.rmtree(target)
    tmp.replace(target)
    return files


# --- on a host's incusd -------------------------------------------------------------------

@dataclass
class ImageInfo:
    fingerprint: str
    aliases: list[str]
    description: str
    size: int
    created: str
    host: str = ""

    def to_dict(self) -> dict:
        return {"host": self.host, "fingerprint": self.fingerprint, "aliases": self.aliases,
                "description": self.description, "size": self.size, "created": self.created}


def list_images(client: IncusClient, host: str = "") -> list[ImageInfo]:
    out = []
    for img in client.get(path("images"), recursion=1) or []:
        out.append(ImageInfo(img["fingerprint"], [a["name"] for a in img.get("aliases") or []],
                             (img.get("properties") or {}).get("description", ""), int(img.get("size") or 0),
                             img.get("created_at", ""), host))
    return out


def resolve_image(client: IncusClient, ref: str) -> ImageInfo:
    """An image by alias, or by a unique fingerprint prefix."""
    checks.check_image_ref(ref)
    images = list_images(client)
    by_alias = [i for i in images if ref in i.aliases]
    if by_alias:
        return by_alias[0]
    by_print = [i for i in images if i.fingerprint.startswith(ref)]
    if len(by_print) == 1:
        return by_print[0]
    if by_print:
        raise UsageError(f"{ref!r} is the start of several image fingerprints", hint="give more digits")
    raise NotFound(f"no image {ref!r} on {client.name}", hint="`vpd ct image list` shows them")


def upload_split(client: IncusClient, metadata: Path, rootfs: Path, timeout: float = 600) -> str:
    """Upload a metadata + rootfs pair; returns the new image's fingerprint."""
    with open(metadata, "rb") as meta, open(rootfs, "rb") as root:
        op = client.request("POST", path("images"), wait=timeout,
                            files={"metadata": (metadata.name, meta, "application/octet-stream"),
                                   "rootfs": (rootfs.name, root, "application/octet-stream")},
                            timeout=timeout)
    fingerprint = (op.get("metadata") or {}).get("fingerprint")
    if not fingerprint:
        raise VpdError(f"incusd on {client.name} imported the image but gave no fingerprint")
    return fingerprint


def add_alias(client: IncusClient, alias: str, fingerprint: str) -> None:
    client.request("POST", path("images", "aliases"), json={"name": alias, "target": fingerprint, "description": ""})


def alias_exists(client: IncusClient, alias: str) -> bool:
    try:
        client.get(path("images", "aliases", alias))
        return True
    except NotFound:
        return False


def delete_image(client: IncusClient, fingerprint: str) -> None:
    client.request("DELETE", path("images", fingerprint))


def _has_metadata(f: Path, what: str) -> bool:
    """Whether a tarball holds metadata.yaml among its first entries (a metadata tarball's
    comes first; a rootfs tarball is not read to its end)."""
    if not f.is_file():
        raise UsageError(f"{what} {str(f)!r} is not a file")
    try:
        with tarfile.open(f) as tar:
            for _ in range(64):
                member = tar.next()
                if member is None:
                    break
                if member.name.lstrip("./") == "metadata.yaml":
                    return True
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UsageError(f"{what} {str(f)!r} is not a tarball: {exc}") from None
    return False


def order_pair(first: str, second: str) -> tuple[Path, Path]:
    """(metadata, rootfs) of two tarballs given in either order: the seed writes
    `lxc image import METADATA ROOTFS`; vpd's usage is ROOTFS METADATA; the contents decide."""
    a, b = Path(first), Path(second)
    a_meta, b_meta = _has_metadata(a, "tarball"), _has_metadata(b, "tarball")
    if a_meta == b_meta:
        raise UsageError(("both tarballs hold" if a_meta else "neither tarball holds") + " a metadata.yaml",
                         hint="give a rootfs tarball and a metadata tarball (with metadata.yaml at its top)")
    return (a, b) if a_meta else (b, a)
