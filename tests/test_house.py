"""The house rules the stages keep, checked on their sources.

Op knowledge lives on the op: every property a stage asks of an op is a field of its
``OpDef`` (``archspec/ops/``), so no module of ``archspec/`` outside ``ops/`` asks whether
a node *is* a particular op. The check reads each module's syntax tree and flags a string
literal naming a registered op where it stands for an op:

- compared with an op (``node.op == "concat"``, ``op in ("linear", "conv2d")``), an op
  being an ``.op`` attribute or a variable named ``op``;
- inside a table (a tuple, set, list or dict bound to a name) that the module looks an op
  up in (``node.op in _PASS``, ``_FILL.get(item.op)``, ``_FOLDS[node.op]``);
- given as a node's op (``Node(path, "concat", ...)``, ``op="add"``, ``op = "add"``);
- looked up in the registry (``ops.REGISTRY["linear"]``, ``ops.get("linear")``).

The same words used as something else are not op knowledge and pass by that rule: the
container kinds ``concat:`` and ``add:`` are keywords of the language (compared with a
container's kind, never with an op; the op each container joins with is the join
``OpDef``'s ``joins``), ``"linear"`` and ``"relu"`` as the nonlinearity of a kaiming
initialiser, ``"mean"`` as an initialiser's argument, a function named in ``__all__``.
``layers.py`` (the runtime modules ops build) is checked as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import archspec
from archspec import ops
from archspec.layers import POSTOPS

PACKAGE = Path(archspec.__file__).parent

_TABLES = (ast.Tuple, ast.List, ast.Set, ast.Dict)


def _is_op(expr: ast.AST) -> bool:
    """Whether ``expr`` stands for an op's name: ``<x>.op`` or a variable ``op``."""
    return (isinstance(expr, ast.Attribute) and expr.attr == "op") or (isinstance(expr, ast.Name) and expr.id == "op")


def _is_registry(expr: ast.AST) -> bool:
    """``ops.REGISTRY``, ``REGISTRY``, ``ops``, ``_registry``: what ops are looked up in."""
    name = expr.attr if isinstance(expr, ast.Attribute) else expr.id if isinstance(expr, ast.Name) else ""
    return name in ("REGISTRY", "ops", "_registry")


def _literals(expr: ast.AST, names: set[str]) -> list[ast.Constant]:
    return [n for n in ast.walk(expr) if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names]


def op_names_in(source: str, names: set[str], looked_up_elsewhere: frozenset[str] = frozenset()) -> list[tuple[int, str]]:
    """``(line, op name)`` for each place ``source`` names an op (see the module docstring);
    ``looked_up_elsewhere``: the names other modules look an op up in (a table defined here
    and imported there, ``node.op in FUSED``, names ops as much as one used here)."""
    found, looked_up, tables = _scan(source, names)
    for name in (looked_up | looked_up_elsewhere) & set(tables):
        for table in tables[name]:
            found.extend(_literals(table, names))
    return sorted({(c.lineno, c.value) for c in found})


def lookups_in(source: str) -> set[str]:
    """The names ``source`` looks an op up in (``node.op in NAME``, ``NAME.get(x.op)``, ``NAME[x.op]``)."""
    return _scan(source, set())[1]


def _scan(source: str, names: set[str]) -> tuple[list[ast.Constant], set[str], dict[str, list[ast.AST]]]:
    tree = ast.parse(source)
    tables: dict[str, list[ast.AST]] = {}  # a name bound to a literal table -> those tables
    for n in ast.walk(tree):
        targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, ast.AnnAssign) else []
        value = getattr(n, "value", None)
        if isinstance(value, _TABLES):
            for t in targets:
                if isinstance(t, ast.Name):
                    tables.setdefault(t.id, []).append(value)
    found: list[ast.Constant] = []
    looked_up: set[str] = set()  # tables an op is looked up in

    def operand(expr: ast.AST) -> None:
        found.extend(_literals(expr, names))
        if isinstance(expr, ast.Name):
            looked_up.add(expr.id)

    for n in ast.walk(tree):
        if isinstance(n, ast.Compare):
            sides = [n.left, *n.comparators]
            if any(_is_op(s) for s in sides):
                for s in sides:
                    if not _is_op(s):
                        operand(s)
        elif isinstance(n, ast.Subscript):
            if _is_op(n.slice) and isinstance(n.value, ast.Name):
                operand(n.value)
            elif _is_registry(n.value):
                found.extend(_literals(n.slice, names))
        elif isinstance(n, ast.Call):
            func = n.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and n.args:
                if _is_op(n.args[0]) and isinstance(func.value, ast.Name):
                    operand(func.value)
                elif _is_registry(func.value):
                    found.extend(_literals(n.args[0], names))
            if isinstance(func, ast.Name) and func.id == "Node" and len(n.args) > 1:
                found.extend(_literals(n.args[1], names))
            for kw in n.keywords:
                if kw.arg == "op":
                    found.extend(_literals(kw.value, names))
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            if any(_is_op(t) for t in targets) and n.value is not None:
                found.extend(_literals(n.value, names))
    return found, looked_up, tables


