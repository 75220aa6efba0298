"""`vpd lab link` and `lab up --links` are checked before anything changes (pure)."""
from __future__ import annotations

import pytest

from vpd.core.errors import UsageError
from vpd.lab import links
from vpd.lab.links import LinkChange


@pytest.mark.parametrize(("action", "value", "want"), [
    ("up", None, LinkChange("up")),
    ("down", None, LinkChange("down")),
    ("clear", None, LinkChange("clear")),
    ("loss", "30%", LinkChange("loss", loss_pct=30.0)),
    ("loss", "0.5", LinkChange("loss", loss_pct=0.5)),
    ("loss", "100%", LinkChange("loss", loss_pct=100.0)),
    ("delay", "50", LinkChange("delay", delay_ms=50)),
    ("delay", "10000ms", LinkChange("delay", delay_ms=10000)),
    ("delay", "0", LinkChange("delay", delay_ms=0)),
])
def test_good_changes(action, value, want):
    assert links.parse_change(action, value) == want


@pytest.mark.parametrize(("action", "value"), [
    ("loss", "101%"), ("loss", "-1"), ("loss", "5%%"), ("loss", None), ("loss", "x"),
    ("delay", "10001"), ("delay", "-5"), ("delay", "1.5"), ("delay", None), ("delay", "5s"),
    ("up", "5"), ("flap", None),
])
def test_bad_changes_are_usage_errors(action, value):
    with pytest.raises(UsageError):
        links.parse_change(action, value)


def test_link_names():
    assert links.link_index("eth0") == 0 and links.link_index("eth3") == 3
    for bad in ("eth4", "eth", "bond0", "eth0;rm", "eth10"):
        with pytest.raises(UsageError):
            links.link_index(bad)
    assert links.outside_name("vpd0-hosta", 0) == "vpd0-hosta"
    assert links.outside_name("vpd0-hosta", 1) == "vpd0-hosta-2"  # the spare NIC's name since host bridges
    assert links.check_links(3) == 3
    with pytest.raises(UsageError):
        links.check_links(5)
    assert links.describe({"iface": "eth1", "up": False}) == "eth1 down"
    assert links.describe({"iface": "eth0", "up": True, "loss_pct": 30.0, "delay_ms": 20}) == \
        "eth0 up loss 30% delay 20 ms"
