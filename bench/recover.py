"""Fault injection: vpd killed with SIGKILL mid-operation, then `vpd recover`; how often
something is left behind (target: never) and how long recovery takes.

    .venv/bin/python -m bench.recover --runs 10 [--write-docs]

Cases: a full clone killed during libvirt's copy of a 512 MiB disk; the same clone with the host's
libvirtd killed instead (restarted as the lab starts it); a backup of a running guest killed while
libvirt's backup job runs, and the same with the host's libvirtd killed; an incremental one
likewise; a restore killed while qemu-img writes the new disk; a snapshot killed once journaled; a
migration killed once its grant exists. Uses its own
lab network (VPD_LAB_NET, default 6) and state directory; brings a 2-host lab up and down. With
--write-docs the table replaces the one between the markers in docs/reliability.md."""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("VPD_LAB_NET", "6")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-"))

import libvirt  # noqa: E402

from vpd.connect import inventory as inv  # noqa: E402
from vpd.connect.libvirt_conn import open_connection  # noqa: E402
from vpd.core import journal  # noqa: E402
from vpd.hostprep.ports import port_range_text  # noqa: E402
from vpd.lab import control, hostproc, layout  # noqa: E402
from vpd.ops.recover import snapshot_in_progress  # noqa: E402
from vpd.vm.console import ConsoleStream  # noqa: E402
from vpd.vm.guest_channel import GuestChannel  # noqa: E402

VPD = [sys.executable, "-m", "vpd"]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
BEGIN, END = "<!-- bench.recover begin -->", "<!-- bench.recover end -->"


