"""The house's shape: imports that point one way through the pipeline, and small modules.

The pipeline reads ``load -> validate -> resolve -> infer -> lower -> tools``, with the
compiler (which chains the stages) and the CLI and public ``archspec`` package on top.
Below every stage sit the shared modules: errors, limits, files, the expression language,
value types, the IR, the op registry and the runtime layers. A module may import from its
own layer or a lower one, never from a higher one, and the import graph has no circle.
Imports inside functions count too: a late import is still a dependency.

These tests read the sources with :mod:`ast`; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "archspec"

#: each top-level part of the package (a module or a subpackage) and its layer; a higher
#: number may import a lower one. A new module must be placed here, so that its place in
#: the pipeline is a decision, not an accident.
LAYERS = {
    # shared below every stage
    "_errors": 0, "_limits": 0, "_files": 0, "_diagnostics": 1, "_expr": 1, "_init_fns": 1, "_values": 2, "layers": 2, "ops": 3,
    "_ir": 4,
    # the stages
    "_bundled": 5, "_load": 5,
    "_schema": 6,
    "_resolve": 7,
    "_inplace": 8, "_infer": 8,
    "_info": 9, "_codegen": 9, "_initialize": 9, "_module": 9, "_weights": 9, "_lower": 10, "_optimize": 11,
    # tools over an inferred graph or a compiled model
    "_features": 12, "_summary": 12, "_draw": 13, "_diff": 13, "_export": 12, "_distributed": 12,
    # on top
    "_compiler": 14, "_commands": 15, "cli": 15, "__init__": 16, "__main__": 16,
}
STAGE_NAMES = {0: "shared", 5: "load", 6: "validate", 7: "resolve", 8: "infer", 9: "lower", 12: "tools", 14: "compiler"}


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``archspec._resolve.bodies``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, at any depth of its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from . import ops` imports a module; `from ._ir import Graph` a name of one
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `archspec.ops.conv.x` -> its module
                target = target.rpartition(".")[0]
            if target.startswith("archspec") and target != name:
                out.add(target)
    return out


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer():
    unplaced = sorted({_part(m) for m in _modules()} - set(LAYERS))
    assert not unplaced, f"place these in tests/test_architecture.py's LAYERS: {unplaced}"


def test_imports_point_down_the_pipeline():
    upward = []
    for module, targets in sorted(_graph().items()):
        for target in sorted(targets):
            if target == "archspec":
                if module.startswith("archspec.") :
                    upward.append(f"{module} imports the package 'archspec' itself (name the module it needs)")
                continue
            if LAYERS[_part(target)] > LAYERS[_part(module)]:
                upward.append(f"{module} (layer {LAYERS[_part(module)]}) imports {target} (layer {LAYERS[_part(target)]})")
    assert not upward, "imports that point up the pipeline:\n" + "\n".join(upward)


def test_no_import_circle():
    graph = _graph()
    # Tarjan's strongly connected components: a component of more than one module is a circle
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 260


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_and_classes_stay_small(name):
    path = _modules()[name]
    source = path.read_text(encoding="utf-8")
    lines = source.count("\n") + 1
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines (at most {MAX_MODULE_LINES}): split it"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1
            assert size <= MAX_CLASS_LINES, (f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: class {node.name} has {size} lines "
                                             f"(at most {MAX_CLASS_LINES})")
