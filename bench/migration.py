"""On demand: vpd migrate beside `virsh migrate --live` (the seed's command, with
virsh's defaults), on the same lab, guest and link.

    .venv/bin/python -m bench.migration [--runs 10] [--link-rate 1gbit] [--skip-dirty]

(a) an idle 256 MiB guest, `--runs` migrations each way, the tools alternating run by run (and
    which goes first), each run recording the load average and QEMU's and libvirt's downtime parts;
(b) a guest rewriting 200 MiB as fast as it can (about 1 GiB/s, far above a
    1 Gbit/s link): vpd with its policy, virsh with its defaults given 120 s.
Every run asks the guest afterwards whether it rebooted and whether any page it
checks lost its content; a run with a mismatch counts as failed. Each idle run's pause is
taken apart from QEMU's own figures and event timestamps (SourceQemu), for every tool alike.
`--virsh-remote` adds virsh run from this machine against the source's libvirtd
(`virsh -c URI migrate --p2p`), where vpd runs: the vantage point changes libvirt's job time.
`--socket-compare` adds both tools again on hosts whose TCP sockets keep the kernel's default
(no mark on unsent bytes, as before `vpd host prepare` set one), alternating with the others.
`--compare-src DIR` adds a third tool to the alternation: the vpd whose sources are in DIR (a
previous commit's `src/`, say), to weigh a change of policy on the same load. The figures are
printed and written to docs/benchmarks.md. Uses its own lab (VPD_LAB_NET=7)."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("VPD_LAB_NET", "7")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-"))

import libvirt  # noqa: E402
import libvirt_qemu  # noqa: E402

from bench.common import vpd  # noqa: E402
from bench.report import DEFAULT, write_section  # noqa: E402
from vpd.access import temporary_access  # noqa: E402
from vpd.connect import inventory  # noqa: E402
from vpd.connect.libvirt_conn import Connections  # noqa: E402
from vpd.core.names import parse_rate  # noqa: E402
from vpd.hostprep import socket_buffer  # noqa: E402
from vpd.lab import control, hostproc  # noqa: E402
from vpd.migration.validate import guest_probe  # noqa: E402

VIRSH_LIMIT_S = 120


def where(conns: Connections, inv, name: str):
    for host in inv.hosts:
        try:
            if conns.get(host).lookupByName(name).isActive():
                return host
        except libvirt.libvirtError:
            pass
    raise SystemExit(f"{name} runs nowhere")


def intact(before: dict, after: dict) -> bool:
    ok = after["boot_id"] == before["boot_id"]
    if before.get("dirty") is not None:
        ok = ok and after["dirty"] is not None and after["dirty"].errors == 0
    return ok


class SourceQemu:
    """What QEMU itself says about a migration, for both tools alike:
    - `query-migrate` on the source, asked every POLL_S through libvirt's monitor pass-through while
      the job runs (libvirt allows it during the job; 1-7 ms an answer). The source QEMU answers
      'completed' with its final figures until libvirt's Confirm ends it; libvirt's completed-job
      stats do not pass on the bytes sent while paused (`downtime-bytes`) nor the passes it counted.
    - QEMU's own events with QEMU's timestamps (the lab's hosts share one clock): STOP and each
      MIGRATION state on the source, RESUME on the destination. libvirt turns on pause-before-
      switchover, so the source stops, waits in 'pre-switchover' for libvirt's migrate-continue,
      sends the device state and the last RAM ('device'), and completes; libvirt's Finish then
      resumes the guest on the destination."""
    POLL_S = 0.02

    def __init__(self, src_conn: libvirt.virConnect, dst_conn: libvirt.virConnect, name: str):
        self.dom = src_conn.lookupByName(name)
        self.name = name
        self.conns = (src_conn, dst_conn)
        self.final: dict = {}
        self.events: list[tuple[str, str, str, float]] = []  # (side, event, migration status, epoch s)
        self._callbacks: list[tuple[libvirt.virConnect, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                answer = json.loads(libvirt_qemu.qemuMonitorCommand(self.dom, '{"execute":"query-migrate"}', 0))
            except libvirt.libvirtError:
                return  # the source QEMU is gone: the job ended
            found = answer.get("return", {})
            if found.get("status") == "completed" and "ram" in found:  # not an earlier incoming one's
                self.final = found
            time.sleep(self.POLL_S)

    def _event(self, side: str):
        def seen(_conn, dom, event, seconds, micros, details, _opaque) -> None:
            if dom is not None and dom.name() == self.name and event in ("STOP", "RESUME", "MIGRATION"):
                data = json.loads(details) if isinstance(details, str) and details else details
                status = data.get("status", "") if isinstance(data, dict) else ""
                self.events.append((side, event, status, seconds + micros / 1e6))
        return seen

    def __enter__(self) -> SourceQemu:
        for side, conn in zip(("src", "dst"), self.conns, strict=True):
            self._callbacks.append((conn, libvirt_qemu.qemuMonitorEventRegister(conn, None, None,
                                                                                self._event(side), None, 0)))
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        time.sleep(0.2)  # the destination's RESUME may still be on its way through the event loop
        for conn, cid in self._callbacks:
            try:
                libvirt_qemu.qemuMonitorEventDeregister(conn, cid)
            except libvirt.libvirtError:
                pass

    def _at(self, side: str, event: str, status: str = "") -> float | None:
        times = [t for s, e, st, t in self.events if s == side and e == event and st == status]
        return times[-1] if times else None

    def parts(self) -> dict:
        ram = self.final.get("ram", {})
        stop, pre = self._at("src", "STOP"), self._at("src", "MIGRATION", "pre-switchover")
        device, done = self._at("src", "MIGRATION", "device"), self._at("src", "MIGRATION", "completed")
        resume = self._at("dst", "RESUME")

        def ms(a: float | None, b: float | None) -> float | None:
            return round((b - a) * 1000, 1) if a is not None and b is not None else None

        return {"qemu_downtime": self.final.get("downtime"), "qemu_setup": self.final.get("setup-time"),
                "qemu_total": self.final.get("total-time"), "paused_bytes": ram.get("downtime-bytes"),
                "precopy_bytes": ram.get("precopy-bytes"), "passes": ram.get("dirty-sync-count"),
                "qemu_mbps": ram.get("mbps"),
                # the pause, step by step, from QEMU's event timestamps
                "stop_to_pre_switchover_ms": ms(stop, pre), "waiting_for_libvirt_ms": ms(pre, device),
                "device_and_last_ram_ms": ms(device, done), "completed_to_resumed_ms": ms(done, resume),
                "stop_to_resumed_ms": ms(stop, resume)}


def downtime_parts(stats: dict) -> dict:
    """The parts of the downtime in libvirt's completed-job stats: `downtime` and `setup_time` are
    QEMU's own query-migrate figures, `downtime_net` and `time_elapsed_net` libvirt's, measured
    across the two hosts' clocks (its Finish/Confirm phases included): their difference is what
    libvirt adds to QEMU's pause."""
    keys = ("downtime", "downtime_net", "setup_time", "time_elapsed", "time_elapsed_net", "memory_iteration")
    return {k: stats[k] for k in keys if k in stats}


def run_vpd(conns, inv, name: str, link_bps: int, src_dir: str | None = None, tool: str = "vpd") -> dict:
    src = where(conns, inv, name)
    dst = next(h for h in inv.hosts if h.name != src.name)
    load = os.getloadavg()[0]
    with SourceQemu(conns.get(src), conns.get(dst), name) as qemu:
        report = vpd("migrate", name, "--to", dst.name, "--persistent", "--undefinesource", check=False, src=src_dir)
    stats = report.get("job_stats", {})
    return {"tool": tool, "ok": report.get("ok", False), "downtime_ms": report.get("downtime_ms"),
            "parts": downtime_parts(stats) | qemu.parts(), "load": load,
            "job_s": stats.get("time_elapsed", 0) / 1000, "wall_s": report.get("total_seconds"),
            "bytes": stats.get("memory_processed"), "iterations": report.get("iterations"),
            "bound_s": (stats.get("memory_processed") or 0) * 8 / link_bps,
            "error": report.get("error"), "plan": report.get("plan")}


def run_virsh(conns, inv, name: str, link_bps: int, limit_s: float, remote: bool = False) -> dict:
    """The seed's command, run on the source host as a learner would; `remote`: from this machine
    against the source's libvirtd (`virsh -c URI migrate --p2p`), where vpd runs."""
    src = where(conns, inv, name)
    dst = next(h for h in inv.hosts if h.name != src.name)
    dom = conns.get(src).lookupByName(name)
    before = guest_probe(dom)
    holder = control.load_state().host(src.name).holder_pid
    load = os.getloadavg()[0]
    # The key's set-up counts in virsh's wall time, as vpd's temporary grant counts in vpd's.
    started = time.monotonic()
    with temporary_access(src, dst, ttl_seconds=int(limit_s) + 300) as grant:
        uri = f"qemu+ssh://root@{dst.name}.vpd.lab/system?keyfile={grant.src_key_path}"
        migrate = ["migrate", "--live", "--persistent", "--undefinesource", "--unsafe", name, uri]
        argv = (["virsh", "-c", src.uri, migrate[0], "--p2p", *migrate[1:]] if remote else
                ["nsenter", "-t", str(holder), "-m", "-u", "-n", "-p", "--wd=/", "--", "virsh", *migrate])
        with SourceQemu(conns.get(src), conns.get(dst), name) as qemu:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=hostproc.HOST_ENV)
            try:
                proc.wait(timeout=limit_s)
            except subprocess.TimeoutExpired:
                dom.abortJob()
                proc.wait(60)
                return {"tool": "virsh", "ok": False, "error": f"did not converge in {limit_s:g} s (aborted)",
                        "wall_s": round(time.monotonic() - started, 2), "load": load}
        wall = time.monotonic() - started
    if proc.returncode != 0:
        return {"tool": "virsh", "ok": False, "error": proc.stderr.strip(), "wall_s": round(wall, 2), "load": load}
    new = conns.get(dst).lookupByName(name)
    stats = new.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)  # read once: libvirt then drops them
    after = guest_probe(new)
    return {"tool": "virsh", "ok": intact(before, after), "downtime_ms": stats.get("downtime"),
            "job_s": stats.get("time_elapsed", 0) / 1000, "wall_s": round(wall, 2),
            "bytes": stats.get("memory_processed"), "iterations": stats.get("memory_iteration"),
            "bound_s": (stats.get("memory_processed") or 0) * 8 / link_bps,
            "parts": downtime_parts(stats) | qemu.parts(), "load": load,
            "error": None if intact(before, after) else "guest rebooted or memory lost"}


