"""The Debian test guest (`vpd vm create --debian-guest`): a minimal Debian 12 with systemd,
sshd, cloud-init (NoCloud), the QEMU guest agent, ifupdown and ifenslave. It is what people
really run, so ISO-less installs, cloud-init, the agent, sealing and SSH are tested for real.

Built from Debian packages with mmdebstrap (no KVM, loop device or mount needed), from the
machine's own apt sources so no mirror is ever written into vpd. The root filesystem has no
partition table (LABEL=root) and is booted with direct kernel boot from the kernel and initrd
copied out of it. The result is cached and rebuilt only when the recipe below changes; a
cache of .deb files makes a rebuild download nothing.

The image leaves the builder sealed: no machine-id, no SSH host keys, no cloud-init state,
so every VM made from it becomes a new machine at first boot.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import VpdError

SUITE = "bookworm"
CMDLINE = "root=LABEL=root rw console=ttyS0 quiet"
# Virtual size of the root filesystem; `vm create --disk size=` grows the copy and
# cloud-init's resizefs grows the filesystem at first boot.
ROOT_SIZE = "2G"
# The kernel comes from bookworm-backports: bookworm's own cloud kernel (6.1) has no AHCI
# driver, so it cannot see the SATA CD-ROM that holds the cloud-init seed.
KERNEL_SUITE = "bookworm-backports"
PACKAGES = ("systemd-sysv", "udev", "dbus", f"linux-image-cloud-amd64/{KERNEL_SUITE}", "openssh-server", "cloud-init",
            "qemu-guest-agent", "ifupdown", "ifenslave", "isc-dhcp-client", "iproute2", "netbase", "sudo",
            "zstd", "iputils-ping", "iperf3")
# The initramfs holds only what finds the root disk and the cloud-init seed (a SATA CD-ROM,
# label cidata): a few MB instead of 30. Loaded by udev later, the seed can be missed by
# cloud-init-local, which then falls back to no datasource at all.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "ext4", "crc32c_generic",
                     "ahci", "sr_mod", "isofs")
# cloud-init's stock module list includes `locale`, which fails without the locales package and
# leaves cloud-init in status error; these are the modules a NoCloud guest needs.
CLOUD_CFG = """\
datasource_list: [ NoCloud, None ]
ssh_genkeytypes: [ ed25519 ]
locale: C.UTF-8
cloud_init_modules: [ seed_random, bootcmd, write-files, resizefs, set_hostname, update_hostname,
                      update_etc_hosts, users-groups, ssh ]
cloud_config_modules: [ set-passwords, timezone, runcmd ]
cloud_final_modules: [ scripts-per-once, scripts-per-boot, scripts-per-instance, scripts-user, final-message,
                       power-state-change ]
"""
FSTAB = "LABEL=root / ext4 defaults,noatime,errors=remount-ro 0 1\n"
# Timers that would wake a test guest for maintenance nobody needs, and the wait-online unit
# that delays boot when a NIC has no carrier.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
                "fstrim.timer", "systemd-networkd-wait-online.service")
# What makes a machine a particular machine: removed so each VM gets its own at first boot.
SEAL_COMMANDS = (
    'rm -f "$1"/etc/ssh/ssh_host_*',
    ': > "$1/etc/machine-id"',
    'rm -f "$1/var/lib/dbus/machine-id"',
    'rm -rf "$1"/var/lib/cloud/*',
    'rm -f "$1/var/lib/systemd/random-seed"',
    'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*',
)
RECIPE_VERSION = 1

DISK_NAME = "root.qcow2"
KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.img"
STAMP_NAME = "recipe.json"


@dataclass(frozen=True)
class DebianImage:
    kernel: Path
    initrd: Path
    disk: Path
    cmdline: str


def recipe() -> dict:
    """Everything that decides the image's content; its digest names the cache entry."""
    return {"version": RECIPE_VERSION, "suite": SUITE, "kernel_suite": KERNEL_SUITE, "packages": PACKAGES,
            "modules": INITRAMFS_MODULES,
            "cloud_cfg": CLOUD_CFG, "fstab": FSTAB, "masked": MASKED_UNITS, "seal": SEAL_COMMANDS,
            "size": ROOT_SIZE, "cmdline": CMDLINE}


def recipe_digest() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:16]


def cached_image(cache_dir: Path) -> DebianImage | None:
    """The image for the current recipe if it is built, else None (never builds)."""
    entry = cache_dir / "debian" / recipe_digest()
    image = _image_in(entry)
    stamp = entry / STAMP_NAME
    if stamp.is_file() and all(p.is_file() for p in (image.kernel, image.initrd, image.disk)):
        return image
    return None


def ensure_debian_image(cache_dir: Path, *, log=None) -> DebianImage:
    """The cached image, built first when the recipe changed or it was never built."""
    if image := cached_image(cache_dir):
        return image
    root = cache_dir / "debian"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image := cached_image(cache_dir):  # built by another process while we waited
            return image
        entry = root / recipe_digest()
        _build(entry, root / "debs", log or (lambda _m: None))
        for old in root.iterdir():  # entries of older recipes
            if old.is_dir() and old.name not in (entry.name, "debs") and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
    image = cached_image(cache_dir)
    assert image is not None
    return image


