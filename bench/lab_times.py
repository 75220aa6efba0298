"""On demand: how long the lab takes to come up and down, and a guest to boot.

    make bench        (or: .venv/bin/python -m bench.lab_times --runs 5)

Uses its own lab network (VPD_LAB_NET=6) and state directory, so it never
touches a lab you have up."""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from bench.common import vpd

os.environ.setdefault("VPD_LAB_NET", "6")
os.environ.setdefault("VPD_HOME", tempfile.mkdtemp(prefix="vpd-bench-"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=2)
    args = parser.parse_args()
    ups, downs, boots = [], [], []
    for i in range(args.runs):
        started = time.monotonic()
        vpd("lab", "up", "--hosts", str(args.hosts))
        ups.append(time.monotonic() - started)
        created = vpd("vm", "create", f"bench{i}", "--host", "hosta", "--lab-guest",
                      "--disk", "size=64M,pool=CONT_VOL_COMP", "--start", "--wait-boot")
        boots.append(created["boot_seconds"])
        started = time.monotonic()
        vpd("lab", "down")
        downs.append(time.monotonic() - started)
    for label, values in (("lab up (s, CLI wall)", ups), ("lab down (s, CLI wall)", downs),
                          ("guest start -> boot marker (s)", boots)):
        print(f"{label:34} median {statistics.median(values):6.2f}  min {min(values):6.2f}  "
              f"max {max(values):6.2f}  runs {len(values)}")


if __name__ == "__main__":
    main()
