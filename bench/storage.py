"""On demand: storage listing and iSCSI read throughput on the lab.

    .venv/bin/python -m bench.storage [--volumes 500] [--runs 5] [--mib 128] [--write]

1. Listing: `vpd pool list` + `vpd vol list` over 2 hosts holding --volumes volumes in all,
   side by side with the loop a learner scripts around virsh (pool-list, then vol-list per
   pool, then vol-info per volume, every call a new virsh process). Target: <= 0.5 s, >= 10x.
2. Throughput: sequential read (dd, O_DIRECT, in the guest) of a virtio disk that is an iSCSI
   LUN (tgt on hosta, iscsi-direct pool on hostb) against the same data as a local raw file on
   hostb; both images sit in the hosts' page cache, so the ratio is the cost of the iSCSI path
   (libiscsi in QEMU, TCP over the lab link, tgtd).

Uses its own lab network (VPD_LAB_NET, default 6) and state directory."""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import VPD, vpd

os.environ.setdefault("VPD_LAB_NET", "6")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-"))
POOL = "bench-vols"
IQN = "iqn.2024-01.org.vpd:bench"
# What a learner types: every volume costs one more virsh process and connection.
VIRSH_LOOP = r"""
for uri in "$@"; do
  for pool in $(virsh -c "$uri" pool-list --name); do
    for vol in $(virsh -c "$uri" vol-list "$pool" | awk 'NR > 2 && $1 {print $1}'); do
      virsh -c "$uri" vol-info --pool "$pool" "$vol" >/dev/null
    done
  done
done
"""


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, timeout=1800)
    return time.monotonic() - started


def make_volumes(uri: str, count: int, prefix: str) -> None:
    """Many small qcow2 volumes through libvirt directly (the set-up, not what is measured)."""
    import libvirt

    from vpd.xml.volume import volume

    conn = libvirt.open(uri)
    pool = conn.storagePoolLookupByName(POOL)
    for i in range(count):
        pool.createXML(volume(f"{prefix}{i:04d}.qcow2", 1024**2).to_xml_string(), 0)
    conn.close()


def in_process(runs: int = 5) -> list[float]:
    """The listing itself (both calls over open connections), without Python's start-up."""
    from vpd.connect import inventory
    from vpd.connect.libvirt_conn import Connections
    from vpd.storage import pools, volumes

    hosts = inventory.resolve().hosts
    out = []
    for _ in range(runs):
        with Connections() as conns:
            started = time.monotonic()
            pools.list_pools(conns, hosts)
            volumes.list_volumes(conns, hosts)
            out.append(time.monotonic() - started)
    return out


