"""What a drain's migrations share (migration/shared.py): each host-level answer computed once
however many migrations ask at once, a failed one asked again, and the link's job slots that
an interrupted drain stops handing out. Also the guest probe's one-request answer (validate)."""
from __future__ import annotations

import threading
import time

import pytest

from vpd.core.errors import VpdError
from vpd.migration import shared as shared_module
from vpd.migration import validate
from vpd.migration.shared import SharedChecks, once


def test_each_answer_is_computed_once_while_many_ask_at_once():
    shared = SharedChecks()
    calls = []
    gate = threading.Event()

    def slow_port_check():
        calls.append(1)
        gate.wait(5)
        return "open"

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(shared.once(("port", "a", "b"), slow_port_check)))
               for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.02)  # all six are waiting on the first one's answer
    gate.set()
    for t in threads:
        t.join(5)
    assert answers == ["open"] * 6 and len(calls) == 1
    assert shared.asked[("port", "a", "b")] == 6
    assert shared.once(("port", "a", "c"), lambda: "closed") == "closed"  # another pair: asked anew


def test_a_failed_answer_is_not_kept():
    shared = SharedChecks()

    def broken():
        raise VpdError("ssh refused")

    with pytest.raises(VpdError):
        shared.once(("resolution", "a", "b"), broken)
    assert shared.once(("resolution", "a", "b"), lambda: ["ok"]) == ["ok"]


def test_without_a_drain_every_check_is_asked():
    calls = []
    assert once(None, ("k",), lambda: calls.append(1) or len(calls)) == 1
    assert once(None, ("k",), lambda: calls.append(1) or len(calls)) == 2


def test_job_slots_limit_jobs_and_an_interrupt_hands_out_no_more(monkeypatch):
    monkeypatch.setattr(shared_module, "CANCEL_POLL_S", 0.01)
    shared = SharedChecks(jobs_at_once=2)
    cancel = threading.Event()
    assert shared.job_slot(cancel) and shared.job_slot(cancel)
    waited = []
    t = threading.Thread(target=lambda: waited.append(shared.job_slot(cancel)))
    t.start()
    time.sleep(0.03)
    assert not waited  # a third job waits for the link
    cancel.set()
    t.join(2)
    assert waited == [False]  # interrupted while waiting: no job
    shared.release_job_slot()
    assert not shared.job_slot(cancel)  # a free slot, but the drain was interrupted
    assert SharedChecks().job_slot() is True  # no limit outside a drain


def test_the_probe_is_one_request_and_its_answer_parses():
    text = ("boot 0b3c2c4e-6f0e-4a43-9b7c-3f1e2d4c5b6a\nuptime 12.34\n"
            f"disk {'ab' * 32} -\ndirty vpd-dirty gen=7 errors=0 rate=3.5\n")
    probe = validate.parse_probe(text)
    assert probe["boot_id"].startswith("0b3c2c4e") and probe["uptime"] == 12.34
    assert probe["disk_sha256"] == "ab" * 32 and probe["dirty"].generation == 7
    no_dirtier = validate.parse_probe("boot x\nuptime 1.5\ndisk  \ndirty \n")
    assert no_dirtier["dirty"] is None and no_dirtier["disk_sha256"] is None
    with pytest.raises(VpdError, match="boot id or uptime"):
        validate.parse_probe("boot \nuptime \n")
    # Builtins and one request: no `cat` of the two status files, one sha256sum of the first MiB.
    assert validate.PROBE.count("sha256sum") == 1 and "bs=65536 count=16" in validate.PROBE
