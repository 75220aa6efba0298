"""Where vpd keeps its state. One place, so tests can point everything elsewhere."""
from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """vpd's state (journal, lab). $VPD_HOME wins; root uses /var/lib/vpd."""
    if env := os.environ.get("VPD_HOME"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/vpd")
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state")) / "vpd"


def cache_dir() -> Path:
    """Built artifacts that survive `lab down` (guest images, QEMU capabilities)."""
    if env := os.environ.get("VPD_CACHE"):
        return Path(env)
    return state_dir() / "cache"


def lab_dir() -> Path:
    return state_dir() / "lab"


def user_inventory() -> Path:
    if env := os.environ.get("VPD_INVENTORY"):
        return Path(env)
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "vpd" / "inventory.toml"
