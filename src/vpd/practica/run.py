"""`vpd practica run N`: perform a Práctica with vpd, step by step, showing for each step what
the learner would type (the seed's commands, from the Práctica's data), what vpd did (the hand
commands of the calls it made: `--explain`), the validation (the Práctica's grader) and the
answers to the seed's questions, measured.

A run's steps are vpd commands (argv templates over SRC, DST, VM); the front end hands in
`call(argv) -> dict`, which runs one as `vpd ARGV --json --explain` and returns its JSON (the
`explain` key holds the hand commands). The whole run is one Operation (`practica.run`), whose
journaled result is what `vpd practica report N` writes up."""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.errors import UsageError, VpdError
from ..ops import Operation, Session
from . import catalog, check4, expect
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

def _check_detail(facts: dict, goal: str, lang: str) -> str:
    for g in (facts.get("validation") or {}).get("goals", []):
        if g["id"] == goal:
            return "; ".join(f"{c['name']}: {c['detail']}" for c in g["checks"])
    return "no se midió" if lang == "es" else "not measured"


P2_RUN = (
    RunStep("clone", 0, ("vm", "create", "{VM}", "--host", "{SRC}", "--lab-guest", "--disk", "size=16M,pool={POOL}"),
            lab_only=True),
    RunStep("clone", 0, ("vm", "clone", "{VM}", "{CLONE}", "--host", "{SRC}")),
    RunStep("templates-snapshots", 1, ("snapshot", "create", "{VM}", "{SNAP}", "--host", "{SRC}")),
    RunStep("templates-snapshots", 1, ("snapshot", "list", "{VM}", "--host", "{SRC}")),
)
P2_QUESTIONS = (
    Question(T("¿Tiene el clon nombre, UUID, MAC y discos propios?",
               "Does the clone have its own name, UUID, MAC and disks?"),
             lambda f, lang: _check_detail(f, "clone", lang)),
    Question(T("¿Existe la instantánea de la MV?", "Does the VM's snapshot exist?"),
             lambda f, lang: _check_detail(f, "templates-snapshots", lang)),
)
P3_RUN = (
    RunStep("attach", 0, ("vm", "create", "{VM}", "--host", "{SRC}", "--lab-guest", "--disk", "size=16M,pool={POOL}"),
            lab_only=True),
    RunStep("volumes", 0, ("vol", "create", "{POOL}", "{VOL}", "--size", "{SIZE}", "--format", "raw",
                           "--host", "{SRC}")),
    RunStep("volumes", 0, ("vol", "info", "{POOL}", "{VOL}", "--host", "{SRC}")),
    RunStep("attach", 0, ("vm", "disk", "attach", "{VM}", "--vol", "{POOL}/{VOL}", "--target", "vdb", "--config",
                          "--host", "{SRC}")),
    RunStep("attach", 0, ("vm", "disk", "list", "{VM}", "--host", "{SRC}")),
)
P3_QUESTIONS = (
    Question(T("¿Qué formato y tamaño tiene el volumen creado?", "What format and size has the new volume?"),
             lambda f, lang: _check_detail(f, "volumes", lang)),
    Question(T("¿Está el volumen asociado a la MV de forma persistente?",
               "Is the volume attached to the VM persistently?"),
             lambda f, lang: _check_detail(f, "attach", lang)),
)
P5_RUN = (
    RunStep("nics", 0, ("vm", "create", "{VM}", "--host", "{SRC}", "--lab-guest", "--disk", "size=16M,pool={POOL}"),
            lab_only=True),
    RunStep("networks", 0, ("net", "create", "{NET1}", "--host", "{SRC}", "--mode", "nat", "--subnet", "{SUBNET1}",
                            "--autostart")),
    RunStep("networks", 0, ("net", "create", "{NET2}", "--host", "{SRC}", "--mode", "isolated", "--subnet",
                            "{SUBNET2}", "--autostart")),
    RunStep("nics", 0, ("vm", "iface", "attach", "{VM}", "--network", "{NET1}", "--host", "{SRC}")),
    RunStep("nics", 0, ("vm", "iface", "attach", "{VM}", "--network", "{NET2}", "--host", "{SRC}")),
    RunStep("nics", 0, ("vm", "iface", "list", "{VM}", "--host", "{SRC}")),
)
P5_QUESTIONS = (
    Question(T("¿Están las dos redes activas y con autoinicio, con el modo pedido?",
               "Are both networks active, autostarted, in the mode asked for?"),
             lambda f, lang: _check_detail(f, "networks", lang)),
    Question(T("¿En qué redes tiene la MV una interfaz?", "On which networks has the VM a NIC?"),
             lambda f, lang: _check_detail(f, "nics", lang)),
)
P6_RUN = (
    RunStep("target", 0, ("vol", "create", "{SAN}", "{LUN}", "--size", "16M", "--format", "raw", "--host", "{SRC}"),
            lab_only=True),
    RunStep("target", 0, ("iscsi", "target", "create", "--host", "{SRC}", "--iqn", "{IQN}", "--vol", "{SAN}/{LUN}",
                          "--allow", "{DST}")),
    RunStep("initiators", 0, ("pool", "create", "{ISCSI_POOL}", "--host", "{DST}", "--type", "iscsi-direct",
                              "--portal", "{SRC_ADDR}", "--target", "{IQN}")),
    RunStep("initiators", 0, ("vol", "list", "{ISCSI_POOL}", "--host", "{DST}")),
)
P6_QUESTIONS = (
    Question(T("¿Qué LUN exporta el target y a quién?", "Which LUN does the target export, and to whom?"),
             lambda f, lang: _check_detail(f, "target", lang)),
    Question(T("¿Ve el iniciador los LUN del target?", "Does the initiator see the target's LUNs?"),
             lambda f, lang: _check_detail(f, "initiators", lang)),
)


