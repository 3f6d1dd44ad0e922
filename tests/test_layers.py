"""The package layering of DESIGN.md, held by test: no forbidden import direction, no cycle.

Layers, lowest first: kernels -> search -> models -> verifiers -> the front door (ponder/) ->
bench. A package may import its own layer and those below it, never one above it. search/ in
particular imports only its protocols and kernels (never torch, models or verifiers), and
kernels/ nothing of ponder above them. Every ``import`` statement counts, also those inside
functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = {"kernels": "kernels", "search": "search", "models": "models", "verifiers": "verifiers", "ponder": "front", "bench": "bench"}
ORDER = ["kernels", "search", "models", "verifiers", "front", "bench"]
HEAVY = ("torch", "transformers", "diffusers")  # search/ must not import these


def _layer_of(module: str) -> str | None:
    """The layer of a dotted ponder module name (None for third-party modules)."""
    parts = module.split(".")
    if parts[0] != "ponder":
        return None
    if len(parts) == 1:
        return "front"
    return {"kernels": "kernels", "search": "search", "models": "models", "verifiers": "verifiers", "bench": "bench", "data": "kernels"}.get(parts[1], "front")


def _module_name(path: pathlib.Path) -> str:
    folder = path.relative_to(ROOT).parts[0]
    package = "ponder" if folder == "ponder" else f"ponder.{folder}"
    rest = path.relative_to(ROOT / folder).with_suffix("").parts
    rest = rest[:-1] if rest[-1] == "__init__" else rest
    return ".".join((package, *rest))


def _imports(path: pathlib.Path, *, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``path``; relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((module, node.lineno))
            out += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]  # `from pkg import submodule`
    return out


def _sources() -> list[pathlib.Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)


def _known_modules() -> set[str]:
    return {_module_name(p) for p in _sources()}


def test_the_source_folders_exist_and_hold_python():
    for folder in FOLDERS:
        assert list((ROOT / folder).rglob("*.py")), f"{folder}/ holds no Python file"


def test_no_package_imports_a_layer_above_it():
    known = _known_modules()
    bad = []
    for path in _sources():
        own = FOLDERS[path.relative_to(ROOT).parts[0]]
        for module, line in _imports(path):
            layer = _layer_of(module)
            if layer is not None and ORDER.index(layer) > ORDER.index(own) and (module in known or module.rsplit(".", 1)[0] in known):
                bad.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {module} ({layer})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_search_imports_no_heavy_framework():
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in (ROOT / "search").rglob("*.py")
        for module, line in _imports(path)
        if module.split(".")[0] in HEAVY
    ]
    assert not bad, "search/ must not import torch, transformers or diffusers:\n" + "\n".join(bad)


def test_kernels_import_only_numpy_numba_and_each_other():
    allowed = {"numpy", "numba", *sys.stdlib_module_names}
    bad = []
    for path in (ROOT / "kernels").rglob("*.py"):
        for module, line in _imports(path):
            top = module.split(".")[0]
            if top == "ponder":
                if _layer_of(module) != "kernels":
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
            elif top not in allowed:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, "kernels/ may import only numpy, numba, the standard library and other kernels:\n" + "\n".join(bad)


def test_no_import_cycle_among_modules():
    known = _known_modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for path in _sources():
        name = _module_name(path)
        for module, _ in _imports(path, top_level_only=True):
            target = module if module in known else module.rsplit(".", 1)[0]
            if target in known and target != name and not name.startswith(target + "."):  # a module imports its package first anyway
                graph[name].add(target)
    assert sum(len(v) for v in graph.values()) > 20, "the import graph is implausibly small: the parser found no imports"
    # Tarjan's strongly connected components: any component of two or more modules is a cycle
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_a_forbidden_import_is_caught():
    """The checker itself: a search module importing models is reported."""
    fake = ROOT / "search" / "_layer_probe_tmp.py"
    fake.write_text("from ponder.models import lm\n")
    try:
        with pytest.raises(AssertionError, match="_layer_probe_tmp.py:1 \\(search\\) imports ponder.models"):
            test_no_package_imports_a_layer_above_it()
    finally:
        fake.unlink()


@pytest.mark.parametrize(
    "module, allowed",
    [
        ("ponder.search.protocols", {"ponder", "ponder.search", "ponder.search.errors", "ponder.search.protocols"}),
        ("ponder", {"ponder", "ponder.search"}),
    ],
)
def test_importing_the_protocols_loads_nothing_else(module, allowed):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('ponder')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out.strip()))
    assert loaded == allowed, f"import {module} loaded {sorted(loaded - allowed)} beyond {sorted(allowed)}"
    assert "torch" not in subprocess.run([sys.executable, "-c", code.replace("startswith('ponder')", "startswith('torch')")], capture_output=True, text=True, check=True).stdout
