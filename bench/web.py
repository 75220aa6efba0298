"""On demand: the web console's figures on the lab (issue 13, section 5).

    .venv/bin/python -m bench.web [--vms 500] [--runs 10] [--viewers 20] [--poll-s 30] [--write]

A real `vpd web` process on 127.0.0.1 (a token made with `vpd web token create`) over a 2-host
lab holding --vms defined VMs (half per host, defined through libvirt-python from the lab
guest's XML without its UUID and MACs, never started; undefined at the end):
(1) `GET /api/v1/vms` wall time (httpx, connection kept), beside `vpd vm list --all --json`
    (the CLI's same listing, a new process each time). Target <= 0.3 s.
(2) The VM list page (/vms) in Debian's headless Chromium driven by Playwright: the Paint
    Timing API's first-contentful-paint, from navigation start. Target <= 1 s.
(3) Progress events of a live migration job (the lab guest rewriting memory, bandwidth
    capped so the job lasts some seconds; vpd emits a tick every 0.1 s): each event's own
    timestamp (`at`, taken when the job emits it) against its arrival at an httpx SSE reader of
    `/api/v1/jobs/{id}/events`. Target <= 0.5 s.
(4) --viewers clients each polling `GET /api/v1/vms` every second for --poll-s seconds: the
    server's CPU (utime + stime of its process in /proc/PID/stat) over that window, in % of one
    core. Target < 50 %.
The migration (3) runs before the VMs are defined, so the listing's load does not colour it.
Uses its own lab network (VPD_LAB_NET, default 4) and state directory."""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VPD_LAB_NET", "4")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-"))

import httpx  # noqa: E402
import libvirt  # noqa: E402

