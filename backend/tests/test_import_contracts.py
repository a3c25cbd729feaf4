"""The architecture as checked facts: the import contracts of ``pyproject.toml`` ([tool.importlinter]:
layers, FastAPI only in the API, ccxt only in market and execution, the simulator and the worker never
imported from below) hold, and no module of ``tradefleet`` takes part in an import cycle.

Both read the static import graph of the package (grimp, import-linter's graph library), which holds
every import statement: at module level, inside functions and under ``TYPE_CHECKING``. Layers and
reasons: ``ARCHITECTURE.md``, "Layers".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

BACKEND = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_import_contracts_are_kept():
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=BACKEND, capture_output=True, text=True,
                          timeout=300)
    report = done.stdout + done.stderr
    assert done.returncode == 0, f"lint-imports found broken contracts:\n{report}"
    assert "0 broken" in report and "kept" in report, report


def import_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """The import cycles among the modules of ``package``: its strongly connected components of more
    than one module, and modules that import themselves, each as a sorted list of module names
    (Tarjan's algorithm, iterative; Tarjan 1972, "Depth-first search and linear graph algorithms")."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    inside = set(modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & inside) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    cycles.append(sorted(component))
    return sorted(cycles)


def _describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    members = set(cycle)
    lines = [" <-> ".join(cycle)]
    for module in cycle:
        for imported in sorted(graph.find_modules_directly_imported_by(module) & members):
            where = graph.get_import_details(importer=module, imported=imported)
            at = ", ".join(f"l.{d['line_number']}" for d in where)
            lines.append(f"    {module} -> {imported} ({at})")
    return "\n".join(lines)


def test_no_import_cycles():
    graph = grimp.build_graph("tradefleet", cache_dir=None)
    cycles = import_cycles(graph, "tradefleet")
    assert not cycles, "import cycles between modules of tradefleet:\n" + "\n".join(
        _describe(graph, c) for c in cycles)


def test_the_cycle_search_finds_cycles_and_nothing_else():
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.e", "other"):
        graph.add_module(name)
    for importer, imported in [("pkg.a", "pkg.b"), ("pkg.b", "pkg.c"), ("pkg.c", "pkg.a"),  # a -> b -> c -> a
                               ("pkg.c", "pkg.d"), ("pkg.d", "other"), ("other", "pkg.d"),  # not inside pkg
                               ("pkg.e", "pkg.e")]:  # imports itself
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph, "pkg") == [["pkg.a", "pkg.b", "pkg.c"], ["pkg.e"]]