def listing(args, uris: list[str]) -> dict:
    per_host = args.volumes // len(uris)
    for index, (name, uri) in enumerate(zip(("hosta", "hostb"), uris, strict=False)):
        vpd("pool", "create", POOL, "--host", name, "--type", "dir", "--path", f"/var/lib/libvirt/images/{POOL}")
        make_volumes(uri, per_host, f"v{index}-")
    counted = sum(len(h["volumes"]) for h in vpd("vol", "list")["hosts"])
    pools = [timed([*VPD, "pool", "list", "--json"]) for _ in range(args.runs)]
    vols = [timed([*VPD, "vol", "list", "--json"]) for _ in range(args.runs)]
    both = [timed(["sh", "-c", f"{' '.join(VPD)} pool list --json >/dev/null && {' '.join(VPD)} vol list --json"])
            for _ in range(args.runs)]
    virsh = [timed(["sh", "-c", VIRSH_LOOP, "virsh-loop", *uris]) for _ in range(max(1, args.runs // 2))]
    floor = [timed([sys.executable, "-c", "import libvirt, pydantic, pydantic_xml, click, rich.console"])
             for _ in range(args.runs)]
    return {"volumes": counted, "in_process_s": statistics.median(in_process()),
            "import_floor_s": statistics.median(floor), "vpd_pool_list_s": statistics.median(pools),
            "vpd_vol_list_s": statistics.median(vols),
            "vpd_both_s": statistics.median(both), "virsh_loop_s": statistics.median(virsh),
            "runs": args.runs, "virsh_runs": len(virsh)}


def guest_disks(vm: str, host_uri: str) -> dict[str, int]:
    """The guest's virtio disks (name -> bytes)."""
    sizes: dict[str, int] = {}
    guest_run(vm, host_uri, lambda ch: sizes.update({k: v for k, v in ch.disks().items() if k.startswith("vd")}))
    return sizes


def guest_run(vm: str, host_uri: str, fn):
    import libvirt

    from vpd.connect.libvirt_conn import ensure_event_loop
    from vpd.vm.console import ConsoleStream
    from vpd.vm.guest_channel import GuestChannel

    ensure_event_loop()
    conn = libvirt.open(host_uri)
    try:
        with ConsoleStream(conn.lookupByName(vm), "serial1") as stream:
            ch = GuestChannel(stream.send, stream.recv)
            ch.wait_ready(timeout=60)
            return fn(ch)
    finally:
        conn.close()


def guest_dd(vm: str, host_uri: str, device: str, mib: int) -> float:
    """MiB/s of `dd if=/dev/DEVICE iflag=direct` in the guest, as busybox dd reports it."""

    def read(ch):
        started = time.monotonic()
        out = ch.run(f"dd if=/dev/{device} of=/dev/null bs=1M count={mib} iflag=direct 2>&1", timeout=600)
        return out, time.monotonic() - started

    out, wall = guest_run(vm, host_uri, read)
    m = re.search(r"copied, ([0-9.]+) seconds", out.output)
    seconds = float(m.group(1)) if m else wall
    return mib / seconds


def throughput(args, uris: list[str], work: Path) -> dict:
    data = work / "data.raw"
    data.write_bytes(os.urandom(args.mib * 1024**2))
    secret = work / "chap"
    secret.write_text("benchsecret12\n")
    size = f"{args.mib}M"
    vpd("vol", "create", POOL, "lun.raw", "--host", "hosta", "--size", size, "--format", "raw")
    vpd("vol", "upload", POOL, "lun.raw", str(data), "--host", "hosta")
    # 8 MiB larger, so the guest's two disks are told apart by size.
    vpd("vol", "create", POOL, "local.raw", "--host", "hostb", "--size", f"{args.mib + 8}M", "--format", "raw")
    vpd("vol", "upload", POOL, "local.raw", str(data), "--host", "hostb")
    vpd("iscsi", "target", "create", "--host", "hosta", "--iqn", IQN, "--vol", f"{POOL}/lun.raw", "--allow", "hostb",
        "--chap", "benchuser", "--chap-secret-file", str(secret))
    address = vpd("lab", "status")["hosts"][0]["address"]
    vpd("pool", "create", "bench-isc", "--host", "hostb", "--type", "iscsi-direct", "--portal", address,
        "--target", IQN, "--chap", "benchuser", "--chap-secret-file", str(secret))
    vpd("vm", "create", "bench-dd", "--host", "hostb", "--lab-guest", "--memory", "192")
    vpd("vm", "disk", "attach", "bench-dd", "--host", "hostb", "--vol", "bench-isc/unit:0:0:1", "--target", "vdb")
    vpd("vm", "disk", "attach", "bench-dd", "--host", "hostb", "--vol", f"{POOL}/local.raw", "--target", "vdc")
    vpd("vm", "start", "bench-dd", "--host", "hostb", "--wait-boot")
    disks = guest_disks("bench-dd", uris[1])
    local_dev = max(disks, key=disks.get)
    iscsi_dev = min(disks, key=disks.get)
    iscsi, local = [], []
    for _ in range(args.runs):  # alternated, so load on the machine hits both alike
        iscsi.append(guest_dd("bench-dd", uris[1], iscsi_dev, args.mib))
        local.append(guest_dd("bench-dd", uris[1], local_dev, args.mib))
    return {"mib": args.mib, "iscsi_mib_s": statistics.median(iscsi), "local_mib_s": statistics.median(local),
            "iscsi_runs": iscsi, "local_runs": local,
            "ratio": statistics.median(iscsi) / statistics.median(local)}


def markdown(result: dict, link: str) -> str:
    ls, tp = result["listing"], result["throughput"]
    speedup = ls["virsh_loop_s"] / ls["vpd_both_s"]

    def runs(figures: list[float]) -> str:
        return ", ".join(f"{x:.0f}" for x in figures)

    return f"""## Storage listings and iSCSI reads (issue 6)

Run {time.strftime('%Y-%m-%d')} by `python -m bench.storage` on the lab (2 hosts, link {link}), libvirt 11.3.0,
QEMU 10.0.2, TCG guests, 2 cores shared with other work. Wall times of whole commands (process start included),
medians of {ls['runs']} runs (virsh loop: {ls['virsh_runs']}).

| listing {ls['volumes']} volumes on 2 hosts | seconds |
|---|---|
| `vpd pool list --json` | {ls['vpd_pool_list_s']:.3f} |
| `vpd vol list --json` | {ls['vpd_vol_list_s']:.3f} |
| both, one after the other | {ls['vpd_both_s']:.3f} |
| the same two listings in-process (library calls, connections open) | {ls['in_process_s']:.3f} |
| Python start-up floor: `import libvirt, pydantic, pydantic_xml, click, rich.console` | {ls['import_floor_s']:.3f} |
| virsh loop: `pool-list`, `vol-list` per pool, `vol-info` per volume | {ls['virsh_loop_s']:.2f} |
| speed-up | {speedup:.1f}x |

vpd asks each host in parallel, one `listAllStoragePools` and one `listAllVolumes` per pool, then one
`XMLDesc` per volume over the same connection; the virsh loop starts a process and opens a connection
for every volume. Most of vpd's wall time is Python importing its libraries (the floor line), which
depends on the machine's load; `vpd pool|vol|iscsi` import only their own command modules.

| sequential read in the guest (dd, 1 MiB blocks, O_DIRECT, {tp['mib']} MiB) | MiB/s |
|---|---|
| virtio disk on an iSCSI LUN (tgt on hosta -> iscsi-direct pool on hostb) | {tp['iscsi_mib_s']:.1f} |
| the same data as a local raw file on hostb | {tp['local_mib_s']:.1f} |
| ratio iSCSI / local | {tp['ratio']:.2f} |

Runs (MiB/s): iSCSI {runs(tp['iscsi_runs'])}; local {runs(tp['local_runs'])}.
Both images are in the hosts' page cache, so the ratio is the cost of the iSCSI path (QEMU's libiscsi,
TCP over the lab link, tgtd in userspace), not of a disk.
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=128)
    parser.add_argument("--link-rate", default="1gbit")
    parser.add_argument("--write", action="store_true", help="Replace this bench's section of docs/benchmarks.md.")
    args = parser.parse_args()
    vpd("lab", "up", "--hosts", "2", "--link-rate", args.link_rate)
    try:
        uris = [h["uri"] if "uri" in h else f"qemu+tcp://{h['address']}/system" for h in vpd("lab", "status")["hosts"]]
        with tempfile.TemporaryDirectory(prefix="vpd-bench-storage-") as work:
            result = {"listing": listing(args, uris), "throughput": throughput(args, uris, Path(work))}
    finally:
        subprocess.run([*VPD, "lab", "down"], capture_output=True, timeout=300)
    print(json.dumps(result, indent=2))
    text = markdown(result, args.link_rate)
    print(text)
    if args.write:
        from bench.report import write_section

        write_section("storage", text)


if __name__ == "__main__":
    main()
