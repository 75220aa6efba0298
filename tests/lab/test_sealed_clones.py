"""Seed 002's customise and generalise on a real Debian guest (issue 14 §2, §4): a Debian VM whose
disk carries a booted guest's identity is sealed into a template; two clones customised with
their own hostnames and static addresses boot at once (two, not more: each Debian guest under
TCG costs the suite about 20 s of a 2-core machine; bench/guests.py makes ten); each has what it was given, they reach
each other, and their machine-ids and SSH host keys differ (from each other and from the one the
template carried)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import DebianGuest, vpd, vpd_json, wait_for_ssh

pytestmark = pytest.mark.lab

PLANTED_ID = "0123456789abcdef0123456789abcdef"
ADDRESSES = ["198.19.60.201", "198.19.60.202"]


def plant_identity(disk: str, tmp: Path) -> str:
    """Give the never-booted image what a booted guest has: a machine-id, SSH host keys, cloud-init
    state and a log (through the same FUSE export the seal uses). Returns the planted host key."""
    from vpd.connect.hostfiles import HostFiles
    from vpd.connect.inventory import Host
    from vpd.vm.generalise import _Mounted

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "hostkey")], check=True)
    work = tmp / "mnt"
    work.mkdir()
    fmt = "qcow2" if disk.endswith(".qcow2") else "raw"
    m = _Mounted(HostFiles(Host(name="local", uri="qemu:///system")), str(work), disk, fmt)
    try:
        m.open()
        root = Path(m.mnt)
        (root / "etc/machine-id").write_text(PLANTED_ID + "\n")
        for suffix in ("", ".pub"):
            (root / f"etc/ssh/ssh_host_ed25519_key{suffix}").write_bytes((tmp / f"hostkey{suffix}").read_bytes())
        (root / "var/lib/cloud/instances/planted").mkdir(parents=True)
        (root / "var/log/planted.log").write_text("a booted guest's log\n")
    finally:
        m.close()
    return (tmp / "hostkey.pub").read_text().split()[1]


def test_sealed_template_gives_distinct_customised_clones(lab, debian_net, debian_key, tmp_path):
    from vpd.core import paths
    from vpd.lab import layout

    names = ["sc-1", "sc-2"]
    made = vpd_json("vm", "create", "sealsrc", "--host", "hosta", "--debian-guest", "--vcpus", "1", "--memory", "320",
                    "--disk", f"size=16M,pool={layout.SHARED_POOL}", "--network", f"network={debian_net}",
                    timeout=600)
    try:
        # The shared pool's directory as this (the machine's) namespace sees it.
        planted_key = plant_identity(str(paths.lab_dir() / "shared" / Path(made["disks"][0]).name), tmp_path)
        sealed = vpd_json("template", "create", "sealsrc", "--host", "hosta", "--seal")["sealed"]
        assert sealed["method"] == "mount" and sealed["emptied"] == ["/etc/machine-id"]
        assert {"/etc/ssh/ssh_host_ed25519_key", "/var/lib/cloud/instances", "/var/log/planted.log"} \
            <= set(sealed["removed"])
        assert sealed["left_alone"] == made["disks"][1:]
        clones = vpd_json("vm", "clone", "sealsrc", "sc", "--host", "hosta", "--linked", "--count", "2",
                          "--hostname", "sc.lab.example", "--ip", f"{ADDRESSES[0]}/24", "--gateway", "198.19.60.1",
                          "--user", "vpd", "--ssh-key", f"{debian_key}.pub")["clones"]
        assert [(c["name"], c["hostname"], c["ip"]) for c in clones] == [
            (n, f"{n}.lab.example", f"{a}/24") for n, a in zip(names, ADDRESSES, strict=True)]
        for n in names:  # QEMU starts at once; the guests boot side by side
            vpd_json("vm", "start", n, "--host", "hosta")
        guests = [DebianGuest(n, "hosta", "vpd", f"{n}.lab.example", debian_key, a)
                  for n, a in zip(names, ADDRESSES, strict=True)]
        ids, keys = set(), set()
        for g in guests:
            wait_for_ssh(g, deadline_s=400)
            out = g.ssh("hostname -f; ip -4 -o addr show dev eth0; cat /etc/machine-id; "
                        "cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub").stdout.splitlines()
            assert out[0] == g.hostname and f"inet {g.ip}/24" in out[1], out
            ids.add(out[2])
            keys.add(out[3])
            for other in ADDRESSES:
                if other != g.ip:
                    ping = g.ssh("ping", "-c", "1", "-W", "5", other)
                    assert ping.returncode == 0, (g.name, other, ping.stdout, ping.stderr)
        assert len(ids) == 2 and PLANTED_ID not in ids and all(len(i) == 32 for i in ids)
        assert len(keys) == 2 and planted_key not in keys
    finally:
        for n in names:
            vpd("vm", "destroy", n, "--host", "hosta")
            vpd("vm", "undefine", n, "--host", "hosta", "--remove-storage")
        vpd("template", "unseal", "sealsrc", "--host", "hosta")
        vpd("vm", "undefine", "sealsrc", "--host", "hosta", "--remove-storage")
