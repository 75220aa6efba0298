"""Progress events tagged with the request that emitted them (the web API's jobs)."""
from __future__ import annotations

import contextvars
import threading

from vpd.core import events


def test_scope_tags_events_of_its_thread_and_copied_contexts_only():
    seen: list[events.Event] = []
    unsubscribe = events.subscribe(seen.append)
    try:
        events.emit("t", "outside")
        with events.scope("job-1"):
            events.emit("t", "inside")
            t = threading.Thread(target=contextvars.copy_context().run, args=(events.emit, "t", "copied"))
            t.start(), t.join()
            bare = threading.Thread(target=events.emit, args=("t", "bare thread"))
            bare.start(), bare.join()
            with events.scope("job-2"):
                events.emit("t", "nested")
        events.emit("t", "after")
    finally:
        unsubscribe()
    assert [(e.step, e.scope) for e in seen] == [
        ("outside", None), ("inside", "job-1"), ("copied", "job-1"), ("bare thread", None),
        ("nested", "job-2"), ("after", None)]
    assert all(e.at > 0 for e in seen)


def test_events_carry_optional_structured_fields():
    seen: list[events.Event] = []
    unsubscribe = events.subscribe(seen.append)
    try:
        events.emit("t", "plain", 1, 2)
        events.emit("t", "with data", data={"x": 1})
    finally:
        unsubscribe()
    assert [e.data for e in seen] == [None, {"x": 1}]


def test_a_migration_tick_becomes_a_plottable_event():
    """run_job's progress per tick, from libvirt's jobStats keys: bytes and bytes/s as fields."""
    from vpd.migration.run import progress

    stats = {"type": 2, "data_remaining": 300 * 2**20, "data_processed": 100 * 2**20, "memory_iteration": 3,
             "memory_dirty_rate": 2560, "memory_page_size": 4096, "memory_bps": 50 * 2**20}
    step, done, total, data = progress(stats, 1.23456)
    assert step == "iteration 3, 50 MiB/s, dirty 10 MiB/s"
    assert (done, total) == (100.0, 400.0)
    assert data == {"elapsed_s": 1.235, "data_remaining": 300 * 2**20, "data_processed": 100 * 2**20,
                    "data_total": 400 * 2**20, "dirty_rate_bps": 10 * 2**20, "throughput_bps": 50 * 2**20,
                    "iteration": 3}
    # Before libvirt knows the remaining bytes: no total, the fields say so.
    step, done, total, data = progress({"type": 2}, 0.0)
    assert total is None and data["data_remaining"] is None and data["data_total"] is None
