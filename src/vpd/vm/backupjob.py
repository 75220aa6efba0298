"""One push-mode backup job of a running (or paused) guest, run to its end: libvirt has QEMU
write a point-in-time copy of the chosen disks into the given files while the guest runs on.
Used by `vpd backup` (into its folder) and `vpd vm clone --allow-running` (into the new
volumes: qemu-img cannot read a disk QEMU holds with its write lock, paused or not)."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import libvirt

from .. import ops
from ..connect.inventory import Host
from ..core import events
from ..core.errors import VpdError

JOB_POLL_S = 0.1


def run_push_backup(host: Host, dom: libvirt.virDomain, backup_xml: str, checkpoint_xml: str | None,
                    operation: str, label: str, flags: int = 0,
                    on_begun=None, around_begin: Callable[[], AbstractContextManager] | None = None) -> None:
    """Begin the job, call `on_begun` (e.g. push the checkpoint's undo), wait for the end.
    Any failure or Ctrl-C after it began aborts it. `around_begin`: a context held only while
    the job begins (the guest's filesystems frozen: the copy's instant is the job's start, so
    the guest is thawed as soon as libvirt has begun it, not after the copy)."""
    # Journaled before it starts: libvirt runs the job on without vpd if vpd is killed.
    ops.plan("backup-job", dom.name(), host.name)
    with (around_begin or contextlib.nullcontext)():
        try:
            dom.backupBegin(backup_xml, checkpoint_xml, flags)
        except libvirt.libvirtError as exc:
            raise VpdError(f"{dom.name()}: libvirt refused the backup: {exc.get_error_message()}") from None
    if on_begun is not None:
        on_begun()
    try:
        wait_for_job(dom, operation, label)
    except BaseException:
        try:
            dom.abortJob()
        except libvirt.libvirtError:
            pass
        raise


def wait_for_job(dom: libvirt.virDomain, operation: str, label: str) -> None:
    while True:
        stats = dom.jobStats(0)
        if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
            break
        total = stats.get("disk_total") or stats.get("data_total")
        done = stats.get("disk_processed") or stats.get("data_processed")
        events.emit(operation, label, done, total, "bytes")
        time.sleep(JOB_POLL_S)
    final = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    if final.get("type") != libvirt.VIR_DOMAIN_JOB_COMPLETED:
        raise VpdError(f"{label} failed: {final.get('errmsg') or 'libvirt reports the job did not complete'}")
