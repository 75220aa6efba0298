"""KVM or TCG? KVM only where it is offered *and* a guest has been seen to boot with it.

Nested KVM can be offered yet hang right after the kernel's setup code
(docs/lab.md, "KVM inside the lab"), so for a lab host (the inventory's `lab = true`: it runs on this
machine) vpd boots the lab guest once under KVM here and caches the verdict;
real hosts that offer KVM are trusted."""
from __future__ import annotations

import json
import os
import select
import subprocess
import time

from lxml import etree

from ..core import paths


def guest_accelerator(caps_xml: str) -> str:
    """'kvm' when libvirt offers a kvm domain type for the host's own arch, else 'tcg'."""
    caps = etree.fromstring(caps_xml.encode())
    arch = caps.findtext("host/cpu/arch")
    for guest in caps.findall("guest"):
        if guest.find(f"arch[@name='{arch}']/domain[@type='kvm']") is not None:
            return "kvm"
    return "tcg"


def kvm_boots_here(timeout: float = 8.0) -> bool:
    """Boot the lab guest under KVM on this machine; True if it prints its boot marker."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    from .guest_image import build_guest_image

    qemu_version = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                                  text=True).stdout.split("\n")[0]
    key = f"{qemu_version}|{os.uname().release}"
    cache = paths.cache_dir() / "kvm-probe.json"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return bool(cached["works"])
    except (FileNotFoundError, ValueError):
        pass
    image = build_guest_image(paths.cache_dir() / "guest")
    proc = subprocess.Popen(
        ["qemu-system-x86_64", "-accel", "kvm", "-m", "128", "-nographic", "-nodefaults", "-no-reboot",
         "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", image.cmdline, "-serial", "stdio"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    works = False
    try:
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                buf += os.read(proc.stdout.fileno(), 4096)
                if b"VPD-BOOT-MARKER" in buf:
                    works = True
                    break
                if b"KVM internal error" in buf:  # nested KVM failing: no need to wait
                    break
    finally:
        proc.kill()
        proc.wait()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "works": works, "checked": time.time()}))
    return works


def domain_type(caps_xml: str, lab_host: bool) -> str:
    """'kvm' or 'qemu' (TCG) for a new guest on the host with these capabilities;
    lab_host is the inventory's `lab` flag (a lab host runs on this machine)."""
    if guest_accelerator(caps_xml) != "kvm":
        return "qemu"
    if lab_host and not kvm_boots_here():
        return "qemu"
    return "kvm"
