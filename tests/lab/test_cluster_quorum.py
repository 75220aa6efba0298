"""Quorum on a three-node cluster: with two of three hosts dead, the survivor has
no quorum, so nothing is recovered (the guest is not started on it) and nothing
is fenced. It needs a three-host lab: the session's `lab3` (tests/lab/conftest.py),
which runs it after every other test, so the hosts it powers off meet no other. Slow: ~2 min."""
from __future__ import annotations

import time

import pytest

from vpd.cluster import store
from vpd.lab import layout

from . import cluster_helpers as h
from .conftest import vpd_json

pytestmark = [pytest.mark.lab, pytest.mark.slow]

CLUSTER = "quorum3"
VM = "qvm"
SLOW = 600


@pytest.fixture(scope="module")
def quorum_lab(lab3):
    try:
        yield
    finally:
        store.remove(CLUSTER)  # its hosts vanish with the lab


def test_two_of_three_down_recovers_nothing(quorum_lab):
    created = vpd_json("cluster", "create", CLUSTER, "--hosts", "hosta,hostb,hostc", "--fence", "fence_vpdlab",
                       timeout=SLOW)
    assert [m["state"] for m in created["status"]["members"]] == ["online"] * 3
    vpd_json("vm", "create", VM, "--host", "hosta", "--lab-guest", "--disk", f"size=16M,pool={layout.SHARED_POOL}",
             "--start", timeout=SLOW)
    vpd_json("ha", "enable", VM, "--cluster", CLUSTER, timeout=SLOW)
    assert h.running_on(VM) == ["hosta"]
    vpd_json("lab", "host-down", "hosta")
    vpd_json("lab", "host-down", "hostb")
    # hostc alone: 1 vote of 3. Wait until it knows (membership ~8 s), then keep watching.
    deadline = time.monotonic() + 120
    while True:
        s = vpd_json("cluster", "status", CLUSTER)
        if not s["quorate"]:
            break
        assert time.monotonic() < deadline, s
        time.sleep(1)
    for _ in range(10):
        assert h.running_on(VM) == []  # not recovered on hostc
        time.sleep(1)
    s = vpd_json("cluster", "status", CLUSTER)
    assert not s["quorate"] and s["asked"] == "hostc"
    assert [f for f in s["fencing"] if f["status"] == "success"] == []  # no quorum: nobody fenced
    assert {m["name"]: m["state"] for m in s["members"]}["hostc"] == "online"