def _stages() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "ops" not in p.relative_to(PACKAGE).parts[:-1])


def test_no_stage_names_an_op():
    names = set(ops.names())
    assert len(names) > 40 and len(_stages()) > 20  # the walk sees the registry and the stages
    sources = {p: p.read_text(encoding="utf-8") for p in _stages()}
    everywhere = frozenset().union(*(lookups_in(s) for s in sources.values()))
    where = [f"{p.relative_to(PACKAGE.parent)}:{line}: names the op '{name}'"
             for p, source in sources.items() for line, name in op_names_in(source, names, everywhere)]
    assert not where, ("a stage asks which op a node is; make it a field of the op's OpDef "
                       "(archspec/ops/_registry.py) instead:\n" + "\n".join(where))


def test_the_check_sees_each_way_of_naming_an_op():
    source = '''
_PASS = ("dropout", "identity")
_FILL = {"conv2d": "#fff"}
_FOLDS = {"batchnorm2d": "conv2d"}
CONTAINER_KINDS = ("seq", "concat", "add", "dense")
if node.op == "relu" or "gelu" != n.op: pass
if node.op in _PASS: pass
colour = _FILL.get(item.op, "#000")
layer = _FOLDS[node.op]
op = "add" if kind == "add" else "concat"
Node(path, "mul", {}, [])
make(op="softmax")
d = ops.REGISTRY["linear"]
if kind in CONTAINER_KINDS or kind == "concat": pass
init(nonlinearity="relu", mode="fan_in")
__all__ = ["select"]
'''
    assert op_names_in(source, set(ops.names())) == [
        (2, "dropout"), (2, "identity"), (3, "conv2d"), (4, "batchnorm2d"), (4, "conv2d"), (6, "gelu"), (6, "relu"),
        (10, "add"), (10, "concat"), (11, "mul"), (12, "softmax"), (13, "linear")]


def test_the_check_sees_a_table_looked_up_in_another_module():
    """A table of op names defined in one module and looked up by op in another (as
    ``_optimize`` once did with ``layers.FUSED_ACTIVATIONS``) is flagged where it is defined."""
    names = set(ops.names())
    table = 'FUSED = {"relu": ("relu", []), "silu": ("swish", [])}\n'
    user = "from .layers import FUSED\nif node.op in FUSED: pass\n"
    assert op_names_in(table, names) == []  # alone, nothing looks an op up in it
    assert op_names_in(table, names, frozenset(lookups_in(user))) == [(1, "relu"), (1, "silu")]


def test_every_fused_postop_is_one_fused_conv2d_applies():
    """An op's ``OpDef.fused_postop`` (what *optimize* fuses into the convolution before it)
    names a post-op :class:`archspec.layers.FusedConv2d` knows, with its scalars."""
    postops = {n: ops.get(n).fused_postop for n in ops.names() if ops.get(n).fused_postop is not None}
    assert postops and all(name in POSTOPS and len(scalars) == POSTOPS[name] for name, scalars in postops.values()), postops


def test_every_container_kind_but_seq_has_one_join_op():
    from archspec._schema import CONTAINER_KINDS

    joins = [(k, n) for n in ops.names() for k in ops.get(n).joins]
    assert sorted(k for k, _ in joins) == sorted(k for k in CONTAINER_KINDS if k != "seq")
    assert {k: ops.join_for(k) for k, _ in joins} == {"concat": ("concat", {"dim": 1}), "dense": ("concat", {"dim": 1}),
                                                      "add": ("add", {})}
