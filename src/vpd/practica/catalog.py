"""Every Práctica of the course, by number."""
from __future__ import annotations

from ..core.errors import UsageError
from . import p1, p2, p3, p4, p5, p6, p7
from .model import Practica

PRACTICAS: dict[int, Practica] = {p.number: p for p in (m.PRACTICA for m in (p1, p2, p3, p4, p5, p6, p7))}


def get(number: int) -> Practica:
    try:
        return PRACTICAS[number]
    except KeyError:
        raise UsageError(f"no Práctica {number}",
                         hint=f"the course has Prácticas {', '.join(map(str, sorted(PRACTICAS)))} "
                              "(`vpd practica list`)") from None
