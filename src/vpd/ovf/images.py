"""Disk images for OVF: qemu-img on the machine vpd runs on, libvirt streams to and from hosts.

Images travel between vpd and a host as libvirt volume streams (the same API `virsh
vol-download/vol-upload` use), so export and import work for remote hosts without a shared
file system. Conversions run locally with qemu-img, always with the input format given
explicitly: probing would let a guest that wrote an image header into a raw disk decide how
the host reads it. An image from a package must stand alone: a backing file, an external data
file or a vmdk extent elsewhere would make qemu-img read host files into the imported disk.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from ..core import events
from ..core.errors import UsageError, VpdError

_PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


def image_info(path: Path, fmt: str | None = None) -> dict:
    """`qemu-img info` as a dict; `fmt` None probes (only for identifying, never for converting)."""
    argv = ["qemu-img", "info", "--output=json", *(["-f", fmt] if fmt else []), str(path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise UsageError(f"{path.name} is not a readable {fmt or 'disk'} image: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def check_standalone(path: Path, declared: str) -> dict:
    """Info of a package's disk image after checking it is what the descriptor says and reads
    no other file. Raises UsageError otherwise."""
    probed = image_info(path)
    if probed.get("format") != declared:
        raise UsageError(f"{path.name} is declared {declared} but is a {probed.get('format')} image")
    info = image_info(path, declared)
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise UsageError(f"{path.name} has a backing file ({info.get('backing-filename')}): refused",
                         hint="a package's disks must be self-contained images")
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        raise UsageError(f"{path.name} keeps its data in an external file: refused")
    extents = data.get("extents") or []
    if declared == "vmdk" and any(Path(e.get("filename", "")).resolve() != path.resolve() for e in extents):
        raise UsageError(f"{path.name} is a vmdk with extents in other files: refused",
                         hint="use a single-file vmdk (streamOptimized or monolithicSparse)")
    return info


def convert(source: Path, source_format: str, target: Path, target_format: str, *, operation: str, step: str,
            options: list[str] | None = None) -> None:
    """qemu-img convert with its -p progress turned into events (percent)."""
    argv = ["qemu-img", "convert", "-p", "-f", source_format, "-O", target_format, *(options or []),
            str(source), str(target)]
    events.emit(operation, step, 0, 100, "%")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    try:
        buffer = b""
        while chunk := os.read(proc.stdout.fileno(), 4096):
            buffer = (buffer + chunk)[-256:]
            found = _PERCENT.findall(buffer)
            if found:
                events.emit(operation, step, float(found[-1]), 100, "%")
        stderr = proc.stderr.read().decode(errors="replace")
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        target.unlink(missing_ok=True)
        raise
    if proc.returncode != 0:
        target.unlink(missing_ok=True)
        raise VpdError(f"qemu-img convert {source.name} -> {target.name} failed: {stderr.strip()}")
    events.emit(operation, step, 100, 100, "%")