def summary(rows: list[dict]) -> dict:
    good = [r for r in rows if r["ok"]]
    out = {"runs": len(rows), "ok": len(good)}
    if good:
        down = [r["downtime_ms"] for r in good]
        out.update(downtime_median=statistics.median(down), downtime_max=max(down),
                   job_median=statistics.median(r["job_s"] for r in good),
                   wall_median=statistics.median(r["wall_s"] for r in good),
                   mib_median=statistics.median(r["bytes"] for r in good) / 2**20,
                   bound_median=statistics.median(r["bound_s"] for r in good),
                   ratio_median=statistics.median(r["job_s"] / r["bound_s"] for r in good if r["bound_s"]))
    out["errors"] = sorted({r["error"] for r in rows if r.get("error")})
    return out


def line(label: str, s: dict) -> str:
    if "downtime_median" not in s:
        return f"| {label} | {s['ok']}/{s['runs']} | - | - | - | - | - | - | {'; '.join(s['errors'])} |"
    return (f"| {label} | {s['ok']}/{s['runs']} | {s['downtime_median']:.0f} | {s['downtime_max']:.0f} | "
            f"{s['job_median']:.2f} | {s['bound_median']:.2f} | {s['ratio_median']:.2f} | {s['mib_median']:.0f} | "
            f"{'; '.join(s['errors'])} |")


