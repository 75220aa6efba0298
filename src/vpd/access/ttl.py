"""How long a grant lives: '15m', '2h', '90s', '1h30m' or plain seconds."""
from __future__ import annotations

import re

from ..core.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)([smhd])")
MIN_TTL = 1
# Access is meant to last one migration; a day covers the slowest one, and a
# longer grant is more likely a typo ('15d' for '15m') than a need.
MAX_TTL = 86400


def check_ttl(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise UsageError(f"a TTL is a whole number of seconds, not {seconds!r}")
    if not MIN_TTL <= seconds <= MAX_TTL:
        raise UsageError(f"TTL {seconds} s is out of range",
                         hint=f"use {MIN_TTL} s to {MAX_TTL // 3600} h, e.g. 15m")
    return seconds


def parse_ttl(text: str) -> int:
    """Seconds in `text`: units s, m, h, d, combinable ('1h30m'); a bare number is seconds."""
    raw = str(text).strip().lower()
    if raw.isdigit():
        return check_ttl(int(raw))
    if not raw or _PART.sub("", raw):
        raise UsageError(f"invalid TTL {text!r}", hint="use e.g. 90s, 15m, 2h or 1h30m")
    return check_ttl(sum(int(n) * _UNITS[u] for n, u in _PART.findall(raw)))


def format_ttl(seconds: int) -> str:
    """The shortest text parse_ttl reads back as `seconds`, e.g. 5400 -> '1h30m'."""
    if seconds == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNITS[unit])
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
