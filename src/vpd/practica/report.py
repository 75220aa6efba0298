"""`vpd practica report N`: the written report the seed asks for (Práctica 4: preparation,
migration, tests and validation, conclusions), from the journaled result of the last
`vpd practica run N`, as Markdown or HTML. Every figure in it was measured by that run."""
from __future__ import annotations

import html
import json
from typing import Any

from ..core import journal
from ..core.errors import NotFound
from .model import check_lang

# Práctica 4's sections, as the seed names them, and the goals each one reports.
SECTIONS = {
    4: (("Preparación", "Preparation", ("fqdn", "firewall", "shared-storage")),
        ("Migración", "Migration", ("migrated",))),
}
Block = tuple[Any, ...]


def last_run(number: int) -> dict:
    for row in journal.entries(10000, "practica.run"):
        if (row.get("args") or {}).get("number") == number and isinstance(row.get("result"), dict):
            result = row["result"].get("report", row["result"])
            if isinstance(result, dict) and result.get("steps"):
                return {**result, "journal_id": row["id"], "status": row["status"], "started": row["started"]}
    raise NotFound(f"no run of Práctica {number} in the journal",
                   hint=f"`vpd practica run {number}` performs it and journals what it did")


def _outcome(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)[:400] if value is not None else ""


def blocks(run: dict, lang: str) -> list[Block]:
    es = lang == "es"
    if run.get("dst") and run["dst"] != run["src"]:
        where = (f"Anfitriones: {run['src']} y {run['dst']}" if es else f"Hosts: {run['src']} and {run['dst']}")
    else:
        where = f"Anfitrión: {run['src']}" if es else f"Host: {run['src']}"
    if run.get("vm"):
        where += f"; MV {run['vm']}" if es else f"; VM {run['vm']}"
    out: list[Block] = [("h", 1, f"Práctica {run['practica']}: {run['title']}"),
                        ("p", where + (f". Ejecución registrada en el diario de vpd (#{run['journal_id']}, "
                                       f"{run['status']})." if es else
                                       f". Run recorded in vpd's journal (#{run['journal_id']}, {run['status']})."))]
    done: set[int] = set()
    for title_es, title_en, goals in SECTIONS.get(run["practica"], ()):
        out.append(("h", 2, title_es if es else title_en))
        for i, step in enumerate(run["steps"]):
            if step["goal"] in goals:
                done.add(i)
                out += _step_blocks(step, es)
    rest = [s for i, s in enumerate(run["steps"]) if i not in done]
    if rest:
        out.append(("h", 2, ("Otros pasos" if es else "Other steps") if done else ("Pasos" if es else "Steps")))
        for step in rest:
            out += _step_blocks(step, es)
    out.append(("h", 2, "Pruebas y validación" if es else "Tests and validation"))
    validation = run.get("validation") or {}
    rows = [[g["id"], "ok" if g["ok"] else "FALLA" if es else "FAIL",
             "; ".join(f"{c['name']}: {c['detail']}" for c in g["checks"])] for g in validation.get("goals", [])]
    out.append(("table", ["objetivo" if es else "goal", "resultado" if es else "result",
                          "evidencia" if es else "evidence"], rows))
    out.append(("h", 3, "Preguntas del guion" if es else "The seed's questions"))
    out.append(("ul", [f"{q['question']} — {q['answer']}" for q in run.get("questions") or []]))
    out.append(("h", 2, "Conclusiones" if es else "Conclusions"))
    out.append(("p", _conclusion(run, es)))
    return out


def _step_blocks(step: dict, es: bool) -> list[Block]:
    out: list[Block] = [("h", 3, step["title"]),
                        ("p", "A mano (guion):" if es else "By hand (the seed):"), ("code", "\n".join(step["hand"])),
                        ("p", f"vpd: `{step['vpd']}`" + ("" if step["ok"] else (" — FALLÓ" if es else " — FAILED")))]
    if step["did"]:
        out += [("p", "Lo que vpd hizo, como órdenes a mano:" if es else "What vpd did, as hand commands:"),
                ("code", "\n".join(step["did"]))]
    if step.get("note"):
        out.append(("p", f"Nota: {step['note']}" if es else f"Note: {step['note']}"))
    if isinstance(step.get("outcome"), str):
        out.append(("p", step["outcome"]))
    return out


def _conclusion(run: dict, es: bool) -> str:
    m = (run.get("measured") or {}).get("migration")
    failed = [g["id"] for g in (run.get("validation") or {}).get("goals", []) if not g["ok"]]
    if m is None:
        if es:
            return ("Todos los objetivos comprobados se cumplen." if not failed
                    else f"Objetivos no cumplidos: {', '.join(failed)}.")
        return "Every goal checked is met." if not failed else f"Goals not met: {', '.join(failed)}."
    if es:
        text = (f"La migración ({m.get('mode') or '?'}) de {run['vm']} de {run['src']} a {run['dst']} tardó "
                f"{m.get('total_seconds')} s con {m.get('downtime_ms')} ms de parada. ")
        return text + ("Todos los objetivos de la práctica se cumplen." if not failed
                       else f"Objetivos no cumplidos: {', '.join(failed)}.")
    text = (f"The {m.get('mode') or '?'} migration of {run['vm']} from {run['src']} to {run['dst']} took "
            f"{m.get('total_seconds')} s with {m.get('downtime_ms')} ms of downtime. ")
    return text + ("Every goal of the Práctica is met." if not failed else f"Goals not met: {', '.join(failed)}.")


def markdown(doc: list[Block]) -> str:
    out = []
    for block in doc:
        kind = block[0]
        if kind == "h":
            out.append("#" * block[1] + " " + block[2])
        elif kind == "p":
            out.append(block[1])
        elif kind == "code":
            fence = "```"
            while fence in block[1]:
                fence += "`"
            out.append(f"{fence}sh\n{block[1]}\n{fence}")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            cells = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in block[2]]
            out.append("\n".join(["| " + " | ".join(block[1]) + " |", "|" + "---|" * len(block[1]),
                                  *("| " + " | ".join(r) + " |" for r in cells)]))
    return "\n\n".join(out) + "\n"


def to_html(doc: list[Block]) -> str:
    e = html.escape
    out = ['<!doctype html><html><head><meta charset="utf-8"><title>'
           + e(next((b[2] for b in doc if b[0] == "h"), "vpd")) + "</title></head><body>"]
    for block in doc:
        kind = block[0]
        if kind == "h":
            out.append(f"<h{block[1]}>{e(block[2])}</h{block[1]}>")
        elif kind == "p":
            out.append(f"<p>{e(block[1])}</p>")
        elif kind == "code":
            out.append(f"<pre><code>{e(block[1])}</code></pre>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in block[2])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
    return "\n".join(out) + "\n</body></html>\n"


def report(number: int, fmt: str, lang: str | None = None) -> dict:
    run = last_run(number)
    lang = check_lang(lang or run.get("lang") or "es")
    doc = blocks(run, lang)
    return {"practica": number, "journal_id": run["journal_id"], "format": fmt,
            "text": to_html(doc) if fmt == "html" else markdown(doc)}