from bench.common import VPD, timed, vpd  # noqa: E402
from bench.report import write_section  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
TARGETS = {"api_s": 0.3, "paint_s": 1.0, "sse_s": 0.5, "cpu_pct": 50.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PREFIX = "wb-"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def summary(xs: list[float]) -> dict:
    ordered = sorted(xs)
    return {"n": len(xs), "median": statistics.median(xs), "max": ordered[-1], "min": ordered[0],
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}


# --- the lab and its many defined VMs -------------------------------------------------------

def lab_uris() -> list[str]:
    from vpd.connect import inventory

    return [h.uri for h in inventory.resolve().hosts]


def minimal_xml(template: str) -> str:
    """The lab guest's definition without what must be unique (UUID, MACs) and without the
    name, which is filled in per copy."""
    xml = re.sub(r"\s*<uuid>[^<]*</uuid>", "", template)
    xml = re.sub(r"\s*<mac address=[^>]*/>", "", xml)
    return re.sub(r"<name>[^<]*</name>", "<name>{name}</name>", xml, count=1)


def define_many(uris: list[str], template: str, count: int) -> float:
    """Define `count` VMs, half per host, straight through libvirt (set-up, not measured)."""
    xml = minimal_xml(template)
    started = time.monotonic()
    for index, uri in enumerate(uris):
        conn = libvirt.open(uri)
        try:
            for i in range(count // len(uris)):
                conn.defineXML(xml.replace("{name}", f"{PREFIX}{index}-{i:04d}"))
        finally:
            conn.close()
    return time.monotonic() - started


def undefine_many(uris: list[str]) -> None:
    for uri in uris:
        conn = libvirt.open(uri)
        try:
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE):
                if dom.name().startswith(PREFIX):
                    dom.undefine()
        finally:
            conn.close()


# --- the server -----------------------------------------------------------------------------

class Server:
    """`vpd web` as a user starts it, on a free loopback port."""

    def __init__(self) -> None:
        self.token = vpd("web", "token", "create", "--role", "operator", "--label", "bench")["token"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([*VPD, "web", "--listen", f"127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.headers = {"Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/openapi.json", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise SystemExit(f"vpd web did not start: {self.log.read().decode()[-2000:]}")
            time.sleep(0.2)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# --- (3) progress events over SSE -----------------------------------------------------------

def sse_delays(server: Server, vm: str, to: str, bandwidth_mib: int) -> dict:
    """Migrate `vm` to `to` through the API and read the job's events as they come."""
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client:
        r = client.post("/api/v1/migrations", json={"vm": vm, "to": to, "bandwidth_mib": bandwidth_mib,
                                                    "max_downtime_ms": 300, "timeout_s": 180})
        if r.status_code != 202:
            raise SystemExit(f"migration refused: {r.status_code} {r.text}")
        job = r.json()["job"]
        delays, replayed, end = [], 0, None
        with client.stream("GET", f"/api/v1/jobs/{job}/events", timeout=None) as stream:
            connected = time.time()
            kind = None
            for line in stream.iter_lines():
                arrived = time.time()
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "progress":
                    at = json.loads(line[6:])["at"]
                    if at < connected:
                        replayed += 1  # emitted before the reader connected: sent as history, not live
                    else:
                        delays.append(arrived - at)
                elif line.startswith("data: ") and kind == "end":
                    end = json.loads(line[6:])
                    break
    if end is None or end["state"] != "succeeded":
        raise SystemExit(f"migration job did not succeed: {end}")
    return {"live_events": len(delays), "replayed_events": replayed, "delay_s": summary(delays),
            "job_s": end["finished"] - end["started"]}


# --- (1) listing ----------------------------------------------------------------------------

def listing(server: Server, runs: int) -> dict:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client:
        first, body = timed(lambda: client.get("/api/v1/vms").json())
        api = [timed(lambda: client.get("/api/v1/vms").raise_for_status())[0] for _ in range(runs)]
        size = len(client.get("/api/v1/vms").content)
    cli = [timed(lambda: vpd("vm", "list", "--all"))[0] for _ in range(runs)]
    # What a route returning a dict costs beyond the listing: FastAPI's jsonable_encoder walks the
    # whole body before json.dumps writes it.
    from fastapi.encoders import jsonable_encoder

    encode = statistics.median(timed(lambda: jsonable_encoder(body))[0] for _ in range(5))
    dumps = statistics.median(timed(lambda: json.dumps(body))[0] for _ in range(5))
    return {"vms": len(body["vms"]), "host_errors": [h for h in body["hosts"] if h["error"]],
            "api_first_s": first, "api_s": summary(api), "api_bytes": size,
            "cli_s": summary(cli), "jsonable_encoder_s": encode, "json_dumps_s": dumps}


def profile_listing(top: int = 8) -> dict:
    """Where an in-process listing spends its time: `list_vms` (what the route calls) timed, and
    its per-host work profiled host after host in this thread (cProfile sees one thread)."""
    from vpd.connect import inventory
    from vpd.connect.libvirt_conn import Connections
    from vpd.vm.inventory import _summaries, list_vms

    hosts = inventory.resolve().hosts
    with Connections() as conns:
        list_vms(conns, hosts)  # connections opened outside the timing and the profile
        wall, _ = timed(lambda: list_vms(conns, hosts))
        prof = cProfile.Profile()
        prof.enable()
        for host in hosts:
            conns.call(host, lambda c, h=host: _summaries(h, c, True))
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    return {"in_process_s": wall, "profile": out.getvalue()}


# --- (2) first paint ------------------------------------------------------------------------

PAINT_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');
  return {fcp: fcp ? fcp.startTime / 1000 : null, ttfb: nav.responseStart / 1000,
          response_end: nav.responseEnd / 1000, dom_content_loaded: nav.domContentLoadedEventEnd / 1000,
          load: nav.loadEventEnd / 1000, rows: document.querySelectorAll('#vm-rows tr[data-vm]').length};
}"""


def first_paint(server: Server, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_cookies([{"name": "vpd_session", "value": server.token, "url": server.url}])
            for _ in range(runs + 1):  # the first visit fills the browser's cache: reported apart
                page = context.new_page()
                page.goto(f"{server.url}/vms", wait_until="load")
                page.wait_for_function("performance.getEntriesByType('paint').length > 0", timeout=30_000)
                out.append(page.evaluate(PAINT_JS))
                page.close()
        finally:
            browser.close()
    cold, warm = out[0], out[1:]
    return {"cold": cold, "rows": warm[-1]["rows"],
            **{k: summary([r[k] for r in warm]) for k in ("fcp", "ttfb", "response_end", "dom_content_loaded")}}


# --- (4) many viewers -----------------------------------------------------------------------

def viewers(server: Server, count: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0

    async def viewer(client: httpx.AsyncClient, offset: float, until: float) -> None:
        nonlocal errors
        await asyncio.sleep(offset)  # spread over the second, as independent browsers would be
        tick = time.monotonic()
        while tick < until:
            began = time.monotonic()
            try:
                (await client.get("/api/v1/vms")).raise_for_status()
                latencies.append(time.monotonic() - began)
            except httpx.HTTPError:
                errors += 1
            tick += 1.0
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    async def run() -> tuple[float, float]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60, limits=limits) as client:
            cpu0, wall0 = server.cpu_s(), time.monotonic()
            until = wall0 + seconds
            await asyncio.gather(*(viewer(client, i / count, until) for i in range(count)))
            return server.cpu_s() - cpu0, time.monotonic() - wall0

    idle0 = server.cpu_s()
    time.sleep(5)
    idle = (server.cpu_s() - idle0) / 5 * 100
    cpu, wall = asyncio.run(run())
    return {"viewers": count, "seconds": wall, "requests": len(latencies), "errors": errors,
            "cpu_pct": cpu / wall * 100, "idle_cpu_pct": idle, "latency_s": summary(latencies) if latencies else None}


# --- report ---------------------------------------------------------------------------------

def verdict(value: float, target: float, strict: bool = False) -> str:
    ok = value < target if strict else value <= target
    return "met" if ok else "**missed**"


def markdown(r: dict) -> str:
    ls, pt, sse, cpu = r["listing"], r["paint"], r["sse"], r["viewers"]
    missed = []
    if ls["api_s"]["median"] > TARGETS["api_s"]:
        missed.append("api")
    if pt["fcp"]["median"] > TARGETS["paint_s"]:
        missed.append("paint")
    if sse["delay_s"]["max"] > TARGETS["sse_s"]:
        missed.append("sse")
    if cpu["cpu_pct"] >= TARGETS["cpu_pct"]:
        missed.append("cpu")
    api, cli, fcp, d = ls["api_s"], ls["cli_s"], pt["fcp"], sse["delay_s"]
    rows = [
        (f"`GET /api/v1/vms` ({ls['vms']} VMs, {ls['api_bytes'] // 1024} KiB JSON), connection kept",
         f"{api['median']:.3f} s ({api['max']:.3f})", f"<= {TARGETS['api_s']} s",
         verdict(api["median"], TARGETS["api_s"])),
        ("the same, first call (the server opens its libvirt connections)", f"{ls['api_first_s']:.3f} s", "", ""),
        ("`vpd vm list --all --json` (a new process each time)", f"{cli['median']:.3f} s ({cli['max']:.3f})", "", ""),
        ("the listing in-process (`list_vms`, connections open)", f"{r['profile']['in_process_s']:.3f} s", "", ""),
        ("`/vms` page in headless Chromium: first-contentful-paint", f"{fcp['median']:.3f} s ({fcp['max']:.3f})",
         f"<= {TARGETS['paint_s']} s", verdict(fcp["median"], TARGETS["paint_s"])),
        (f"its HTML's first byte / last byte ({pt['rows']} rows)",
         f"{pt['ttfb']['median']:.3f} / {pt['response_end']['median']:.3f} s", "", ""),
        ("first visit (empty cache): first-contentful-paint", f"{pt['cold']['fcp']:.3f} s", "", ""),
        (f"migration job's progress event -> SSE reader ({sse['live_events']} live events)",
         f"median {d['median'] * 1000:.1f} ms, p95 {d['p95'] * 1000:.1f} ms, max {d['max'] * 1000:.1f} ms",
         f"<= {TARGETS['sse_s']} s", verdict(d["max"], TARGETS["sse_s"])),
        (f"{cpu['viewers']} viewers polling `GET /api/v1/vms` every second for {cpu['seconds']:.0f} s: server CPU",
         f"{cpu['cpu_pct']:.1f} % of one core", f"< {TARGETS['cpu_pct']:.0f} %",
         verdict(cpu["cpu_pct"], TARGETS["cpu_pct"], strict=True)),
        (f"their responses ({cpu['requests']} requests, {cpu['errors']} errors)",
         f"median {cpu['latency_s']['median']:.3f} s, max {cpu['latency_s']['max']:.3f} s", "", ""),
        ("the idle server, for comparison", f"{cpu['idle_cpu_pct']:.1f} %", "", ""),
    ]
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)
    text = f"""## Web console: listing, first paint, progress events, many viewers (issue 13)

Run {r['date']} by `python -m bench.web` on the lab (2 hosts, {ls['vms']} VMs listed: {r['vms_per_host']} per
host defined and never started, plus the guest migrated for the events), libvirt 11.3.0, QEMU 10.0.2, 2 cores
shared with other work (load average {r['load_before']} before, {r['load_after']} after). A real `vpd web`
process on 127.0.0.1, token in `Authorization` (the browser: the session cookie). Medians of {r['runs']} runs
(max in brackets).

| figure | measured | target | |
|---|---|---|---|
{table}

The SSE figure is measured between the time the job's worker thread emits the event (its `at`) and the
moment the reader's line arrives, both on one clock; events emitted before the reader connected
({sse['replayed_events']}) come as history and are left out. The CLI's figure includes Python's start-up and
opening the libvirt connections; the API's is the work a long-running server still does per request.
"""
    if missed:
        text += "\n" + explain(r, missed)
    return text


def explain(r: dict, missed: list[str]) -> str:
    ls, pt, cpu = r["listing"], r["paint"], r["viewers"]
    lines = ["Targets missed: " + ", ".join(missed) + ". Where the time goes:", ""]
    if "paint" in missed:
        lines.append(f"- The page: its HTML's first byte comes {pt['ttfb']['median']:.3f} s after navigation starts "
                     f"(the server lists the VMs and renders {pt['rows']} rows with Jinja2 before it answers), "
                     f"its last byte at {pt['response_end']['median']:.3f} s; the browser paints "
                     f"{pt['fcp']['median'] - pt['response_end']['median']:.3f} s later.")
    per = cpu["cpu_pct"] / 100 * cpu["seconds"] / max(1, cpu["requests"])
    if "cpu" in missed:
        lines.append(f"- {cpu['viewers']} viewers ask {cpu['viewers']} listings a second; each polled "
                     f"{cpu['requests'] // cpu['viewers']} times, but answers took longer than the period, so the "
                     f"window stretched to {cpu['seconds']:.0f} s: the server was saturated, and its demand is "
                     "higher than the figure.")
    lines.append(f"- One listing costs the server about {per * 1000:.0f} ms of CPU ({cpu['requests']} requests in the"
                 f" polling window). In-process `list_vms` takes {r['profile']['in_process_s']:.3f} s; FastAPI's"
                 f" `jsonable_encoder` walking the {ls['vms']}-VM body takes {ls['jsonable_encoder_s']:.3f} s more,"
                 f" where `json.dumps` alone would take {ls['json_dumps_s']:.3f} s; the rest is HTTP and the"
                 " thread pool. The heaviest functions of one in-process listing, host after host (cProfile, own"
                 " time): one `isPersistent` call, a libvirt round trip, per VM beside the one bulk-stats call"
                 " per host:")
    lines.append("")
    lines.append("```")
    body = [x for x in r["profile"]["profile"].splitlines() if x.strip()]
    start = next((i for i, x in enumerate(body) if x.lstrip().startswith("ncalls")), 0)
    lines.extend(body[start:start + 9])
    lines.append("```")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=500)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--poll-s", type=float, default=30.0)
    parser.add_argument("--bandwidth-mib", type=int, default=8, help="Cap of the migration whose events are read.")
    parser.add_argument("--json-out", help="Also write the whole result to this file.")
    parser.add_argument("--write", action="store_true", help="Replace this bench's section of docs/benchmarks.md.")
    args = parser.parse_args()
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": args.runs,
                    "vms_per_host": args.vms // 2, "load_before": load()}
    vpd("lab", "up", "--hosts", "2")
    server = None
    uris: list[str] = []
    try:
        uris = lab_uris()
        # The guest whose migration emits the events: it rewrites 32 MiB at 2 MiB/s, under the
        # capped bandwidth (so pre-copy converges), and the job lasts several seconds of 0.1 s ticks.
        vpd("vm", "create", "wbmig", "--host", "hosta", "--lab-guest", "--memory", "128", "--dirty", "32,2")
        conn = libvirt.open(uris[0])
        template = conn.lookupByName("wbmig").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        conn.close()
        vpd("vm", "start", "wbmig", "--host", "hosta", "--wait-boot")
        vpd("host", "prepare", "hosta", "hostb")  # opens the migration ports, as a real pair needs
        server = Server()
        result["sse"] = sse_delays(server, "wbmig", "hostb", args.bandwidth_mib)
        vpd("vm", "destroy", "wbmig", "--host", "hostb")
        result["define_s"] = define_many(uris, template, args.vms)
        result["listing"] = listing(server, args.runs)
        result["profile"] = profile_listing()
        result["paint"] = first_paint(server, args.runs)
        result["viewers"] = viewers(server, args.viewers, args.poll_s)
        result["load_after"] = load()
    finally:
        if server is not None:
            server.stop()
        if uris:
            try:
                undefine_many(uris)
            except libvirt.libvirtError as exc:
                print(f"undefining the bench's VMs: {exc}", file=sys.stderr)
        subprocess.run([*VPD, "lab", "down"], capture_output=True, timeout=300)
    print(json.dumps(result, indent=2, default=str))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, default=str))
    text = markdown(result)
    print(text)
    if args.write:
        write_section("web", text)


if __name__ == "__main__":
    main()
