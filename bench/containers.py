"""On demand: containers (Incus) beside VMs on the lab, and `vpd ct list` beside `incus list`.

    .venv/bin/python -m bench.containers [--many 50] [--listed 200] [--runs 3]

(1) Launch to first exec: `vpd ct launch` then `vpd ct exec NAME -- true` (CLI), beside the
busybox lab VM's `vpd vm start --wait-boot` (start to boot marker). (2) --many containers from
one image (created stopped, through vpd's library), time and extra disk in the storage pool,
beside `vpd vm clone --linked --count N` of the lab VM (time and extra disk in its pool).
(3) `vpd ct list` of --listed containers on 2 hosts, beside `incus list` run once per host by
hand (each host's socket through INCUS_DIR). Figures are printed and written to
docs/benchmarks.md. Uses its own lab (VPD_LAB_NET=6) and state directory."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("VPD_LAB_NET", "6")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-"))

from bench.common import VPD, timed, vpd  # noqa: E402
from bench.report import write_section  # noqa: E402
from vpd.core import paths  # noqa: E402
from vpd.ct import operations as ct_ops  # noqa: E402
from vpd.ops import Session  # noqa: E402

HOSTS = ("hosta", "hostb")


def du_bytes(path: Path) -> int:
    """Blocks really used (du counts a linked clone's overlay, not its backing file's size)."""
    out = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def incus_dir(host: str) -> Path:
    return paths.lab_dir() / "hosts" / host / "incus"


def launch_to_exec(runs: int) -> dict:
    out = []
    for i in range(runs):
        name = f"lx{i}"
        launch_s, _ = timed(lambda: vpd("ct", "launch", "bb", name, "--host", "hosta"))
        exec_s, _ = timed(lambda: subprocess.run([*VPD, "ct", "exec", name, "--", "true"], check=True,
                                                 capture_output=True, timeout=120))
        out.append({"launch_s": round(launch_s, 2), "exec_s": round(exec_s, 2), "total_s": round(launch_s + exec_s, 2)})
        vpd("ct", "delete", name, "--force")
    return {"runs": out}


def vm_boot(runs: int) -> dict:
    out = []
    for _ in range(runs):
        wall, r = timed(lambda: vpd("vm", "start", "bvm", "--host", "hosta", "--wait-boot"))
        out.append({"boot_s": r["result"]["boot_seconds"], "wall_s": round(wall, 2)})
        vpd("vm", "destroy", "bvm", "--host", "hosta")
    return {"runs": out}


def many_containers(session: Session, n: int) -> dict:
    pool = incus_dir("hosta") / "storage-pools" / "default"
    before = du_bytes(pool)
    seconds, _ = timed(lambda: [ct_ops.launch(session, "bb", f"m{i}", "hosta", start=False) for i in range(n)])
    used = du_bytes(pool) - before
    delete_s, _ = timed(lambda: [ct_ops.delete(session, f"m{i}", "hosta") for i in range(n)])
    return {"n": n, "create_s": round(seconds, 2), "extra_bytes": used, "delete_s": round(delete_s, 2)}


def many_clones(n: int) -> dict:
    pool = paths.lab_dir() / "shared"
    before = du_bytes(pool)
    seconds, made = timed(lambda: vpd("vm", "clone", "bvm", "lk", "--host", "hosta", "--linked", "--count", str(n)))
    used = du_bytes(pool) - before
    for i in range(1, n + 1):
        vpd("vm", "undefine", f"lk-{i}", "--host", "hosta", "--remove-storage")
    return {"n": n, "clone_s": round(seconds, 2), "extra_bytes": used}


def listing(session: Session, n: int, runs: int) -> dict:
    per_host = n // len(HOSTS)

    def fill(host: str) -> None:
        for i in range(per_host):
            ct_ops.launch(session, "bb", f"l{host[-1]}{i}", host, start=False)

    with ThreadPoolExecutor(len(HOSTS)) as pool:
        list(pool.map(fill, HOSTS))
    listed = vpd("ct", "list")
    assert sum(len(h["containers"]) for h in listed["hosts"]) == per_host * len(HOSTS)
    vpd_s = [timed(lambda: vpd("ct", "list"))[0] for _ in range(runs)]
    library_s = [timed(lambda: ct_ops.list_cts(session))[0] for _ in range(runs)]
    # The CLI's own start-up (Python, imports), the same in every vpd command.
    startup_s = [timed(lambda: subprocess.run([*VPD, "--version"], check=True, capture_output=True))[0]
                 for _ in range(runs)]

    def by_hand() -> None:  # what a user types: one `incus list` per host
        for host in HOSTS:
            subprocess.run(["incus", "list", "--format", "csv"], check=True, capture_output=True, timeout=300,
                           env={**os.environ, "INCUS_DIR": str(incus_dir(host))})

    incus_s = [timed(by_hand)[0] for _ in range(runs)]

    def empty(host: str) -> None:
        for i in range(per_host):
            ct_ops.delete(session, f"l{host[-1]}{i}", host)

    with ThreadPoolExecutor(len(HOSTS)) as pool:
        list(pool.map(empty, HOSTS))
    return {"n": per_host * len(HOSTS), "vpd_s": [round(s, 2) for s in vpd_s],
            "library_s": [round(s, 3) for s in library_s], "startup_s": [round(s, 2) for s in startup_s],
            "incus_s": [round(s, 2) for s in incus_s]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--many", type=int, default=50)
    parser.add_argument("--listed", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    vpd("lab", "up", "--hosts", "2")
    session = Session()
    try:
        built = vpd("ct", "image", "build")
        for host in HOSTS:
            vpd("ct", "image", "import", built["rootfs"], built["metadata"], "--alias", "bb", "--host", host)
        # A disk for the clones to link to, in the shared dir pool (as bench.vm_ops does).
        vpd("vm", "create", "bvm", "--host", "hosta", "--lab-guest", "--disk", "size=256M,pool=CONT_VOL_COMP")
        ct = launch_to_exec(args.runs)
        vm = vm_boot(args.runs)
        many = many_containers(session, args.many)
        clones = many_clones(args.many)
        lst = listing(session, args.listed, args.runs)
    finally:
        session.close()
        vpd("lab", "down", check=False)
    med = statistics.median
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (the machine is shared)"
    ct_total = med(r["total_s"] for r in ct["runs"])
    rows = [
        f"| launch to first exec, `vpd ct launch` + `vpd ct exec -- true` (CLI) | "
        f"{ct_total:.2f} s (launch {med(r['launch_s'] for r in ct['runs']):.2f} + exec "
        f"{med(r['exec_s'] for r in ct['runs']):.2f}) | busybox VM `vpd vm start --wait-boot`: start to boot marker "
        f"{med(r['boot_s'] for r in vm['runs']):.2f} s (CLI {med(r['wall_s'] for r in vm['runs']):.2f} s) |",
        f"| {many['n']} containers from one image (created stopped, vpd's library) | {many['create_s']:.1f} s, "
        f"{many['extra_bytes'] / 2**20:.1f} MiB more in the pool "
        f"({many['extra_bytes'] / many['n'] / 2**20:.2f} MiB each; deleting them {many['delete_s']:.1f} s) | "
        f"{clones['n']} linked clones of the VM, "
        f"`vpd vm clone --linked --count {clones['n']}`: {clones['clone_s']:.1f} s, "
        f"{clones['extra_bytes'] / 2**20:.1f} MiB more ({clones['extra_bytes'] / clones['n'] / 2**20:.2f} MiB each) |",
        f"| `vpd ct list` of {lst['n']} containers on 2 hosts | {med(lst['vpd_s']):.2f} s median of {args.runs} "
        f"(in vpd's library {med(lst['library_s']):.3f} s; Python's start-up, `vpd --version`, "
        f"{med(lst['startup_s']):.2f} s; the rest is loading the CLI's modules) | "
        f"`incus list` once per host (INCUS_DIR per host): {med(lst['incus_s']):.2f} s median |",
    ]
    text = (
        f"## Containers beside VMs (issue 15)\n\nRun {datetime.date.today()} by `python -m bench.containers` on a "
        f"2-host lab (Incus 6.0 per host, `dir` storage driver, busybox image of 0.84 MiB; the lab VM is the "
        f"busybox guest under TCG), 2 cores, {load}.\n\n"
        "| what | containers | beside |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "The `dir` driver copies the image's rootfs into every container (no copy-on-write), so the "
        "containers' disk grows with their number; linked clones only add a qcow2 overlay each.\n\n"
        "```\n" + json.dumps({"launch_to_exec": ct, "vm_boot": vm, "many": many, "clones": clones,
                              "listing": lst}) + "\n```\n")
    write_section("containers", text)
    print(text)


if __name__ == "__main__":
    main()
