"""`vpd practica run|report` without a lab: which Prácticas run, and the report written from a
journaled run (Markdown and HTML), with the figures and commands of that run."""
from __future__ import annotations

import pytest

from vpd.core import journal
from vpd.core.errors import NotFound, UsageError
from vpd.practica import report, run

from .conftest import run_vpd

RUN = {
    "practica": 4, "title": "Migración de máquinas virtuales", "lang": "es", "src": "hosta", "dst": "hostb",
    "vm": "mvp4_x", "ok": True,
    "steps": [
        {"goal": "firewall", "goal_title": "g", "title": "Abrir puertos", "hand": ["sudo firewall-cmd --reload"],
         "note": None, "vpd": "vpd host prepare hosta hostb", "ok": True, "outcome": {},
         "did": ["ssh root@198.18.5.11 -- 'nft insert rule inet t input accept'"]},
        {"goal": "migrated", "goal_title": "g", "title": "Migrar en vivo", "hand": ["sudo virsh migrate --live x y"],
         "note": None, "vpd": "vpd migrate mvp4_x --to hostb", "ok": True, "outcome": {},
         "did": ["virsh -c qemu+tcp://198.18.5.11/system migrate --live mvp4_x 'qemu+ssh://hostb/system'"]},
    ],
    "validation": {"ok": True, "goals": [{"id": "migrated", "ok": True, "title": "t",
                                           "checks": [{"name": "mvp4_x running on hostb", "detail": "a | b"}]}]},
    "measured": {"migration": {"mode": "live", "total_seconds": 3.5, "downtime_ms": 41}},
    "questions": [{"question": "¿Cuánto tiempo estuvo la MV detenida?", "answer": "41 ms"}],
}


def test_only_runnable_practicas_run():
    assert run.plan(4, "es")
    with pytest.raises(UsageError, match="cannot be run"):
        run.plan(1, "es")
    with pytest.raises(UsageError):
        run.plan(4, "fr")


def test_the_report_has_the_seeds_sections_the_commands_and_the_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("VPD_HOME", str(tmp_path))
    with pytest.raises(NotFound):
        report.last_run(4)
    with journal.record("practica.run", target="hosta->hostb", number=4, vm="mvp4_x", lang="es") as entry:
        entry.result = RUN
    md = report.report(4, "md")["text"]
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections == ["## Preparación", "## Migración", "## Pruebas y validación", "## Conclusiones"]
    assert "```sh\nvirsh -c qemu+tcp://198.18.5.11/system migrate --live mvp4_x 'qemu+ssh://hostb/system'\n```" in md
    assert "¿Cuánto tiempo estuvo la MV detenida? — 41 ms" in md
    assert "a \\| b" in md  # a table cell's bar does not split the cell
    assert "tardó 3.5 s con 41 ms de parada" in md
    page = report.report(4, "html", "en")["text"]
    assert "<h2>Tests and validation</h2>" in page and "&#x27;qemu+ssh://hostb/system&#x27;" in page


def test_report_cli_without_a_run_is_exit_2_and_run_refuses_bad_input(test_inventory, tmp_path, monkeypatch):
    monkeypatch.setenv("VPD_HOME", str(tmp_path))
    assert run_vpd("practica", "report", "4", inventory=test_inventory).returncode == 2
    assert run_vpd("practica", "run", "1", "--hosts", "t1,t2", inventory=test_inventory).returncode == 2
    assert run_vpd("practica", "run", "4", "--hosts", "t1,t1", inventory=test_inventory).returncode == 2
    off_lab = run_vpd("practica", "run", "6", "--hosts", "t1,t2", inventory=test_inventory)
    assert off_lab.returncode == 2 and "--set LUN=... --set SAN=..." in off_lab.stderr
    assert journal.entries(10, "practica") == []  # refused before anything was journaled
