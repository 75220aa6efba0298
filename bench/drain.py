"""On demand: `vpd host drain` beside what a learner would type - a sequential loop of
`virsh migrate --live` over the host's guests - on the same lab, guests and link.

    .venv/bin/python -m bench.drain [--guests 8] [--memory 256] [--rounds 2] [--link-rate 1gbit]

A 3-host lab; `--guests` idle lab guests of `--memory` MiB on hosta's shared pool. Each round
drains hosta twice, the two tools alternating which goes first (load drifts on a shared machine):
- vpd: `vpd host drain hosta` (placement over hostb and hostc, its default parallelism, each
  migration validated);
- virsh: for each guest in turn, `virsh migrate --live --persistent --undefinesource --unsafe`
  to hostb or hostc alternately, from the source host, as a learner would; its wall time includes
  the temporary key, as vpd's does. Every guest is then asked whether it rebooted.
Between drains every guest goes back to hosta (by `vpd host drain` of the others, not timed). The machine's load
average is recorded with each drain. Figures are printed and written to docs/benchmarks.md.
Uses its own lab (VPD_LAB_NET=7 unless set)."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VPD_LAB_NET", "7")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-"))

import libvirt  # noqa: E402

from bench.common import vpd  # noqa: E402
from bench.report import DEFAULT, write_section  # noqa: E402
from vpd.access import temporary_access  # noqa: E402
from vpd.connect import inventory  # noqa: E402
from vpd.connect.libvirt_conn import Connections  # noqa: E402
from vpd.lab import control, hostproc  # noqa: E402
from vpd.migration.validate import guest_probe  # noqa: E402

SOURCE, TARGETS = "hosta", ("hostb", "hostc")


def load() -> float:
    return os.getloadavg()[0]


def where(conns: Connections, inv, name: str) -> str:
    for host in inv.hosts:
        try:
            if conns.get(host).lookupByName(name).isActive():
                return host.name
        except libvirt.libvirtError:
            pass
    raise SystemExit(f"{name} runs nowhere")


def probes(conns: Connections, inv, names: list[str]) -> dict[str, str]:
    """name -> boot id, wherever the guest runs."""
    return {n: guest_probe(conns.get(inv.get(where(conns, inv, n))).lookupByName(n))["boot_id"] for n in names}


def back_to_source(conns: Connections, inv, names: list[str]) -> None:
    for host in TARGETS:
        vpd("host", "drain", host, "--to", SOURCE, check=False)
    stray = [n for n in names if where(conns, inv, n) != SOURCE]
    if stray:
        raise SystemExit(f"not back on {SOURCE}: {', '.join(stray)}")


def phase_medians(results: list[dict]) -> dict[str, float]:
    """Each step of a guest's migration (its report's phase_seconds), the median over the guests."""
    phases: dict[str, list[float]] = {}
    for r in results:
        for name, seconds in ((r.get("report") or {}).get("phase_seconds") or {}).items():
            phases.setdefault(name, []).append(seconds)
    return {name: round(statistics.median(values), 2) for name, values in phases.items()}


def run_vpd(conns: Connections, inv, names: list[str], drain_args: list[str]) -> dict:
    before = probes(conns, inv, names)
    started, load_before = time.monotonic(), load()
    report = vpd("host", "drain", SOURCE, *drain_args, check=False)
    wall = time.monotonic() - started
    after = probes(conns, inv, names)
    moved = set(report.get("moved", []))
    results = report.get("results", [])
    downtimes = [r["downtime_ms"] for r in results if r.get("downtime_ms") is not None]
    # Where a guest's time goes: libvirt's job, and vpd's checks around it (preflight, validation).
    jobs = [r["report"]["job_seconds"] for r in results if r.get("report") and r["report"].get("job_seconds")]
    totals = [r["seconds"] for r in results if r.get("seconds")]
    return {"tool": "vpd", "wall_s": round(wall, 2), "moved": len(moved), "intact": sum(before[n] == after[n]
                                                                                       for n in names),
            "validated": sum(1 for r in results if r["moved"]),
            "parallel": report.get("parallel"), "downtime_median_ms": statistics.median(downtimes) if downtimes
            else None, "per_vm_s_median": statistics.median(totals) if totals else None,
            "job_s_median": statistics.median(jobs) if jobs else None, "drain_s": report.get("seconds"),
            "drain_phases": report.get("phase_seconds"), "guest_phase_medians": phase_medians(results),
            "load": round(load_before, 2), "error": report.get("error")}


def run_virsh(conns: Connections, inv, names: list[str]) -> dict:
    """One `virsh migrate --live` after another, on the source host; destinations alternate."""
    before = probes(conns, inv, names)
    src = inv.get(SOURCE)
    holder = control.load_state().host(SOURCE).holder_pid
    started, load_before = time.monotonic(), load()
    errors, downtimes = [], []
    for i, name in enumerate(names):
        dst = inv.get(TARGETS[i % len(TARGETS)])
        with temporary_access(src, dst, ttl_seconds=600) as grant:
            uri = f"qemu+ssh://root@{dst.name}.vpd.lab/system?keyfile={grant.src_key_path}"
            proc = subprocess.run(["nsenter", "-t", str(holder), "-m", "-u", "-n", "-p", "--wd=/", "--", "virsh",
                                   "migrate", "--live", "--persistent", "--undefinesource", "--unsafe", name, uri],
                                  capture_output=True, text=True, env=hostproc.HOST_ENV, timeout=600)
        if proc.returncode != 0:
            errors.append(f"{name}: {proc.stderr.strip()}")
            continue
        stats = conns.get(dst).lookupByName(name).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        downtimes.append(stats.get("downtime"))
    wall = time.monotonic() - started
    after = probes(conns, inv, names)
    moved = sum(where(conns, inv, n) != SOURCE for n in names)
    return {"tool": "virsh", "wall_s": round(wall, 2), "moved": moved,
            "intact": sum(before[n] == after[n] for n in names), "validated": 0, "parallel": 1,
            "downtime_median_ms": statistics.median(d for d in downtimes if d is not None) if downtimes else None,
            "load": round(load_before, 2), "error": "; ".join(errors) or None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--guests", type=int, default=8)
    parser.add_argument("--memory", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--link-rate", default="1gbit")
    parser.add_argument("--out", default=str(DEFAULT))
    parser.add_argument("--drain-args", default="", help="more `vpd host drain` options, e.g. '--parallel 2'")
    args = parser.parse_args()
    drain_args = args.drain_args.split()
    names = [f"dr{i}" for i in range(args.guests)]
    vpd("lab", "up", "--hosts", "3", "--link-rate", args.link_rate)
    rows: list[dict] = []
    try:
        vpd("host", "prepare", SOURCE, *TARGETS)
        inv = inventory.resolve()
        with Connections() as conns:
            versions = conns.get(inv.hosts[0])
            lib, qemu = versions.getLibVersion(), versions.getVersion()
            for name in names:  # one by one: libvirt refuses a volume while the pool builds another
                vpd("vm", "create", name, "--host", SOURCE, "--lab-guest", "--memory", str(args.memory),
                    "--disk", "size=16M,pool=CONT_VOL_COMP")
            for name in names:
                vpd("vm", "start", name, "--host", SOURCE, "--wait-boot")
            for rnd in range(args.rounds):
                order = ("vpd", "virsh") if rnd % 2 == 0 else ("virsh", "vpd")
                for tool in order:
                    back_to_source(conns, inv, names)
                    row = run_vpd(conns, inv, names, drain_args) if tool == "vpd" else run_virsh(conns, inv, names)
                    row["round"] = rnd
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        vpd("lab", "down", check=False)
    v = lambda n: f"{n // 1_000_000}.{n // 1000 % 1000}.{n % 1000}"  # noqa: E731

    def med(tool: str, key: str) -> float:
        values = [r[key] for r in rows if r["tool"] == tool and r[key] is not None]
        return statistics.median(values) if values else float("nan")

    table = ["| tool | drains | wall median s | guests moved | guests intact | validated by the tool | "
             "at once | downtime median ms | load avg |", "|---|---|---|---|---|---|---|---|---|"]
    for tool in ("vpd", "virsh"):
        mine = [r for r in rows if r["tool"] == tool]
        table.append(f"| {tool} | {len(mine)} | {med(tool, 'wall_s'):.1f} | "
                     f"{min(r['moved'] for r in mine)}-{max(r['moved'] for r in mine)}/{args.guests} | "
                     f"{min(r['intact'] for r in mine)}/{args.guests} | "
                     f"{min(r['validated'] for r in mine)}/{args.guests} | {mine[0]['parallel']} | "
                     f"{med(tool, 'downtime_median_ms'):.0f} | {', '.join(str(r['load']) for r in mine)} |")
    ratio = med("vpd", "wall_s") / med("virsh", "wall_s")
    text = (f"## Drain (issue 18 §4)\n\nRun {datetime.date.today()} by `python -m bench.drain` on the lab (3 hosts, "
            f"link shaped to {args.link_rate}), libvirt {v(lib)}, QEMU {v(qemu)}, TCG guests, 2 cores shared with "
            f"the other work on the machine (load average at the start of each drain in the last column). "
            f"{args.guests} idle {args.memory} MiB lab guests on {SOURCE}, drained onto {', '.join(TARGETS)}, "
            f"{args.rounds} round(s), the tools alternating which goes first. vpd: `vpd host drain {SOURCE}"
            f"{''.join(' ' + a for a in drain_args)}` (placement, its default parallelism, preflight and "
            "validation per guest). virsh: a sequential loop "
            "of `virsh migrate --live --persistent --undefinesource --unsafe NAME qemu+ssh://...` from the "
            "source host, destinations alternating, each with a temporary key (counted in its wall time, as "
            "vpd's grants are in its). 'intact': the guest's boot id unchanged.\n\n"
            + "\n".join(table) + f"\n\nvpd's wall time is {ratio:.2f}x the loop's (target <= 0.5).\n\n"
            "### Every drain\n\n```\n" + "\n".join(json.dumps(r) for r in rows) + "\n```\n")
    write_section("drain", text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()