def run(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([*VPD, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise SystemExit(f"vpd {' '.join(args)} failed: {proc.stderr or proc.stdout}")
    return proc


def vpd(*args: str, timeout: float = 600):
    return json.loads(run(*args, "--json", timeout=timeout).stdout)


def holder(host: str) -> int:
    return control.load_state().host(host).holder_pid


def host_file(path: str, host: str = "hosta") -> Path:
    return hostproc.host_path(holder(host), path)


def conn(host: str = "hosta") -> libvirt.virConnect:
    return open_connection(inv.resolve().get(host))


def job_running(dom: libvirt.virDomain) -> bool:
    try:
        return dom.jobStats(0).get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE
    except libvirt.libvirtError as exc:
        return "job data missing" in str(exc)


def kill_when(argv: list[str], operation: str, ready: Callable[[dict], bool]) -> dict:
    after = (journal.entries(1) or [{"id": 0}])[0]["id"]
    proc = subprocess.Popen([*VPD, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while True:
            rows = [e for e in journal.entries(20, operation) if e["id"] > after and e["operation"] == operation]
            if rows and ready(rows[-1]):
                return rows[-1]
            if proc.poll() is not None:
                raise SystemExit(f"vpd {' '.join(argv)} ended before the kill point: {proc.communicate()}")
            if time.monotonic() > deadline:
                raise SystemExit("no kill point within 120 s")
            time.sleep(0.03)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()


def start_until(argv: list[str], operation: str, ready: Callable[[dict], bool]) -> tuple[subprocess.Popen, int]:
    after = (journal.entries(1) or [{"id": 0}])[0]["id"]
    proc = subprocess.Popen([*VPD, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while True:
        rows = [e for e in journal.entries(20, operation) if e["id"] > after and e["operation"] == operation]
        if rows and ready(rows[-1]):
            return proc, rows[-1]["id"]
        if proc.poll() is not None:
            raise SystemExit(f"vpd {' '.join(argv)} ended before the kill point: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("no kill point within 180 s")
        time.sleep(0.03)


def planned(kind: str) -> Callable[[dict], bool]:
    return lambda row: any(o["kind"] == kind for o in row["objects"])


def recover(row: dict) -> tuple[float, bool]:
    started = time.monotonic()
    out = vpd("recover")
    took = time.monotonic() - started
    entry = next((e for e in out["entries"] if e["id"] == row["id"]), None)
    return took, bool(entry and entry["recovered"])


# --- the cases: each run returns (seconds to recover, leftovers found) ----------------------------

def clone_leftovers(target: Path) -> list[str]:
    """What a clone of bsrc into bnew left on hosta (and removed, for the next run)."""
    left = ["volume bnew.raw"] if target.exists() else []
    if "bnew" in [d.name() for d in conn().listAllDomains()]:
        left.append("domain bnew")
        run("vm", "undefine", "bnew", "--host", "hosta", "--remove-storage", check=False)
    return left


def backup_leftovers(dom: libvirt.virDomain, root: Path, checkpoints: set[str], folders: set[str]) -> list[str]:
    """What a backup of bbk left: its job still running, checkpoints or folders that were not there."""
    left = ["backup job"] if job_running(dom) else []
    left += [f"checkpoint {c}" for c in {c.getName() for c in dom.listAllCheckpoints(0)} ^ checkpoints]
    left += [f"folder {p.name}" for p in (root / "bbk").iterdir() if p.name not in folders]
    return left


def clone_case() -> tuple[float, list[str]]:
    target = host_file(f"{layout.SHARED_MOUNT}/bnew.raw")
    row = kill_when(["vm", "clone", "bsrc", "bnew", "--host", "hosta"], "vm.clone",
                    lambda r: planned("volume")(r) and target.exists())
    took, ok = recover(row)
    left = [] if ok else [f"journal #{row['id']} not recovered"]
    return took, left + clone_leftovers(target)


def backup_case(root: Path) -> tuple[float, list[str]]:
    dom = conn().lookupByName("bbk")
    before = {c.getName() for c in dom.listAllCheckpoints(0)}
    folders = {p.name for p in (root / "bbk").iterdir()}
    row = kill_when(["backup", "bbk", "--to", str(root), "--host", "hosta"], "backup.create",
                    lambda r: planned("backup-job")(r) and job_running(dom))
    took, ok = recover(row)
    left = [] if ok else [f"journal #{row['id']} not recovered"]
    return took, left + backup_leftovers(dom, root, before, folders)


def kill_and_restart_libvirtd(proc: subprocess.Popen) -> None:
    """SIGKILL hosta's libvirtd, let vpd give up, start libvirtd as `vpd lab up` does
    (lab/control.py, _start_daemons) and wait until it answers."""
    pid = hostproc.host_path(holder("hosta"), "/run/libvirtd.pid").read_text().split()[0]
    hostproc.run_in_host(holder("hosta"), ["kill", "-9", pid])
    proc.communicate()
    hostproc.run_in_host(holder("hosta"), ["libvirtd", "-d", "--listen", "-p", "/run/libvirtd.pid"])
    deadline = time.monotonic() + 120
    while True:
        try:
            conn().close()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def clone_libvirtd_case() -> tuple[float, list[str]]:
    target = host_file(f"{layout.SHARED_MOUNT}/bnew.raw")
    proc, entry_id = start_until(["vm", "clone", "bsrc", "bnew", "--host", "hosta"], "vm.clone",
                                 lambda r: planned("volume")(r) and target.exists())
    kill_and_restart_libvirtd(proc)
    row = next(e for e in journal.entries(50) if e["id"] == entry_id)
    took, ok = recover(row)
    left = [] if ok else [f"journal #{row['id']} {row['status']}, not recovered"]
    return took, left + clone_leftovers(target)


def job_copying(dom: libvirt.virDomain) -> bool:
    """backupBegin has returned: libvirt describes the job (inside it, it says "job data missing")."""
    try:
        return dom.jobStats(0).get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE
    except libvirt.libvirtError:
        return False


def backup_libvirtd_case(root: Path) -> tuple[float, list[str]]:
    before = {c.getName() for c in conn().lookupByName("bbk").listAllCheckpoints(0)}
    folders = {p.name for p in (root / "bbk").iterdir()}
    proc, entry_id = start_until(["backup", "bbk", "--to", str(root), "--host", "hosta"], "backup.create",
                                 lambda r: planned("backup-job")(r) and job_copying(conn().lookupByName("bbk")))
    kill_and_restart_libvirtd(proc)
    row = next(e for e in journal.entries(50) if e["id"] == entry_id)
    took, ok = recover(row) if row["status"] != "failed" else (0.0, True)  # undo may have finished it
    left = [] if ok else [f"journal #{row['id']} {row['status']}, not recovered"]
    dom = conn().lookupByName("bbk")
    return took, left + backup_leftovers(dom, root, before, folders)


def incremental_case(root: Path) -> tuple[float, list[str]]:
    dom = conn().lookupByName("bbk")
    before = {c.getName() for c in dom.listAllCheckpoints(0)}
    folders = {p.name for p in (root / "bbk").iterdir()}
    row = kill_when(["backup", "bbk", "--to", str(root), "--host", "hosta", "--incremental"], "backup.create",
                    lambda r: planned("backup-job")(r) and job_running(dom))
    took, ok = recover(row)
    left = [] if ok else [f"journal #{row['id']} not recovered"]
    return took, left + backup_leftovers(dom, root, before, folders)


def qemu_img_writing(path: str) -> bool:
    ps = hostproc.run_in_host(holder("hosta"), ["ps", "-eo", "args"]).stdout.splitlines()
    return any("qemu-img" in line and path in line for line in ps)


def restore_case(backup: str) -> tuple[float, list[str]]:
    path = f"{layout.SHARED_MOUNT}/brest.qcow2"
    row = kill_when(["restore", backup, "--host", "hosta", "--as", "brest"], "backup.restore",
                    lambda r: planned("volume")(r) and qemu_img_writing(path))
    took, ok = recover(row)
    left = [] if ok else [f"journal #{row['id']} not recovered"]
    if host_file(path).exists():
        left.append("volume brest.qcow2")
    if qemu_img_writing(path):
        left.append("qemu-img still writing")
    if "brest" in [d.name() for d in conn().listAllDomains()]:
        left.append("domain brest")
        run("vm", "undefine", "brest", "--host", "hosta", "--remove-storage", check=False)
    return took, left


def snapshot_case() -> tuple[float, list[str]]:
    dom = conn().lookupByName("bmig")
    row = kill_when(["snapshot", "create", "bmig", "bsnap", "--host", "hosta"], "snapshot.create",
                    planned("snapshot"))
    started = time.monotonic()
    out = vpd("recover")
    took = time.monotonic() - started
    entry = next((e for e in out["entries"] if e["id"] == row["id"]), None)
    left = [] if entry and entry["recovered"] else [f"journal #{row['id']} not recovered"]
    while snapshot_in_progress(dom):  # what libvirt ends with, compared with what recovery said
        time.sleep(0.1)
    exists = "bsnap" in dom.snapshotListNames(0)
    said = entry["objects"][0]["action"] if entry and entry["objects"] else None
    if said != ("keep" if exists else "gone"):
        left.append(f"snapshot {'kept by libvirt' if exists else 'missing'}, recovery said {said}")
    if exists:
        run("snapshot", "delete", "bmig", "bsnap", "--host", "hosta", check=False)
    return took, left


def dirty_guest_disk(name: str, mib: int) -> None:
    """The guest writes MIB of random data past the filled part of its disk: an incremental's work."""
    dom = conn().lookupByName(name)
    with ConsoleStream(dom, "serial1") as stream:
        ch = GuestChannel(stream.send, stream.recv)
        ch.wait_ready(timeout=60)
        result = ch.run(f"dd if=/dev/urandom of=/dev/sda bs=1M seek=300 count={mib} conv=fsync 2>&1", timeout=300)
        if result.exit_code != 0:
            raise SystemExit(f"could not dirty {name}'s disk: {result.output}")


def migrate_case() -> tuple[float, list[str]]:
    row = kill_when(["migrate", "bmig", "--from", "hosta", "--to", "hostb", "--bandwidth", "4", "--timeout", "90"],
                    "migrate", planned("grant"))
    [grant_id] = [o["name"] for o in row["objects"] if o["kind"] == "grant"]
    took, ok = recover(row)
    left = [] if ok else [f"journal #{row['id']} not recovered"]
    state = next(g for g in vpd("access", "list", "--all")["grants"] if g["id"] == grant_id)["state"]
    if state != "revoked":
        left.append(f"grant {grant_id} {state}")
    keys = hostproc.run_in_host(holder("hostb"), ["cat", "/root/.ssh/authorized_keys"], check=False).stdout
    if f"vpd-grant:{grant_id}" in keys:
        left.append("key line on hostb")
    if host_file(f"/root/.ssh/vpd-grant-{grant_id}").exists():
        left.append("private key on hosta")
    dom = conn().lookupByName("bmig")
    if job_running(dom):
        left.append("migration job")
    return took, left


def open_migration_ports() -> str:
    address = control.load_state().host("hosta").address
    added = hostproc.run_in_host(holder("hostb"), ["nft", "-e", "-a", "insert", "rule", "inet", "vpd_lab_host",
                                                   "input", "ip", "saddr", address, "tcp", "dport",
                                                   port_range_text(), "accept"])
    return added.stdout.split("# handle ")[1].split()[0]


def set_up(root: Path) -> None:
    pool, mount = layout.SHARED_POOL, layout.SHARED_MOUNT
    vpd("vm", "create", "bsrc", "--host", "hosta", "--lab-guest", "--disk", f"size=768M,pool={pool},format=raw")
    hostproc.run_in_host(holder("hosta"), ["dd", "if=/dev/urandom", f"of={mount}/bsrc.raw", "bs=1M", "count=512",
                                           "conv=notrunc"], timeout=120)
    vpd("vm", "create", "bbk", "--host", "hosta", "--lab-guest", "--disk", f"size=384M,pool={pool}")
    fill = f"{mount}/bbk-fill.raw"
    hostproc.run_in_host(holder("hosta"), ["dd", "if=/dev/urandom", f"of={fill}", "bs=1M", "count=256"], timeout=120)
    hostproc.run_in_host(holder("hosta"), ["qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", fill,
                                           f"{mount}/bbk.qcow2"], timeout=300)
    hostproc.run_in_host(holder("hosta"), ["rm", "-f", fill])
    vpd("vm", "start", "bbk", "--host", "hosta", "--wait-boot")
    vpd("vm", "create", "bmig", "--host", "hosta", "--lab-guest", "--disk", f"size=16M,pool={pool}",
        "--start", "--wait-boot", "--dirty", "32,8")
    root.mkdir(parents=True, exist_ok=True)


def table(results: dict[str, list[tuple[float, list[str]]]]) -> str:
    lines = ["| case | runs | runs with leftovers | leftovers | recover: median s | max s |",
             "|---|---|---|---|---|---|"]
    for case, runs in results.items():
        times = [t for t, _ in runs]
        dirty = [left for _, left in runs if left]
        names = sorted({x for left in dirty for x in left})
        lines.append(f"| {case} | {len(runs)} | {len(dirty)} | {', '.join(names) or '-'} | "
                     f"{statistics.median(times):.1f} | {max(times):.1f} |")
    return "\n".join(lines)


def merge_rows(doc: str, text: str, order: list[str]) -> str:
    """The docs' table with the rows of `text` (a partial run) replacing or joining its own, in
    the cases' order."""
    head, rest = doc.split(BEGIN, 1)
    block, tail = rest.split(END, 1)

    def rows(table_text: str) -> dict[str, str]:
        return {line.split(" | ")[0][2:]: line for line in table_text.splitlines()
                if line.startswith("| ") and not line.startswith("| case ")}

    merged = rows(block) | rows(text)
    lines = block.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("|---"))
    body = lines[:rule + 1] + [merged[name] for name in order if name in merged]
    return head + BEGIN + "\n".join(body) + "\n" + END + tail


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--only", metavar="TEXT", help="only the cases whose name holds TEXT; --write-docs "
                        "then replaces only their rows")
    args = parser.parse_args()
    vpd("lab", "up", "--hosts", "2")
    root = Path(tempfile.mkdtemp(prefix="vpd-bench-backups-"))
    results: dict[str, list[tuple[float, list[str]]]] = {}
    try:
        set_up(root)
        handle = open_migration_ports()
        full = vpd("backup", "bbk", "--to", str(root), "--host", "hosta")
        dirty_guest_disk("bbk", 24)
        cases = {"clone (full, 512 MiB) killed mid-copy": clone_case,
                 "clone (full, 512 MiB), libvirtd killed mid-copy": clone_libvirtd_case,
                 "backup (running guest) killed mid-job": lambda: backup_case(root),
                 "backup (running guest), libvirtd killed mid-job": lambda: backup_libvirtd_case(root),
                 "incremental backup killed mid-job": lambda: incremental_case(root),
                 "restore (256 MiB) killed while qemu-img writes": lambda: restore_case(full["path"]),
                 "snapshot (running guest) killed once journaled": snapshot_case,
                 "migrate killed once its grant exists": migrate_case}
        for name, case in cases.items():
            if args.only and args.only not in name:
                continue
            results[name] = []
            for i in range(args.runs):
                results[name].append(case())
                print(f"{name} #{i + 1}: recover {results[name][-1][0]:.1f} s, leftovers {results[name][-1][1]}",
                      flush=True)
        hostproc.run_in_host(holder("hostb"), ["nft", "delete", "rule", "inet", "vpd_lab_host", "input",
                                               "handle", handle], check=False)
    finally:
        run("lab", "down", check=False)
    text = table(results)
    print(text)
    if args.write_docs and args.only and BEGIN in DOCS.read_text():
        DOCS.write_text(merge_rows(DOCS.read_text(), text, list(cases)))
    elif args.write_docs:
        doc = DOCS.read_text()
        block = (f"{BEGIN}\n{args.runs} runs per case, {time.strftime('%Y-%m-%d')}, "
                 f"{os.cpu_count()} cores (shared with other work), `python -m bench.recover`:\n\n{text}\n{END}")
        DOCS.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), block, doc, flags=re.S)
                        if BEGIN in doc else doc.rstrip("\n") + "\n\n## Fault injection\n\n" + block + "\n")


if __name__ == "__main__":
    main()
