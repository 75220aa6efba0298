"""Shared test set-up: every test run gets its own vpd state directory, so the
journal and any lab it makes never touch a user's; built guest images and the
QEMU capabilities cache are shared (they are only caches)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

_home = Path(tempfile.mkdtemp(prefix="vpd-test-home-"))
os.environ["VPD_HOME"] = str(_home)
os.environ.setdefault("VPD_CACHE", "/var/lib/vpd/cache" if os.geteuid() == 0 else str(_home / "cache"))
os.environ.pop("VPD_INVENTORY", None)
# Tests use lab network 1, so a lab left up by `make demo` (network 0) is not disturbed.
os.environ.setdefault("VPD_LAB_NET", "1")

# CI explores the same examples on every run, so a verdict never depends on luck;
# developers' runs keep exploring new ones.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
