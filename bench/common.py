"""What every benchmark does the same way: run vpd as a user would (a new process, `--json`)
and time a call."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

VPD = [sys.executable, "-m", "vpd"]


def vpd(*args: str, check: bool = True, timeout: float = 3600, src: str | None = None) -> dict:
    """`vpd ARGS --json`'s output; a failure ends the benchmark with vpd's message. `src`: run the
    vpd whose sources are in that directory (another version, compared side by side)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))} \
        if src else None
    proc = subprocess.run([*VPD, *args, "--json"], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise SystemExit(f"vpd {' '.join(args)} failed: {proc.stderr or proc.stdout}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds `fn` took, and its result."""
    began = time.monotonic()
    result = fn()
    return time.monotonic() - began, result
