"""The package's floor plan, checked from the source with ast: the product does
not import its test bed (vpd.lab), and no two modules import each other, not
even through an import inside a function (those hide a cycle, not remove it)."""
from __future__ import annotations

import ast
from pathlib import Path

import vpd

PACKAGE_ROOT = Path(vpd.__file__).parent
LAB = "vpd.lab"
# The lab's own CLI (`vpd lab ...`) drives the lab, so it may import it; no other
# module outside vpd.lab may.
MAY_IMPORT_LAB = {"vpd.cli.commands_lab"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every vpd module `name` imports, at module level or anywhere inside it.
    `from X import y` counts as importing X.y when that is a module, else X."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                # A package's own name is its first level; a module's is its parent.
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return {m for m in found if m == "vpd" or m.startswith("vpd.")}


def _resolve(module: str) -> str | None:
    """The module in this package that `module` names (or its nearest parent)."""
    while module and module not in MODULES:
        module = module.rpartition(".")[0]
    return module or None


GRAPH = {name: {r for m in _imports(name, path) if (r := _resolve(m)) and r != name}
         for name, path in MODULES.items()}


def _in_lab(module: str) -> bool:
    return module == LAB or module.startswith(LAB + ".")


def test_the_graph_sees_imports_inside_functions_and_relative_imports():
    # Guards the parser itself: these edges exist in the tree today.
    assert "vpd.lab.layout" in GRAPH["vpd.lab.control"]
    assert "vpd.lab.control" in GRAPH["vpd.cli.commands_lab"]
    assert "vpd.core.errors" in GRAPH["vpd.connect.inventory"]


def test_nothing_outside_the_lab_imports_the_lab():
    offenders = sorted(f"{name} imports {target}"
                       for name, targets in GRAPH.items()
                       if not _in_lab(name) and name not in MAY_IMPORT_LAB
                       for target in targets if _in_lab(target))
    assert not offenders, "the product must not import its test bed:\n" + "\n".join(offenders)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None. Iterative DFS, three colours."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        colour[start] = GREY
        while stack:
            node, pending = stack[-1]
            if not pending:
                colour[node] = BLACK
                stack.pop()
                continue
            nxt = pending.pop()
            if colour.get(nxt, BLACK) == GREY:
                path = [n for n, _ in stack]
                return path[path.index(nxt):] + [nxt]
            if colour.get(nxt) == WHITE:
                colour[nxt] = GREY
                stack.append((nxt, sorted(graph[nxt])))
    return None


def test_find_cycle_reports_the_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    # Importing vpd.a.b also runs vpd/a/__init__; that implicit edge is left out,
    # so a package that imports its own submodules is not reported.
    cycle = _find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# The floors of docs/architecture.md: a package may import its own floor and the ones below.
FLOORS = {
    "core": 0,
    "xml": 1, "connect": 1,
    "ops": 2,
    "network": 3, "hostprep": 3, "access": 3,
    "vm": 4, "storage": 4, "snapshot": 4, "ct": 4, "host": 4,
    "ovf": 5, "backup": 5,
    "migration": 6,
    "cluster": 7, "practica": 7,
    "cli": 8, "web": 8,
}
# Front ends sit side by side; `vpd web`'s CLI command starts the server and manages its tokens.
MAY_REACH_ACROSS = {("vpd.cli.commands_web", "web")}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_has_a_floor():
    packages = {_package(m) for m in MODULES} - {None, "lab", "__main__"}
    assert packages <= set(FLOORS), f"give these packages a floor: {sorted(packages - set(FLOORS))}"


def test_no_import_reaches_up_a_floor():
    offenders = []
    for name, targets in GRAPH.items():
        here = _package(name)
        if here not in FLOORS:
            continue
        for target in targets:
            there = _package(target)
            if there not in FLOORS or there == here or (name, there) in MAY_REACH_ACROSS:
                continue
            if FLOORS[there] > FLOORS[here] or (FLOORS[there] == FLOORS[here] == 8):
                offenders.append(f"{name} (floor {FLOORS[here]}) imports {target} (floor {FLOORS[there]})")
    assert not offenders, "imports that reach up (docs/architecture.md):\n" + "\n".join(sorted(offenders))
