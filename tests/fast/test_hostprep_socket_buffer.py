"""The unsent-bytes mark `host prepare` sets: about 1 ms of the host's link, never below the floor."""
from __future__ import annotations

from vpd.hostprep import socket_buffer


def test_the_mark_is_a_millisecond_of_the_link_with_a_floor():
    assert socket_buffer.lowat_bytes(None) == socket_buffer.MIN_LOWAT  # 1 Gbit/s assumed: 125 kB < floor
    assert socket_buffer.lowat_bytes(1000) == socket_buffer.MIN_LOWAT
    assert socket_buffer.lowat_bytes(100) == socket_buffer.MIN_LOWAT
    assert socket_buffer.lowat_bytes(10_000) == 1_250_000
    assert socket_buffer.lowat_bytes(25_000) == 3_125_000


def test_the_file_sets_exactly_the_key_and_says_who_wrote_it():
    text = socket_buffer.conf_text(131072)
    assert text.splitlines()[-1] == "net.ipv4.tcp_notsent_lowat = 131072"
    assert all(line.startswith("#") for line in text.splitlines()[:-1])
    assert "vpd host unprepare" in text
