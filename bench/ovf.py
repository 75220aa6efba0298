"""On demand: OVA export and import of a VM with a 1 GiB disk holding 256 MiB of random data,
vpd beside the same steps done by hand (virsh vol-download/vol-upload, qemu-img, sha256sum, tar).

    .venv/bin/python -m bench.ovf --runs 3

Uses its own lab network (VPD_LAB_NET=7 unless set) and state directory."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VPD_LAB_NET", "7")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-"))

from bench.common import VPD, vpd  # noqa: E402
from bench.report import write_section  # noqa: E402

DATA_MIB = 256


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=1800)


def timed(fn) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from vpd.connect import inventory as inv
    from vpd.lab import layout

    work = Path(tempfile.mkdtemp(prefix="vpd-bench-ovf-"))
    vpd("lab", "up", "--hosts", "2")
    results: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    try:
        hosts = inv.resolve()
        uri_a, uri_b = hosts.get("hosta").uri, hosts.get("hostb").uri
        created = vpd("vm", "create", "bsrc", "--host", "hosta", "--lab-guest", "--disk",
                      f"size=1G,pool={layout.SHARED_POOL}")
        raw = work / "data.raw"
        with open(raw, "wb") as f:
            f.write(os.urandom(DATA_MIB * 2**20))
            f.truncate(2**30)
        # The lab's shared pool is a directory of this machine: fill the VM's disk in place.
        disk = Path(os.environ["VPD_HOME"]) / "lab" / "shared" / Path(created["disk"]).name
        run("qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", str(raw), str(disk))
        raw.unlink()
        for i in range(args.runs):
            ova = work / f"vpd{i}.ova"
            results.setdefault("export OVA (vmdk), vpd", []).append(
                timed(lambda: vpd("export", "bsrc", "--host", "hosta", "--ova", str(ova))))
            sizes["vpd OVA"] = ova.stat().st_size
            qdir = work / f"vpdq{i}"
            results.setdefault("export OVF dir (qcow2), vpd", []).append(
                timed(lambda: vpd("export", "bsrc", "--host", "hosta", "--ovf", str(qdir), "--disk-format", "qcow2")))

            def by_hand_export(i=i) -> None:
                d = work / f"hand{i}"
                d.mkdir()
                run("virsh", "-c", uri_a, "vol-download", "--sparse", "--pool", layout.SHARED_POOL, "bsrc.qcow2",
                    str(d / "dl.qcow2"))
                run("qemu-img", "convert", "-f", "qcow2", "-O", "vmdk", "-o", "subformat=streamOptimized",
                    str(d / "dl.qcow2"), str(d / "disk1.vmdk"))
                (d / "dl.qcow2").unlink()
                (d / "hand.ovf").write_bytes(b"(descriptor written by hand)")
                digest = subprocess.run(["sha256sum", "hand.ovf", "disk1.vmdk"], cwd=d, check=True,
                                        capture_output=True, text=True).stdout
                (d / "hand.mf").write_text(digest)
                run("tar", "-C", str(d), "-cf", str(work / f"hand{i}.ova"), "hand.ovf", "hand.mf", "disk1.vmdk")

            results.setdefault("export OVA (vmdk), by hand", []).append(timed(by_hand_export))
            name = f"bimp{i}"
            results.setdefault("import OVA, vpd", []).append(
                timed(lambda: vpd("import", str(ova), "--host", "hostb", "--name", name,
                                  "--pool", layout.SHARED_POOL)))
            vpd("vm", "undefine", name, "--host", "hostb", "--remove-storage")

            def by_hand_import(i=i) -> None:
                d = work / f"handimp{i}"
                d.mkdir()
                run("tar", "-C", str(d), "-xf", str(work / f"hand{i}.ova"))
                subprocess.run(["sha256sum", "-c", "hand.mf"], cwd=d, check=True, capture_output=True)
                run("qemu-img", "convert", "-f", "vmdk", "-O", "qcow2", str(d / "disk1.vmdk"), str(d / "up.qcow2"))
                size = str((d / "up.qcow2").stat().st_size)
                vol = f"hand{i}.qcow2"
                run("virsh", "-c", uri_b, "vol-create-as", layout.SHARED_POOL, vol, size, "--format", "raw")
                run("virsh", "-c", uri_b, "vol-upload", "--pool", layout.SHARED_POOL, vol, str(d / "up.qcow2"))
                run("virsh", "-c", uri_b, "pool-refresh", layout.SHARED_POOL)

            results.setdefault("import OVA, by hand (no define)", []).append(timed(by_hand_import))
            run("virsh", "-c", uri_b, "vol-delete", "--pool", layout.SHARED_POOL, f"hand{i}.qcow2")
        sizes["by-hand OVA"] = (work / "hand0.ova").stat().st_size
    finally:
        subprocess.run([*VPD, "vm", "undefine", "bsrc", "--host", "hosta", "--remove-storage"], capture_output=True)
        subprocess.run([*VPD, "lab", "down"], capture_output=True)
        subprocess.run(["rm", "-rf", str(work)])
    table = "\n".join(f"| {label} | {statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} |"
                      for label, v in results.items())
    text = (
        "## OVF / OVA export and import (issue 5)\n\n"
        f"Run {time.strftime('%Y-%m-%d')} by `python -m bench.ovf --runs {args.runs}` on the lab (2 hosts). "
        f"The VM is a lab guest with a 1 GiB qcow2 disk holding {DATA_MIB} MiB of random data (incompressible). "
        "vpd: `vpd export "
        "bsrc --host hosta --ova F` (and `--ovf DIR --disk-format qcow2`), `vpd import F --host hostb --name N --pool "
        "CONT_VOL_COMP`. By hand: `virsh vol-download --sparse`, `qemu-img convert -O vmdk -o "
        "subformat=streamOptimized`, `sha256sum` into a .mf, `tar cf`; and for import `tar xf`, `sha256sum -c`, "
        "`qemu-img convert -O qcow2`, `virsh vol-create-as` + `vol-upload` + `pool-refresh` (no define). "
        "Wall seconds, CLI to CLI.\n\n"
        "| step | median s | min s | max s |\n|---|---|---|---|\n" + table + "\n\n"
        + "OVA sizes: " + ", ".join(f"{label} {size / 2**20:.1f} MiB" for label, size in sizes.items())
        + " (vpd's also carries the guest's kernel and initrd, 13 MiB).\n")
    write_section("ovf", text)
    print(text)


if __name__ == "__main__":
    main()