P7_RUN = (
    RunStep("cluster", 0, ("cluster", "create", "{CLUSTER}", "--hosts", "{SRC},{DST}", "--fence", "{FENCE}")),
    RunStep("cluster", 0, ("cluster", "status", "{CLUSTER}")),
    RunStep("ha-vm", 0, ("vm", "create", "{VM}", "--host", "{SRC}", "--lab-guest", "--disk", "size=32M,pool={POOL}",
                         "--start"), lab_only=True),
    RunStep("ha-vm", 0, ("ha", "enable", "{VM}", "--cluster", "{CLUSTER}")),
    RunStep("ha-vm", 0, ("ha", "move", "{VM}", "--to", "{DST}")),
)
P7_QUESTIONS = (
    Question(T("¿Tiene el clúster quórum con todos los miembros en línea?",
               "Has the cluster quorum with every member online?"),
             lambda f, lang: _check_detail(f, "cluster", lang)),
    Question(T("¿Dónde corre la MV de alta disponibilidad tras moverla?",
               "Where does the highly available VM run after the move?"),
             lambda f, lang: _check_detail(f, "ha-vm", lang)),
)


@dataclass(frozen=True)
class Plan:
    steps: tuple[RunStep, ...]
    questions: tuple[Question, ...]
    paired: bool = True  # graded on SRC and DST (else on SRC alone)
    lab: tuple[tuple[str, str], ...] = ()  # values on the lab, where the seed's do not fit
    off_lab: tuple[tuple[str, str], ...] = ()  # the seed's values elsewhere


RUNS: dict[int, Plan] = {
    2: Plan(P2_RUN, P2_QUESTIONS, paired=False, lab=(("POOL", "CONT_VOL_COMP"),)),
    3: Plan(P3_RUN, P3_QUESTIONS, paired=False, lab=(("POOL", "CONT_VOL_COMP"), ("SIZE", "64M")),
            off_lab=(("SIZE", "1G"),)),
    4: Plan(P4_RUN, P4_QUESTIONS, lab=(("VM", "mvp4_lab"), ("POOL", "CONT_VOL_COMP"))),
    # The lab's networks stay in 198.18.0.0/15; elsewhere the seed's subnets.
    5: Plan(P5_RUN, P5_QUESTIONS, paired=False, lab=(("POOL", "CONT_VOL_COMP"), ("SUBNET1", "198.19.140.0/24"),
                                                     ("SUBNET2", "198.19.122.0/24")),
            off_lab=(("SUBNET1", "192.168.140.0/24"), ("SUBNET2", "10.22.122.0/24"))),
    # The LUN's file goes in the lab's own pool; elsewhere SAN/LUN name the seed's disk (--set).
    6: Plan(P6_RUN, P6_QUESTIONS, lab=(("SAN", "CONT_VOL_COMP"), ("LUN", "p6-lun.raw"))),
    # The lab's fence agent powers lab hosts off and on; elsewhere name yours (--set FENCE=...).
    7: Plan(P7_RUN, P7_QUESTIONS, lab=(("FENCE", "fence_vpdlab"), ("POOL", "CONT_VOL_COMP"))),
}
# What each step's JSON answer is kept as, for the questions.
FACT_OF = {"migrate": "migrate"}


