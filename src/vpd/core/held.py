"""Small context managers several layers share: holding Ctrl-C and SIGTERM back across a step
that must not be cut in half, and adding up the time spent in named phases."""
from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (revoking a grant, thawing a guest: an
    interrupt half-way would leave access open or a guest frozen). They arrive right after, as
    KeyboardInterrupt or the SIGTERM handler. Only the main thread receives them in Python; in
    another thread this blocks nothing that would have reached it anyway."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def timed_phase(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time to seconds[name] (a phase may be entered more than once)."""
    began = time.monotonic()
    try:
        yield
    finally:
        seconds[name] = round(seconds.get(name, 0.0) + time.monotonic() - began, 3)
