"""On demand: clones and backups of a 1 GiB disk full of data, vpd beside the peer command.

    .venv/bin/python -m bench.vm_ops [--clones 50]

(1) `vpd vm clone SRC NEW --linked --count 50` against 50 `virt-clone --auto-clone` full
copies of the same source (each deleted once timed, so disk use stays near 1 GiB), and vpd's
own full clones for reference. (2) On a running guest: a full backup, then ~1 % of the disk
rewritten by the guest, then an incremental backup: bytes and time of each. Figures are
printed and written to docs/benchmarks.md. Uses its own lab (VPD_LAB_NET=6)."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import tempfile

os.environ.setdefault("VPD_LAB_NET", "6")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-"))

from bench.common import timed, vpd  # noqa: E402
from bench.report import write_section  # noqa: E402
from vpd.connect import inventory  # noqa: E402
from vpd.connect.libvirt_conn import Connections  # noqa: E402
from vpd.core import paths  # noqa: E402
from vpd.vm.console import ConsoleStream  # noqa: E402
from vpd.vm.guest_channel import GuestChannel  # noqa: E402

DISK_MIB = 1024
FILLED_MIB = 1000


def clones(n: int, uri: str) -> dict:
    out: dict = {}
    out["vpd_linked_total_s"], made = timed(lambda: vpd("vm", "clone", "cbase", "lk", "--host", "hosta",
                                                        "--linked", "--count", str(n)))
    assert len(made["clones"]) == n
    out["linked_boot"] = vpd("vm", "start", "lk-1", "--host", "hosta", "--wait-boot")["result"]["boot_seconds"]
    vpd("vm", "destroy", "lk-1", "--host", "hosta")
    for i in range(1, n + 1):
        vpd("vm", "undefine", f"lk-{i}", "--host", "hosta", "--remove-storage")
    virt_clone = []
    for i in range(n):
        seconds, proc = timed(lambda: subprocess.run(
            ["virt-clone", "--connect", uri, "--original", "cbase", "--name", f"vc{i}", "--auto-clone"],
            capture_output=True, text=True, timeout=600))
        if proc.returncode != 0:
            raise SystemExit(f"virt-clone failed: {proc.stderr}")
        virt_clone.append(seconds)
        vpd("vm", "undefine", f"vc{i}", "--host", "hosta", "--remove-storage")
        print(f"  virt-clone full copy {i + 1}/{n}: {seconds:.2f} s", flush=True)
    out["virt_clone_each_s"] = virt_clone
    out["virt_clone_total_s"] = sum(virt_clone)
    own = []
    for i in range(5):
        seconds, _ = timed(lambda: vpd("vm", "clone", "cbase", f"fc{i}", "--host", "hosta"))
        own.append(seconds)
        vpd("vm", "undefine", f"fc{i}", "--host", "hosta", "--remove-storage")
    out["vpd_full_each_s"] = own
    return out


def backups(conns, inv, root: str) -> dict:
    vpd("vm", "start", "cbase", "--host", "hosta", "--wait-boot")
    full = vpd("backup", "cbase", "--host", "hosta", "--to", root)
    dom = conns.get(inv.get("hosta")).lookupByName("cbase")
    changed_mib = DISK_MIB // 100
    with ConsoleStream(dom, "serial1") as stream:
        ch = GuestChannel(stream.send, stream.recv)
        ch.wait_ready(timeout=60)
        result = ch.run(f"dd if=/dev/urandom of=/dev/sda bs=1M seek=200 count={changed_mib} conv=fsync 2>&1",
                        timeout=120)
        assert result.exit_code == 0, result.output
    inc = vpd("backup", "cbase", "--host", "hosta", "--to", root, "--incremental")
    restore_s, _ = timed(lambda: vpd("restore", inc["path"], "--host", "hosta", "--as", "crest"))
    vpd("vm", "undefine", "crest", "--host", "hosta", "--remove-storage")
    vpd("vm", "destroy", "cbase", "--host", "hosta")
    return {"changed_mib": changed_mib, "full_bytes": full["total_bytes"], "full_s": full["seconds"],
            "inc_bytes": inc["total_bytes"], "inc_s": inc["seconds"], "restore_chain_s": round(restore_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clones", type=int, default=50)
    args = parser.parse_args()
    vpd("lab", "up", "--hosts", "1")
    try:
        inv = inventory.resolve()
        vpd("vm", "create", "cbase", "--host", "hosta", "--lab-guest", "--disk", f"size={DISK_MIB}M,pool=CONT_VOL_COMP")
        # Fill the disk with data from the machine's side (the pool directory as the root namespace sees it).
        image = paths.lab_dir() / "shared" / "cbase.qcow2"
        subprocess.run(["qemu-io", "-c", f"write -P 0x5a 0 {FILLED_MIB}M", str(image)], check=True,
                       capture_output=True)
        c = clones(args.clones, inv.get("hosta").uri)
        with Connections() as conns, tempfile.TemporaryDirectory(prefix="vpd-bench-backups-") as root:
            b = backups(conns, inv, root)
    finally:
        vpd("lab", "down", check=False)
    speedup = c["virt_clone_total_s"] / c["vpd_linked_total_s"]
    rows = [
        f"| {args.clones} linked clones, `vpd vm clone --linked --count {args.clones}` (one command) | "
        f"{c['vpd_linked_total_s']:.2f} s total | {c['vpd_linked_total_s'] / args.clones * 1000:.0f} ms |",
        f"| {args.clones} full clones, `virt-clone --auto-clone` each | {c['virt_clone_total_s']:.1f} s total | "
        f"{statistics.median(c['virt_clone_each_s']):.2f} s median |",
        f"| 5 full clones, `vpd vm clone` each (reference) | {sum(c['vpd_full_each_s']):.1f} s total | "
        f"{statistics.median(c['vpd_full_each_s']):.2f} s median |",
    ]
    ratio = b["inc_bytes"] / b["full_bytes"]
    text = (
        f"## Clones and backups (issue 5)\n\nRun {datetime.date.today()} by `python -m bench.vm_ops` on a 1-host lab, "
        f"source disk: {DISK_MIB} MiB qcow2 holding {FILLED_MIB} MiB of data, in the shared dir pool.\n\n"
        "| what | time | per clone |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Linked clones are **{speedup:.0f}× faster** than virt-clone's full copies (target ≥ 50×, ≤ 5 s total). "
        f"A linked clone boots: start to boot marker {c['linked_boot']} s.\n\n"
        "| backup of the running guest | data bytes | time |\n|---|---|---|\n"
        f"| full (`vpd backup`) | {b['full_bytes'] / 2**20:.1f} MiB | {b['full_s']} s |\n"
        f"| incremental after the guest rewrote {b['changed_mib']} MiB (~1 %) (`--incremental`) | "
        f"{b['inc_bytes'] / 2**20:.1f} MiB ({ratio * 100:.1f} % of full) | {b['inc_s']} s |\n\n"
        f"Target ≤ 5 % of the full backup's bytes. Restoring the chain (full + incremental, verified, flattened "
        f"into a new volume): {b['restore_chain_s']} s.\n\n"
        "```\n" + json.dumps({"clones": c, "backups": b}) + "\n```\n")
    write_section("vm_ops", text)
    print(text)


if __name__ == "__main__":
    main()