class _Names(dict):
    def __missing__(self, key: str) -> str:  # a step skipped off the lab may name what only the lab has
        return "{" + key + "}"


def _fill(argv: tuple[str, ...], values: dict[str, str]) -> list[str]:
    return [a.format_map(_Names(values)) for a in argv]


def plan(number: int, lang: str) -> Plan:
    check_lang(lang)
    catalog.get(number)
    if number not in RUNS:
        raise UsageError(f"Práctica {number} cannot be run by vpd yet",
                         hint=f"runnable today: {', '.join(map(str, sorted(RUNS)))}; "
                              f"`vpd practica show {number}` lists its steps")
    return RUNS[number]


def values_for(session: Session, number: int, src: str, dst: str | None, lab: bool,
               given: dict[str, str]) -> dict[str, str]:
    """The names a run or a check uses: the seed's, the lab's where those do not fit, then `given`."""
    p = RUNS.get(number)
    values = dict(expect.DEFAULTS.get(number, {}))
    if p is not None:
        values.update(dict(p.lab if lab else p.off_lab))
    values.update({k: v for k, v in given.items() if v is not None})
    source = session.host(src)
    values.update({"SRC": source.name, "SRC_ADDR": source.address or source.name})
    if dst is not None:
        values["DST"] = session.host(dst).name
    return values


def grade(session: Session, number: int, values: dict[str, str], lang: str) -> dict:
    src = session.host(values["SRC"])
    if number == 4:
        return check4.grade_pair(session, src, session.host(values["DST"]), values.get("VM"), lang)
    dst = session.host(values["DST"]) if number in expect.PAIRED else None
    return expect.grade(session, number, src, dst, values, lang)


def run(session: Session, number: int, call: Call, *, src: str, dst: str, lab: bool, lang: str,
        given: dict[str, str] | None = None, before: Callable[[dict], None] | None = None,
        after: Callable[[dict], None] | None = None) -> dict:
    """Perform Práctica `number` on `src` (and `dst`, for the Prácticas of two hosts) with the
    seed's names unless `given`; steps marked lab-only run only on the lab (elsewhere what they
    make is the seed's starting point). Stops at the first failed step."""
    p = plan(number, lang)
    steps_, questions = p.steps, p.questions
    practica = catalog.get(number)
    values = values_for(session, number, src, dst if p.paired else None, lab, given or {})
    vm = values.get("VM", "")
    if p.paired and values["SRC"] == values["DST"]:
        raise UsageError("the source and the destination are the same host")
    missing = sorted({m for rs in steps_ if lab or not rs.lab_only
                      for m in re.findall(r"\{([A-Z_0-9]+)\}", " ".join(_fill(rs.argv, values)))})
    if missing:  # before anything is done
        raise UsageError(f"Práctica {number} off the lab needs {', '.join(missing)}",
                         hint=" ".join(f"--set {m}=..." for m in missing))
    report: dict = {"practica": number, "title": practica.title(lang), "lang": lang, "src": values["SRC"],
                    "dst": values.get("DST", ""), "vm": vm, "values": values, "steps": [], "ok": False}
    facts: dict = {}
    with Operation(session, "practica.run", target=values["SRC"] + (f"->{values['DST']}" if p.paired else ""),
                   number=number,
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
        graded = grade(session, number, values, lang)
        graded["seconds"] = round(time.monotonic() - started, 2)
        facts["validation"] = graded
        report["validation"] = graded
        if "migrate" in facts:
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
