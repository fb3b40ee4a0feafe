"""The package's layering: data flows one way, each layer imports only the layers before it, no cycles.

Every ``import``/``from ... import`` of a ``descnet`` module counts, at module level or inside a function
(a lazy import still ties the modules together). ``docs/architecture.md`` explains the layers.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "descnet"

#: the layers, first to last; a module may import its own layer and the layers before it.
LAYERS = [
    ("base", ["descnet.io", "descnet.lazy", "descnet.parallel", "descnet.precision", "descnet.runinfo"]),
    ("data", ["descnet.data"]),
    ("sampling", ["descnet.sampling"]),
    ("models", ["descnet.models"]),
    ("losses", ["descnet.losses"]),
    ("features", ["descnet.features"]),
    ("geometry", ["descnet.geometry"]),
    ("eval", ["descnet.eval"]),
    ("training", ["descnet.training"]),
    ("cli", ["descnet.cli"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def descnet_imports(path: Path) -> set[str]:
    """The descnet modules ``path`` imports (``from pkg import mod`` resolves to ``pkg.mod`` when that is a
    module of the package)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "descnet")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "descnet":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return found - {name}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: descnet_imports(path) for name, path in MODULES.items()}


def layer_of(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def test_every_module_has_a_layer():
    loose = sorted(m for m in MODULES if m != "descnet" and layer_of(m) is None)
    assert not loose, f"modules outside the layers of tests/test_import_graph.py (add them there and to docs): {loose}"


def test_library_never_imports_the_cli():
    offenders = {m: sorted(d for d in deps if d.startswith("descnet.cli"))
                 for m, deps in GRAPH.items() if not m.startswith("descnet.cli")}
    offenders = {m: d for m, d in offenders.items() if d}
    assert not offenders, f"library modules importing the command line: {offenders}"


def test_no_upward_imports():
    upward = []
    for module, deps in GRAPH.items():
        if module == "descnet":  # the top-level package re-exports the public API lazily
            continue
        for dep in deps:
            if dep != "descnet" and layer_of(dep) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})")
    assert not upward, "imports against the data flow:\n" + "\n".join(sorted(upward))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
])
def test_the_cycle_check_finds_cycles(graph, cycle):
    assert find_cycle(graph) == cycle
