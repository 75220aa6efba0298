"""On demand: a Debian guest made from a sealed template, from `create` to the SSH key accepted,
vpd beside the same done by hand on the same lab host.

    .venv/bin/python -m bench.guests [--clones 10] [--boot-all]

(1) `vpd vm create NEW --template T [--linked] --hostname --ip --user --ssh-key --start`,
linked and full, each timed until `ssh -i KEY vpd@IP true` succeeds from the lab host.
(2) By hand, as the seed's admin would without vpd: copy the template's disk (`cp`, full) or
make an overlay (`qemu-img create -b`, linked), write user-data/meta-data/network-config and
make the seed ISO (`xorriso -as mkisofs -V cidata`, what `cloud-localds` runs; neither
cloud-image-utils nor libguestfs' virt-customize is installed here), then `virt-install
--import`; timed the same way. (3) `vpd vm clone T NEW --count 10 --linked` with hostnames and
addresses: total and per clone; with --boot-all the ten are started and timed until every one
accepts SSH. One guest boots at a time in (1) and (2), 1 vCPU, 320 MiB, TCG (the lab has no
usable KVM). Figures go to docs/benchmarks.md. Uses its own lab (VPD_LAB_NET=6)."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VPD_LAB_NET", "6")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-"))

from lxml import etree  # noqa: E402

from bench.common import timed, vpd  # noqa: E402
from bench.report import write_section  # noqa: E402
from vpd.connect import inventory  # noqa: E402
from vpd.core import paths  # noqa: E402
from vpd.lab import control, hostproc, layout  # noqa: E402

NET, PREFIX, GW = "bgnet", "198.19.61", "198.19.61.1"
HOST = "hosta"


def ssh_ok(key: str, ip: str) -> bool:
    holder = control.load_state().host(HOST).holder_pid
    argv = ["ssh", "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR", f"vpd@{ip}", "true"]
    return hostproc.run_in_host(holder, argv, check=False, timeout=30).returncode == 0


def until_ssh(key: str, ips: list[str], began: float, deadline_s: float = 900) -> float:
    """Seconds from `began` until every address accepts the key."""
    waiting = set(ips)
    while waiting:
        waiting = {ip for ip in waiting if not ssh_ok(key, ip)}
        if waiting and time.monotonic() - began > deadline_s:
            raise SystemExit(f"no SSH into {sorted(waiting)} after {deadline_s} s")
        if waiting:
            time.sleep(0.5)
    return time.monotonic() - began


def gone(*names: str) -> None:
    for n in names:
        vpd("vm", "destroy", n, "--host", HOST, check=False)
        vpd("vm", "undefine", n, "--host", HOST, "--remove-storage", check=False)


def vpd_guest(key: str, name: str, ip: str, linked: bool) -> float:
    began = time.monotonic()
    vpd("vm", "create", name, "--host", HOST, "--template", "btpl", *(["--linked"] if linked else []),
        "--hostname", name, "--ip", f"{ip}/24", "--gateway", GW, "--user", "vpd", "--ssh-key", f"{key}.pub", "--start")
    seconds = until_ssh(key, [ip], began)
    gone(name)
    return seconds


def by_hand(key: str, name: str, ip: str, linked: bool, tpl: dict, uri: str) -> float:
    """The peer: disk and seed made with the usual tools, then virt-install --import."""
    shared = paths.lab_dir() / "shared"  # the lab host's CONT_VOL_COMP, as this namespace sees it
    host_dir = layout.SHARED_MOUNT  # the same directory as the lab host sees it
    disk, seed = shared / f"{name}.qcow2", shared / f"{name}-seed.iso"
    mac = "52:54:00:61:00:77"
    began = time.monotonic()
    # On the host, as its admin would (ssh root@host ...): the paths are the host's.
    holder = control.load_state().host(HOST).holder_pid
    if linked:
        hostproc.run_in_host(holder, ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", tpl["disk"],
                                      f"{host_dir}/{disk.name}"], timeout=600)
    else:
        hostproc.run_in_host(holder, ["cp", "--sparse=always", tpl["disk"], f"{host_dir}/{disk.name}"], timeout=600)
    with tempfile.TemporaryDirectory() as d:
        Path(d, "user-data").write_text(
            "#cloud-config\nhostname: {}\nmanage_etc_hosts: true\nssh_pwauth: false\nusers:\n  - default\n"
            "  - name: vpd\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    shell: /bin/bash\n    ssh_authorized_keys:\n"
            "      - {}\n".format(name, Path(f"{key}.pub").read_text().strip()))
        Path(d, "meta-data").write_text(f"instance-id: {name}-{time.time_ns()}\nlocal-hostname: {name}\n")
        Path(d, "network-config").write_text(
            f"version: 2\nethernets:\n  eth0:\n    match: {{macaddress: '{mac}'}}\n    set-name: eth0\n"
            f"    addresses: [{ip}/24]\n    gateway4: {GW}\n")
        subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-output", str(seed), "-volid", "cidata", "-joliet",
                        "-rock", f"{d}/user-data", f"{d}/meta-data", f"{d}/network-config"], check=True)
    proc = subprocess.run(
        ["virt-install", "--connect", uri, "--name", name, "--import", "--memory", "320", "--vcpus", "1",
         "--virt-type", "qemu", "--osinfo", "detect=on,require=off",
         "--disk", f"path={host_dir}/{disk.name},format=qcow2,bus=virtio",
         "--disk", f"path={host_dir}/{seed.name},device=cdrom,bus=sata",
         "--network", f"network={NET},mac={mac},model=virtio",
         "--boot", f"kernel={tpl['kernel']},initrd={tpl['initrd']},kernel_args={tpl['cmdline']}",
         "--graphics", "none", "--console", "none", "--noautoconsole"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"virt-install failed: {proc.stderr}")
    seconds = until_ssh(key, [ip], began)
    subprocess.run(["virsh", "-c", uri, "destroy", name], capture_output=True)
    subprocess.run(["virsh", "-c", uri, "undefine", name], capture_output=True)
    disk.unlink(missing_ok=True)
    seed.unlink(missing_ok=True)
    return seconds


def template_facts() -> dict:
    tree = etree.fromstring(vpd("vm", "dumpxml", "btpl", "--host", HOST, "--inactive")["xml"].encode())
    return {"disk": tree.xpath("devices/disk[@device='disk']/source/@file")[0], "kernel": tree.findtext("os/kernel"),
            "initrd": tree.findtext("os/initrd"), "cmdline": tree.findtext("os/cmdline")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clones", type=int, default=10)
    parser.add_argument("--boot-all", action="store_true", help="Start the --clones clones and time them to SSH.")
    parser.add_argument("--runs", type=int, default=1, help="Runs of each create-to-SSH case.")
    parser.add_argument("--image", help="A directory holding vmlinuz, initrd.img and root.qcow2 of vpd's Debian "
                                        "image (default: `vm create --debian-guest`, which builds or reuses it).")
    args = parser.parse_args()
    vpd("lab", "up", "--hosts", "1")
    key = os.path.join(os.environ["VPD_HOME"], "bench-key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    out: dict = {"runs": args.runs, "load_at_start": round(os.getloadavg()[0], 1),
                 "image": args.image or "--debian-guest"}
    try:
        uri = inventory.resolve().get(HOST).uri
        vpd("net", "create", NET, "--host", HOST, "--mode", "isolated", "--subnet", f"{PREFIX}.0/24",
            "--dhcp", f"{PREFIX}.10-{PREFIX}.99")
        if args.image:  # a built image's directory (vmlinuz, initrd.img, root.qcow2), as --debian-guest uses
            d = Path(args.image)
            source = ["--disk", f"import={d / 'root.qcow2'},pool={layout.SHARED_POOL},bus=virtio", "--boot",
                      f"kernel={d / 'vmlinuz'},initrd={d / 'initrd.img'},"
                      "cmdline=root=LABEL=root rw console=ttyS0 quiet"]
        else:
            source = ["--debian-guest", "--disk", f"size=16M,pool={layout.SHARED_POOL}"]
        out["create_template_s"], _ = timed(lambda: vpd(
            "vm", "create", "btpl", "--host", HOST, *source, "--vcpus", "1", "--memory", "320",
            "--network", f"network={NET}", timeout=1800))
        sealed = vpd("template", "create", "btpl", "--host", HOST, "--seal")["sealed"]
        out["seal"] = {k: sealed[k] for k in ("method", "seconds", "emptied")} | {"removed": len(sealed["removed"])}
        tpl = template_facts()
        cases = {"vpd_linked": lambda i: vpd_guest(key, f"vl{i}", f"{PREFIX}.{110 + i}", True),
                 "vpd_full": lambda i: vpd_guest(key, f"vf{i}", f"{PREFIX}.{120 + i}", False),
                 "hand_linked": lambda i: by_hand(key, f"hl{i}", f"{PREFIX}.{130 + i}", True, tpl, uri),
                 "hand_full": lambda i: by_hand(key, f"hf{i}", f"{PREFIX}.{140 + i}", False, tpl, uri)}
        for i in range(args.runs):
            for case, run in cases.items():
                seconds = run(i)
                out.setdefault(case, []).append(round(seconds, 1))
                print(f"  {case} run {i + 1}: {seconds:.1f} s to SSH", flush=True)
        n = args.clones
        out["clones_total_s"], made = timed(lambda: vpd(
            "vm", "clone", "btpl", "bc", "--host", HOST, "--linked", "--count", str(n), "--hostname", "bc",
            "--ip", f"{PREFIX}.150/24", "--gateway", GW, "--user", "vpd", "--ssh-key", f"{key}.pub"))
        assert len(made["clones"]) == n and len({c["ip"] for c in made["clones"]}) == n
        if args.boot_all:
            began = time.monotonic()
            for c in made["clones"]:
                vpd("vm", "start", c["name"], "--host", HOST)
            out["clones_boot_all_s"] = round(until_ssh(key, [c["ip"].split("/")[0] for c in made["clones"]], began,
                                                       deadline_s=1800), 1)
        gone(*[c["name"] for c in made["clones"]])
    finally:
        vpd("lab", "down", check=False)
    out["load_at_end"] = round(os.getloadavg()[0], 1)
    write(out, args.clones)


def write(out: dict, n: int) -> None:
    def cell(case: str) -> str:
        runs = out[case]
        return f"{min(runs):.1f} s (runs: {', '.join(f'{r:.1f}' for r in runs)})"

    rows = [
        "| `vpd vm create --template T --linked --hostname --ip --user --ssh-key --start` | " + cell("vpd_linked"),
        "| by hand: `qemu-img create -b` + seed (`xorriso -as mkisofs -V cidata`) + `virt-install --import` | "
        + cell("hand_linked"),
        "| `vpd vm create --template T` (full copy) with the same options | " + cell("vpd_full"),
        "| by hand: `cp` of the disk + seed + `virt-install --import` | " + cell("hand_full"),
    ]
    per = out["clones_total_s"] / n
    boot = (f" Started together, all {n} accepted SSH {out['clones_boot_all_s']} s after the first start "
            "(2 shared cores, TCG)." if "clones_boot_all_s" in out else "")
    text = (
        f"## Debian guests from a sealed template (issue 14 §2, §4)\n\nRun {datetime.date.today()} by "
        "`python -m bench.guests` on a 1-host lab: vpd's Debian 12 image (`--debian-guest`), sealed with "
        f"`template create --seal` ({out['seal']['method']}, {out['seal']['seconds']} s, "
        f"{out['seal']['removed']} paths removed), 1 vCPU, 320 MiB, TCG. Time from the first command to "
        "`ssh -i KEY vpd@IP true` succeeding from the lab host; best of "
        f"{out['runs']} runs, one guest at a time, on the shared machine (1-minute load "
        f"{out['load_at_start']} at the start, {out['load_at_end']} at the end: other engineers' TCG guests and "
        "tests ran beside it, so differences of tens of seconds between rows are noise).\n\n"
        "| create to SSH | time |\n|---|---|\n" + "\n".join(r + " |" for r in rows) + "\n\n"
        "The peer has no libguestfs here (`virt-customize` is not installed), so its customisation is "
        "the same NoCloud seed made by hand; cloud-image-utils' `cloud-localds` is not installed either and "
        "runs the same ISO maker.\n\n"
        f"{n} customised linked clones (`vpd vm clone T bc --linked --count {n} --hostname bc --ip "
        f"{PREFIX}.150/24 ...`, each with its own seed): **{out['clones_total_s']:.1f} s total, "
        f"{per:.2f} s per clone**.{boot}\n\n```\n" + json.dumps(out) + "\n```\n")
    write_section("guests", text)
    print(text)


if __name__ == "__main__":
    main()
