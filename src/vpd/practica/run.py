"""`vpd practica run N`: perform a Práctica with vpd, step by step, showing for each step what
the learner would type (the seed's commands, from the Práctica's data), what vpd did (the hand
commands of the calls it made: `--explain`), the validation (the Práctica's grader) and the
answers to the seed's questions, measured.

A run's steps are vpd commands (argv templates over SRC, DST, VM); the front end hands in
`call(argv) -> dict`, which runs one as `vpd ARGV --json --explain` and returns its JSON (the
`explain` key holds the hand commands). The whole run is one Operation (`practica.run`), whose
journaled result is what `vpd practica report N` writes up."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.errors import UsageError, VpdError
from ..ops import Operation, Session
from . import catalog, check4
from .model import T, check_lang

Call = Callable[[list[str]], dict]


@dataclass(frozen=True)
class RunStep:
    goal: str  # the goal whose step this performs (its title and hand commands come from there)
    step: int  # index of the step in that goal
    argv: tuple[str, ...]  # the vpd command, with {SRC} {DST} {VM} {POOL}
    lab_only: bool = False  # makes what the seed already has (the lab has no mvp1 to clone)


@dataclass(frozen=True)
class Question:
    text: T
    answer: Callable[[dict, str], str]  # (the run's facts, lang) -> the measured answer


def _migration(facts: dict) -> dict:
    return facts.get("migrate") or {}


def _goal_ok(facts: dict, goal: str) -> bool | None:
    for g in (facts.get("validation") or {}).get("goals", []):
        if g["id"] == goal:
            return bool(g["ok"])
    return None


def _yes(lang: str, value: bool | None) -> str:
    if value is None:
        return "no se midió" if lang == "es" else "not measured"
    return ("sí" if value else "no") if lang == "es" else ("yes" if value else "no")


def _ms(value: Any, lang: str) -> str:
    return f"{value} ms" if value is not None else ("no se midió" if lang == "es" else "not measured")


def _total(facts: dict, lang: str) -> str:
    m = _migration(facts)
    if m.get("total_seconds") is None:
        return "no se midió" if lang == "es" else "not measured"
    mib = (m.get("bytes_sent") or 0) / 2**20
    text = (f"{m['total_seconds']:.2f} s en total ({m.get('job_seconds') or 0:.2f} s de copia), {mib:.1f} MiB "
            f"enviados en {m.get('iterations') or 0} pasadas" if lang == "es" else
            f"{m['total_seconds']:.2f} s in all ({m.get('job_seconds') or 0:.2f} s copying), {mib:.1f} MiB sent "
            f"in {m.get('iterations') or 0} passes")
    return text


P4_RUN = (
    RunStep("fqdn", 0, ("host", "list", "--host", "{SRC}", "--host", "{DST}")),
    RunStep("firewall", 1, ("host", "prepare", "{SRC}", "{DST}")),
    RunStep("shared-storage", 0, ("pool", "info", "{POOL}", "--host", "{SRC}")),
    RunStep("shared-storage", 1, ("vm", "create", "{VM}", "--host", "{SRC}", "--lab-guest", "--disk",
                                  "size=16M,pool={POOL}", "--start"), lab_only=True),
    RunStep("migrated", 1, ("migrate", "{VM}", "--to", "{DST}", "--persistent", "--undefinesource")),
    RunStep("migrated", 2, ("vm", "info", "{VM}", "--host", "{DST}")),
)

P4_QUESTIONS = (
    Question(T("¿Cuánto tiempo estuvo la MV detenida durante la migración en vivo?",
               "How long was the VM stopped during the live migration?"),
             lambda f, lang: _ms(_migration(f).get("downtime_ms"), lang)),
    Question(T("¿Cuánto duró la migración y cuánta memoria se copió?",
               "How long did the migration take and how much memory was copied?"), _total),
    Question(T("¿Sigue la MV en ejecución en el destino, persistente, y ya no la define el origen?",
               "Does the VM run on the destination, persistent, and is it gone from the source?"),
             lambda f, lang: _yes(lang, _goal_ok(f, "migrated"))),
    Question(T("¿Quedó en authorized_keys del destino alguna clave temporal del origen?",
               "Was any temporary key of the source left in the destination's authorized_keys?"),
             lambda f, lang: _yes(lang, None if _goal_ok(f, "key-revoked") is None
                                  else not _goal_ok(f, "key-revoked"))),
    Question(T("¿Se lee el disco de la MV desde el destino (almacenamiento compartido)?",
               "Does the VM's disk read from the destination (shared storage)?"),
             lambda f, lang: _yes(lang, _goal_ok(f, "disk-readable"))),
)

RUNS: dict[int, tuple[tuple[RunStep, ...], tuple[Question, ...]]] = {4: (P4_RUN, P4_QUESTIONS)}
# What each step's JSON answer is kept as, for the questions.
FACT_OF = {"migrate": "migrate"}


def _fill(argv: tuple[str, ...], values: dict[str, str]) -> list[str]:
    return [a.format(**values) for a in argv]


def plan(number: int, lang: str) -> tuple[tuple[RunStep, ...], tuple[Question, ...]]:
    check_lang(lang)
    catalog.get(number)
    if number not in RUNS:
        raise UsageError(f"Práctica {number} cannot be run by vpd yet",
                         hint=f"runnable today: {', '.join(map(str, sorted(RUNS)))}; "
                              f"`vpd practica show {number}` lists its steps")
    return RUNS[number]


def run(session: Session, number: int, call: Call, *, src: str, dst: str, vm: str, lab: bool, lang: str,
        pool: str = "CONT_VOL_COMP", before: Callable[[dict], None] | None = None,
        after: Callable[[dict], None] | None = None) -> dict:
    """Perform Práctica `number` between hosts `src` and `dst` with VM `vm`; steps marked lab-only
    run only on the lab (elsewhere the seed's VM must exist). Stops at the first failed step."""
    steps_, questions = plan(number, lang)
    practica = catalog.get(number)
    values = {"SRC": session.host(src).name, "DST": session.host(dst).name, "VM": vm, "POOL": pool}
    if values["SRC"] == values["DST"]:
        raise UsageError("the source and the destination are the same host")
    report: dict = {"practica": number, "title": practica.title(lang), "lang": lang, "src": values["SRC"],
                    "dst": values["DST"], "vm": vm, "steps": [], "ok": False}
    facts: dict = {}
    with Operation(session, "practica.run", target=f"{values['SRC']}->{values['DST']}", number=number,
                   vm=vm, lang=lang) as op:
        op.result = report
        for rs in steps_:
            goal = practica.goal(rs.goal)
            step = goal.steps[rs.step]
            argv = _fill(rs.argv, values)
            entry: dict[str, Any] = {"goal": goal.id, "goal_title": goal.title(lang), "title": step.title(lang),
                     "hand": list(step.hand), "note": step.note(lang) if step.note else None,
                     "vpd": "vpd " + " ".join(argv), "did": [], "ok": True, "outcome": None}
            if rs.lab_only and not lab:
                entry["outcome"] = ("omitido: fuera del laboratorio la MV del guion ya existe" if lang == "es"
                                    else "skipped: off the lab the seed's VM already exists")
                report["steps"].append(entry)
                continue
            if before is not None:
                before(entry)
            started = time.monotonic()
            try:
                out = call(argv)
            except VpdError as exc:
                entry["ok"], entry["outcome"] = False, str(exc)
                entry["did"] = list(getattr(exc, "explain", []) or [])
                report["steps"].append(entry)
                if after is not None:
                    after(entry)
                raise VpdError(f"Práctica {number}: step '{entry['title']}' failed: {exc}",
                               hint=getattr(exc, "hint", None)) from exc
            entry["seconds"] = round(time.monotonic() - started, 2)
            entry["did"] = list(out.pop("explain", []) if isinstance(out, dict) else [])
            entry["outcome"] = out
            if argv[0] in FACT_OF:
                facts[FACT_OF[argv[0]]] = out
            report["steps"].append(entry)
            if after is not None:
                after(entry)
        started = time.monotonic()
        graded = check4.grade_pair(session, session.host(values["SRC"]), session.host(values["DST"]), vm, lang)
        graded["seconds"] = round(time.monotonic() - started, 2)
        facts["validation"] = graded
        report["validation"] = graded
        report["measured"] = {"migration": {k: _migration(facts).get(k) for k in
                                            ("mode", "total_seconds", "job_seconds", "downtime_ms", "bytes_sent",
                                             "iterations", "flags", "grant")}}
        report["questions"] = [{"question": q.text(lang), "answer": q.answer(facts, lang)} for q in questions]
        report["ok"] = graded["ok"]
        if not graded["ok"]:
            failed = [g["id"] for g in graded["goals"] if not g["ok"]]
            error = VpdError(f"Práctica {number} done, but its validation fails: {', '.join(failed)}",
                             hint="each failed check above names its fix")
            error.report = report
            raise error
    return report