def _med(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


BREAKDOWN_HEADER = ("| tool | runs ok | downtime median / max ms (libvirt) | QEMU's downtime median / max ms | "
                    "stop to resume median / max ms (QEMU's events) | "
                    "libvirt's resume after QEMU's ms | bytes sent paused KiB (ms of link) | setup ms | "
                    "RAM passes | job median s | wall median s | load avg |\n"
                    "|---|---|---|---|---|---|---|---|---|---|---|---|")


def breakdown_line(tool: str, rows: list[dict], link_bps: int) -> str:
    """One tool's downtime parts: libvirt's figure (stop on the source to resume on the destination),
    QEMU's own (stop to the last byte sent: vCPUs stopped, final RAM pass, device state, disks
    handed over), what libvirt adds after it (Finish: the destination's resume, over qemu+ssh), the
    bytes sent while paused (final RAM pass and device state) and what they take on the link."""
    good = [r for r in rows if r["ok"]]
    parts = [r.get("parts", {}) for r in good]
    down = [r["downtime_ms"] for r in good if r.get("downtime_ms") is not None]
    qemu = [p.get("qemu_downtime") for p in parts if p.get("qemu_downtime") is not None]
    after = [p["downtime"] - p["qemu_downtime"] for p in parts
             if p.get("downtime") is not None and p.get("qemu_downtime") is not None]
    resumed = [p["stop_to_resumed_ms"] for p in parts if p.get("stop_to_resumed_ms") is not None]
    paused = _med([p.get("paused_bytes") for p in parts])
    setup = [p.get("setup_time") for p in parts if p.get("setup_time") is not None]
    loads = [r["load"] for r in rows if r.get("load") is not None]
    return (f"| {tool} | {len(good)}/{len(rows)} | {_fmt(_med(down))} / {_fmt(max(down) if down else None)} | "
            f"{_fmt(_med(qemu))} / {_fmt(max(qemu) if qemu else None)} | "
            f"{_fmt(_med(resumed))} / {_fmt(max(resumed) if resumed else None)} | {_fmt(_med(after))} | "
            f"{_fmt(paused / 1024 if paused else None)} "
            f"({_fmt(paused * 8 / link_bps * 1000 if paused else None, '.1f')}) | "
            f"{min(setup) if setup else '-'}-{max(setup) if setup else '-'} | "
            f"{_fmt(_med([p.get('passes') for p in parts]))} | {_fmt(_med([r['job_s'] for r in good]), '.2f')} | "
            f"{_fmt(_med([r['wall_s'] for r in good]), '.2f')} | "
            f"{_fmt(min(loads) if loads else None, '.1f')}-{_fmt(max(loads) if loads else None, '.1f')} |")


# `--socket-compare`: the same tools on hosts whose sockets keep the kernel's default (no
# low-water mark on unsent bytes), as before `vpd host prepare` set one (hostprep/socket_buffer.py).
KERNEL_SOCKETS = ", kernel's socket buffer"
KERNEL_DEFAULT_LOWAT = 4294967295
VIRSH_REMOTE = "virsh -c (from this machine)"


def set_lowat(inv, value: int) -> None:
    for host in inv.hosts:
        hostproc.run_in_host(control.load_state().host(host.name).holder_pid,
                             ["sysctl", "-q", "-w", f"{socket_buffer.SYSCTL}={value}"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--dirty-runs", type=int, default=3)
    parser.add_argument("--link-rate", default="1gbit")
    parser.add_argument("--skip-dirty", action="store_true")
    parser.add_argument("--out", default=str(DEFAULT))
    parser.add_argument("--compare-src", help="also run the vpd whose sources (its src/ directory) are "
                        "here, alternating with the others (e.g. the previous commit's, to weigh a change)")
    parser.add_argument("--compare-label", default="vpd (before)")
    parser.add_argument("--virsh-remote", action="store_true",
                        help="also run virsh from this machine against the source's libvirtd, as vpd runs")
    parser.add_argument("--socket-compare", action="store_true",
                        help="also run both tools with the kernel's socket buffer (no mark on unsent bytes)")
    args = parser.parse_args()
    link_bps = parse_rate(args.link_rate)
    vpd("lab", "up", "--hosts", "2", "--link-rate", args.link_rate)
    try:
        vpd("host", "prepare", "hosta", "hostb")
        inv = inventory.resolve()
        results: dict[str, list[dict]] = {}
        with Connections() as conns:
            versions = conns.get(inv.hosts[0])
            lib, qemu = versions.getLibVersion(), versions.getVersion()
            vpd("vm", "create", "idle", "--host", "hosta", "--lab-guest", "--memory", "256",
                "--disk", "size=64M,pool=CONT_VOL_COMP", "--start", "--wait-boot")
            # Run by run, the tools alternating (and which goes first with them): load drift on a
            # shared machine then biases neither.
            tools = ["vpd", "virsh"] + ([args.compare_label] if args.compare_src else [])
            tools += [t + KERNEL_SOCKETS for t in ("vpd", "virsh")] if args.socket_compare else []
            tools += [VIRSH_REMOTE] if args.virsh_remote else []
            prepared = socket_buffer.lowat_bytes(inv.hosts[0].link_mbit)
            idle = {tool: results.setdefault(f"(a) idle 256 MiB, {tool}", []) for tool in tools}
            for i in range(args.runs):
                for tool in tools[i % len(tools):] + tools[:i % len(tools)]:  # each tool first in turn
                    if args.socket_compare:
                        set_lowat(inv, KERNEL_DEFAULT_LOWAT if tool.endswith(KERNEL_SOCKETS) else prepared)
                    base = tool.removesuffix(KERNEL_SOCKETS)
                    row = (run_vpd(conns, inv, "idle", link_bps) if base == "vpd"
                           else run_virsh(conns, inv, "idle", link_bps, VIRSH_LIMIT_S) if base == "virsh"
                           else run_virsh(conns, inv, "idle", link_bps, VIRSH_LIMIT_S, remote=True)
                           if base == VIRSH_REMOTE
                           else run_vpd(conns, inv, "idle", link_bps, args.compare_src, tool))
                    idle[tool].append(row | {"tool": tool})
            if args.socket_compare:
                set_lowat(inv, prepared)
            for tool in tools:
                print(line(f"(a) {tool}", summary(idle[tool])), flush=True)
            if not args.skip_dirty:
                vpd("vm", "create", "dirty", "--host", "hosta", "--lab-guest", "--memory", "384", "--dirty", "200,0",
                    "--disk", "size=64M,pool=CONT_VOL_COMP", "--start", "--wait-boot")
                results["(b) 200 MiB rewritten flat out, vpd"] = [run_vpd(conns, inv, "dirty", link_bps)
                                                                   for _ in range(args.dirty_runs)]
                print(line("(b) vpd", summary(results["(b) 200 MiB rewritten flat out, vpd"])), flush=True)
                results["(b) 200 MiB rewritten flat out, virsh"] = [run_virsh(conns, inv, "dirty", link_bps,
                                                                              VIRSH_LIMIT_S)]
                print(line("(b) virsh", summary(results["(b) 200 MiB rewritten flat out, virsh"])), flush=True)
    finally:
        vpd("lab", "down", check=False)
    v = lambda n: f"{n // 1_000_000}.{n // 1000 % 1000}.{n % 1000}"  # noqa: E731
    header = ("| case | runs ok | downtime median ms | downtime max ms | job median s | bound s | job/bound | "
              "MiB sent | errors |\n|---|---|---|---|---|---|---|---|---|")
    text = (f"## Migration (issue 4)\n\nRun {datetime.date.today()} by `python -m bench.migration` on the lab "
            f"(2 hosts, link shaped to {args.link_rate}), libvirt {v(lib)}, QEMU {v(qemu)}, TCG guests, 2 cores.\n"
            "Downtime and job time are libvirt's completed-job stats; the bound is bytes sent / link rate. "
            "vpd: `vpd migrate NAME --to HOST --persistent --undefinesource` (its policy, qemu+ssh p2p with a "
            "temporary key). virsh: `virsh migrate --live --persistent --undefinesource --unsafe NAME "
            "qemu+ssh://...` on the source host, virsh's defaults, given "
            f"{VIRSH_LIMIT_S} s. A run counts as ok only if the guest did not reboot and its dirtier found no "
            "lost page.\n\n" + header + "\n"
            + "\n".join(line(label, summary(rows)) for label, rows in results.items()) + "\n\n"
            "### Where the idle guest's downtime goes\n\n"
            "libvirt's downtime runs from the stop on the source to the resume on the destination (what the "
            "guest feels); QEMU's own (`query-migrate` on the source, read through libvirt's monitor "
            "pass-through while the job runs, for both tools) from the stop to the last byte sent. The "
            "difference is libvirt's Finish phase resuming the guest on the destination over qemu+ssh. The "
            "bytes sent paused are the final RAM pass and the device state (QEMU's `downtime-bytes`).\n\n"
            + BREAKDOWN_HEADER + "\n"
            + "\n".join(breakdown_line(tool, rows, link_bps) for tool, rows in idle.items()) + "\n\n"
            "### Every run\n\n```\n" + "\n".join(f"{label}: {json.dumps(r)}" for label, rows in results.items()
                                               for r in rows) + "\n```\n")
    write_section("migration", text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()
