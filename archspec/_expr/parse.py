"""The expression parser: expression text to a checked syntax tree and its free names.

What it does: parses ``$name`` and ``${...}`` values (:func:`parse_value`), bare
expression text (:func:`parse`, cached) and node-name templates such as
``denselayer{i+1}`` (:func:`parse_name_template`) with Python's own parser, then walks
the tree and refuses, at the offending part's column, everything outside the language's
whitelist: attribute access, other calls, lambdas, assignment, set and dict literals,
f-strings, nesting past 64 levels, expressions over ``Limits.max_expression_chars``.

What it deliberately does not do: evaluate anything (:mod:`.evaluate`).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from typing import Any

from .._errors import Loc, SpecError, SpecExpressionError, did_you_mean
from .._limits import DEFAULT_LIMITS, Limits
from .language import ALLOWED, is_expression, BINOPS, CMPOPS, FUNCTIONS, SHAPE_NAMES, WORDS, Expr, at, node_loc

__all__ = ["parse", "parse_value", "parse_name_template"]

_MAX_DEPTH = 64


def parse_value(value: str, loc: Loc | None = None, limits: Limits = DEFAULT_LIMITS) -> Expr:
    """Parse a ``$name`` or ``${...}`` value string (``loc``: where the string starts)."""
    if value.startswith("${"):
        if not value.endswith("}"):
            raise SpecExpressionError(
                f"the expression '{value}' has no closing '}}'", loc, expected="${...} around the whole value"
            )
        return parse(value[2:-1], loc.shifted(2) if loc else None, limits)
    body = value[1:]
    if not body.isidentifier():
        raise SpecExpressionError(
            f"'{value}' is not a name reference",
            loc,
            expected="'$name' for one name, or '${...}' around an expression",
            hint=f"write '${{{body}}}'" if body else "a value that starts with '$' is an expression; write '$$' for a literal '$'",
        )
    return parse(body, loc.shifted(1) if loc else None, limits)


def parse(text: str, loc: Loc | None = None, limits: Limits = DEFAULT_LIMITS) -> Expr:
    """Parse expression text, refusing everything outside the whitelist."""
    if len(text) > limits.max_expression_chars:
        raise SpecExpressionError(
            f"the expression is {len(text):,} characters long, over the limit of {limits.max_expression_chars:,} "
            "(Limits.max_expression_chars)",
            loc,
        )
    tree, names = _parse_cached(text, loc)
    return Expr(text, tree, names, loc)


@lru_cache(maxsize=4096)
def _parse_cached(text: str, loc: Loc | None) -> tuple[ast.expr, frozenset[str]]:
    if not text.strip():
        raise SpecExpressionError("the expression is empty", loc, expected="an expression such as ${growth * 4}")
    if "\n" in text:
        text_shown = " ".join(text.split())
    else:
        text_shown = text
    try:
        module = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        col = (e.offset or 1) - 1 + (len(text) - len(text.lstrip()))
        raise SpecExpressionError(
            f"invalid expression '{text_shown}': {e.msg}", at(loc, col), expected="arithmetic, comparisons, conditionals and min/max/int"
        ) from None
    except (RecursionError, MemoryError, ValueError):
        raise SpecExpressionError(f"the expression '{text_shown[:60]}...' nests too deeply to parse", loc) from None
    lead = len(text) - len(text.lstrip())
    names: set[str] = set()
    _check(module.body, text_shown, loc, lead, names, 0)
    return module.body, frozenset(names)


def _check(node: ast.AST, text: str, loc: Loc | None, lead: int, names: set[str], depth: int,
           bound: frozenset[str] = frozenset()) -> None:
    """Refuse what the language does not have; collect the free names into ``names``
    (``bound``: the variables of enclosing comprehensions, which are not free)."""
    if depth > _MAX_DEPTH:
        raise SpecExpressionError(f"the expression '{text[:60]}' nests deeper than {_MAX_DEPTH} levels", loc)

    def refuse(what: str, hint: str | None = None) -> SpecExpressionError:
        return SpecExpressionError(f"{what} is not allowed in an expression ('{text}')", node_loc(node, loc, lead),
                                   expected=ALLOWED, hint=hint)

    def check(child: ast.AST, inner: frozenset[str] = bound) -> None:
        _check(child, text, loc, lead, names, depth + 1, inner)

    if isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool)) or node.value is None:
            raise refuse(f"the constant {node.value!r}")
        return
    if isinstance(node, ast.Name):
        if node.id not in bound and node.id not in WORDS:
            names.add(node.id)
        return
    children: list[ast.AST]
    if isinstance(node, ast.BinOp):
        if type(node.op) not in BINOPS:
            raise refuse(f"the operator '{_op_text(node.op)}'")
        children = [node.left, node.right]
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            raise refuse(f"the operator '{_op_text(node.op)}'")
        children = [node.operand]
    elif isinstance(node, ast.BoolOp):
        children = list(node.values)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in CMPOPS:
                raise refuse(f"the comparison '{_op_text(op)}'")
        children = [node.left, *node.comparators]
    elif isinstance(node, ast.IfExp):
        children = [node.test, node.body, node.orelse]
    elif isinstance(node, (ast.Tuple, ast.List)):
        children = list(node.elts)
    elif isinstance(node, ast.Subscript):
        if isinstance(node.slice, ast.Slice):
            children = [node.value] + [p for p in (node.slice.lower, node.slice.upper, node.slice.step) if p is not None]
        else:
            children = [node.value, node.slice]
    elif isinstance(node, (ast.ListComp, ast.GeneratorExp)):
        inner = bound
        for gen in node.generators:
            if not isinstance(gen.target, ast.Name):
                raise refuse("unpacking in a comprehension", "write 'for x in ...' with one name, and index x")
            if gen.target.id in SHAPE_NAMES or gen.target.id in FUNCTIONS:
                raise refuse(f"the loop name '{gen.target.id}' (it names the input shape or a function)")
            check(gen.iter, inner)
            inner = inner | {gen.target.id}
            for cond in gen.ifs:
                check(cond, inner)
        check(node.elt, inner)
        return
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise refuse(f"calling '{called}'", did_you_mean(called, FUNCTIONS) if isinstance(node.func, ast.Name) else None)
        if node.keywords:
            raise refuse("a keyword argument")
        _, lo, hi, _ = FUNCTIONS[node.func.id]
        if len(node.args) < lo or (hi is not None and len(node.args) > hi):
            wanted = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise SpecExpressionError(
                f"'{node.func.id}' takes {wanted} argument{'s' if hi != 1 else ''}, found {len(node.args)} in '{text}'",
                node_loc(node, loc, lead),
            )
        children = list(node.args)
    elif isinstance(node, ast.Attribute):
        raise refuse("attribute access ('.')", "shapes are the names in_c, in_h and in_w")
    elif isinstance(node, ast.Starred):
        raise refuse("unpacking with '*'")
    elif isinstance(node, (ast.Lambda, ast.SetComp, ast.DictComp)):
        raise refuse("a lambda or set/dict comprehension")
    elif isinstance(node, (ast.Dict, ast.Set)):
        raise refuse("a dict or set literal")
    elif isinstance(node, ast.JoinedStr):
        raise refuse("an f-string")
    elif isinstance(node, ast.NamedExpr):
        raise refuse("assignment with ':='")
    else:
        raise refuse(f"'{type(node).__name__}'")
    for child in children:
        check(child)


def _op_text(op: ast.AST) -> str:
    return {
        ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
        ast.MatMult: "@", ast.Invert: "~", ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
    }.get(type(op), type(op).__name__)


def parse_name_template(name: str, loc: Loc | None = None, limits: Limits = DEFAULT_LIMITS) -> list[str | Expr]:
    """Split a node name such as ``denselayer{i+1}`` into literal text and expressions."""
    parts: list[str | Expr] = []
    pos = 0
    while pos < len(name):
        start = name.find("{", pos)
        close = name.find("}", pos)
        if close != -1 and (start == -1 or close < start):
            raise SpecExpressionError(f"unmatched '}}' in the name '{name}'", at(loc, close))
        if start == -1:
            parts.append(name[pos:])
            break
        if start > pos:
            parts.append(name[pos:start])
        end = name.find("}", start)
        if end == -1:
            raise SpecExpressionError(f"unclosed '{{' in the name '{name}'", at(loc, start), expected="'{expression}' such as 'layer{i+1}'")
        parts.append(parse(name[start + 1:end], at(loc, start + 1), limits))
        pos = end + 1
    return parts


def names_used(data: Any, limits: Limits) -> set[str]:
    """Every name an expression in ``data`` (a spec's data, or part of it) reads, in its
    values and its name templates (``"encoder_layer_{i}"``); an expression that does not
    parse is left out (it is reported where it is evaluated)."""
    used: set[str] = set()
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(key, str) and "{" in key:
                    try:
                        used.update(n for part in parse_name_template(key, None, limits) if isinstance(part, Expr)
                                    for n in part.names)
                    except SpecError:
                        pass
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and is_expression(item):
            try:
                used.update(parse_value(item, None, limits).names)
            except SpecError:
                pass
    return used
