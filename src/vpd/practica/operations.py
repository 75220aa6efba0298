"""`vpd practica list|show|check` as front ends call them. Read-only: no journal
entry, no locks (like `vm info`)."""
from __future__ import annotations

from ..connect.inventory import Host
from ..core.errors import UsageError, VpdError
from ..ops import Session
from . import catalog, check4, expect, run
from .model import check_lang

# The Prácticas `check` grades: 4 (check4), and those whose goals expect.py covers.
GRADERS = frozenset({4, *expect.EXPECT})


def list_(lang: str) -> dict:
    check_lang(lang)
    return {"lang": lang, "practicas": [
        {"number": p.number, "title": p.title(lang), "goals": len(p.goals),
         "steps": sum(len(g.steps) for g in p.goals), "checkable": p.number in GRADERS,
         "runnable": p.number in run.RUNS}
        for p in catalog.PRACTICAS.values()]}


def show(number: int, lang: str) -> dict:
    check_lang(lang)
    data = catalog.get(number).to_dict(lang)
    for goal in data["goals"]:  # graded by expect.py too
        goal["checked"] = goal["checked"] or goal["id"] in expect.EXPECT.get(number, {})
    return {"lang": lang, **data, "checkable": number in GRADERS}


def pairs(hosts: list[Host]) -> list[tuple[Host, Host]]:
    """SRC,DST,SRC,DST...: each two hosts in order are one pair (a student's two machines)."""
    if len(hosts) < 2 or len(hosts) % 2:
        raise UsageError(f"this Práctica grades pairs of hosts, got {len(hosts)}: "
                         + ", ".join(h.name for h in hosts),
                         hint="--hosts SRC,DST (or SRC1,DST1,SRC2,DST2,... for a class)")
    if len({h.name for h in hosts}) != len(hosts):
        raise UsageError("a host appears twice in --hosts")
    return [(hosts[i], hosts[i + 1]) for i in range(0, len(hosts), 2)]


def _given(vm: str | None, names: dict[str, str] | None) -> dict[str, str]:
    return {**(names or {}), **({"VM": vm} if vm else {})}


def check(session: Session, number: int, host_refs: list[str], vm: str | None, lang: str,
          names: dict[str, str] | None = None) -> dict:
    """Grade each pair; a VpdError (exit 1) carrying the report when a goal fails."""
    check_lang(lang)
    practica = catalog.get(number)
    if number not in GRADERS:
        raise UsageError(f"Práctica {number} has no checks yet",
                         hint=f"checkable today: {', '.join(map(str, sorted(GRADERS)))}; "
                              f"`vpd practica show {number}` lists its steps")
    if number == 4:
        graded = [check4.grade_pair(session, src, dst, vm, lang) for src, dst in pairs(session.hosts(host_refs))]
    elif number in expect.PAIRED:
        graded = [expect.grade(session, number, src, dst, _given(vm, names), lang)
                  for src, dst in pairs(session.hosts(host_refs))]
    else:  # one host per student
        graded = [expect.grade(session, number, host, None, _given(vm, names), lang)
                  for host in session.hosts(host_refs)]
    report = {"practica": number, "title": practica.title(lang), "lang": lang,
              "ok": all(p["ok"] for p in graded), "pairs": graded}
    if not report["ok"]:
        failed = sorted({g["id"] for p in graded for g in p["goals"] if not g["ok"]})
        error = VpdError(f"Práctica {number}: goals not met: {', '.join(failed)}",
                         hint="each failed check above names its fix")
        error.report = report
        raise error
    return report