def machine_apt_sources(suite: str) -> list[Path]:
    """The machine's apt source files that serve `suite`. The guest is built from the mirrors
    the machine already trusts (the set-up derives bookworm-backports from them too)."""
    found: list[Path] = []
    d = Path("/etc/apt/sources.list.d")
    for f in sorted(d.glob("*.sources")) if d.is_dir() else []:
        if _deb822_serves(f.read_text(errors="replace"), suite):
            found.append(f)
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file() and re.search(rf"^deb\s.*\s{re.escape(suite)}(\s|$)", legacy.read_text(errors="replace"),
                                      re.MULTILINE):
        found.append(legacy)
    return found


def _deb822_serves(text: str, suite: str) -> bool:
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.MULTILINE))
        if re.search(r"(^|\s)deb(\s|$)", fields.get("Types", "")) and suite in fields.get("Suites", "").split() \
                and fields.get("Enabled", "yes").lower() != "no":
            return True
    return False


def _image_in(entry: Path) -> DebianImage:
    return DebianImage(kernel=entry / KERNEL_NAME, initrd=entry / INITRD_NAME, disk=entry / DISK_NAME,
                       cmdline=CMDLINE)


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise VpdError(f"building the Debian guest failed at {what} (exit {proc.returncode}):\n{tail}")


def _build(entry: Path, debs: Path, log) -> None:
    if shutil.which("mmdebstrap") is None:
        raise VpdError("the Debian guest is built with mmdebstrap, which is not installed",
                       hint="run the set-up (make setup) or `apt-get install mmdebstrap`")
    sources: list[Path] = []
    for suite in (SUITE, KERNEL_SUITE):
        serving = machine_apt_sources(suite)
        if not serving:
            raise VpdError(f"no apt source on this machine serves Debian {suite}: the Debian guest is built "
                           "from the machine's own sources", hint="run the set-up (make setup), which adds "
                                                                  "bookworm-backports from the machine's sources")
        sources += [f for f in serving if f not in sources]
    if re.search(r"\s", str(debs)):
        # mmdebstrap's sync-in/sync-out hooks split their arguments on whitespace.
        raise VpdError(f"the cache directory {str(debs)!r} has whitespace: the Debian guest cannot be built there",
                       hint="set VPD_CACHE to a path without spaces")
    debs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=entry.parent))
    try:
        stage = work / "stage"
        stage.mkdir()
        (stage / "90-vpd.cfg").write_text(CLOUD_CFG)
        (stage / "fstab").write_text(FSTAB)
        (stage / "initramfs-modules").write_text("\n".join(INITRAMFS_MODULES) + "\n")
        rootfs = work / "rootfs"
        log(f"mmdebstrap {SUITE} from {', '.join(map(str, sources))}")
        staged = shlex.quote(str(stage))
        essential = (f'mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d" && '
                     f'echo MODULES=list > "$1/etc/initramfs-tools/conf.d/vpd" && '
                     f'cp {staged}/initramfs-modules "$1/usr/share/initramfs-tools/modules.d/vpd"')
        customize = [
            f'cp {staged}/fstab "$1/etc/fstab"',
            f'mkdir -p "$1/etc/cloud/cloud.cfg.d" && cp {staged}/90-vpd.cfg "$1/etc/cloud/cloud.cfg.d/"',
            'systemctl --root="$1" mask ' + " ".join(MASKED_UNITS),
            f'sync-out /var/cache/apt/archives {debs}',
            *SEAL_COMMANDS,
        ]
        argv = ["mmdebstrap", "--variant=minbase", "--format=directory", "--include=" + ",".join(PACKAGES),
                "--skip=essential/unlink", "--aptopt=APT::Install-Recommends \"false\"",
                "--setup-hook=mkdir -p \"$1/var/cache/apt/archives\"",
                f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
                f"--essential-hook={essential}",
                *(f"--customize-hook={c}" for c in customize),
                SUITE, str(rootfs), *map(str, sources)]
        _run(argv, "mmdebstrap")
        kernel = _newest(rootfs / "boot", "vmlinuz-")
        initrd = rootfs / "boot" / ("initrd.img-" + kernel.name.removeprefix("vmlinuz-"))
        if not initrd.is_file():
            raise VpdError(f"the Debian guest's initrd {initrd.name} was not made")
        shutil.copyfile(kernel, work / KERNEL_NAME)
        shutil.copyfile(initrd, work / INITRD_NAME)
        raw = work / "root.raw"
        log(f"ext4 root filesystem ({ROOT_SIZE}) and qcow2 image")
        _run(["truncate", "-s", ROOT_SIZE, str(raw)], "truncate")
        _run(["mkfs.ext4", "-q", "-L", "root", "-d", str(rootfs), str(raw)], "mkfs.ext4")
        _run(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(work / DISK_NAME)],
             "qemu-img convert")
        raw.unlink()
        (work / STAMP_NAME).write_text(json.dumps(recipe(), indent=1) + "\n")
        shutil.rmtree(rootfs)
        shutil.rmtree(stage)
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(work, entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _newest(directory: Path, prefix: str) -> Path:
    found = sorted(directory.glob(prefix + "*"))
    if not found:
        raise VpdError(f"no {prefix}* in the Debian guest's /boot")
    return found[-1]


def main() -> int:
    """`python -m vpd.vm.debian_image [CACHE_DIR]`: what the set-up runs (a cache hit costs a hash)."""
    from ..core import paths

    cache = Path(sys.argv[1]) if len(sys.argv) > 1 else paths.cache_dir()
    try:
        image = ensure_debian_image(cache, log=lambda m: print(f"[debian guest] {m}", flush=True))
    except VpdError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"[debian guest] {image.disk} ({image.disk.stat().st_size >> 20} MiB), kernel {image.kernel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
