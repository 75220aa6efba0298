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
