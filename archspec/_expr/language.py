"""The vocabulary of the expression language, shared by its parser and its evaluator.

What it does: names what an expression may use: the shape names (:data:`SHAPE_NAMES`),
the functions (:data:`FUNCTIONS`, with their argument counts and what they do), the
operators, YAML's ``true``/``false``, the loop bound (:data:`MAX_STEPS`); defines
:class:`Expr`, a parsed expression, and how a part of one is located in the file and
how a value's type is named in messages.

What it deliberately does not do: parse (:mod:`.parse`) or evaluate (:mod:`.evaluate`).
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass
from typing import Any

from .._errors import Loc

__all__ = ["Expr", "SHAPE_NAMES", "FUNCTIONS", "MAX_STEPS", "is_expression", "describe", "make_divisible"]

#: names bound to the node's input shape; expressions using them are evaluated by `infer`
SHAPE_NAMES = frozenset({"in_c", "in_h", "in_w"})


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``,
    which defaults to ``divisor``), but never more than 10 % below ``value``: the channel
    rule of MobileNet, MNASNet, EfficientNet and RegNet (TensorFlow's ``make_divisible``)."""
    floor = divisor if min_value is None else min_value
    nearest = int(value + divisor / 2) // divisor * divisor
    result = max(floor, nearest)
    return result + divisor if result < 0.9 * value else result


def _range(*args: int) -> list[int]:
    return list(range(*args))


def _log(value: float, base: float | None = None) -> float:
    return math.log(value) if base is None else math.log(value, base)


#: name -> (function, least arguments, most arguments (None: any), what it does)
FUNCTIONS: dict[str, tuple[Any, int, int | None, str]] = {
    "min": (min, 1, None, "the smallest argument, or the smallest item of one list"),
    "max": (max, 1, None, "the largest argument, or the largest item of one list"),
    "abs": (abs, 1, 1, "the absolute value"),
    "int": (int, 1, 1, "a number truncated to an integer"),
    "float": (float, 1, 1, "a number as a float"),
    "round": (round, 1, 1, "the nearest integer (halves to even, as Python and torch round)"),
    "ceil": (math.ceil, 1, 1, "the smallest integer >= the number"),
    "floor": (math.floor, 1, 1, "the largest integer <= the number"),
    "sqrt": (math.sqrt, 1, 1, "the square root"),
    "log": (_log, 1, 2, "the natural logarithm, or log(x, base)"),
    "exp": (math.exp, 1, 1, "e to the power of the number"),
    "len": (len, 1, 1, "the number of items of a list (or characters of a string)"),
    "sum": (sum, 1, 1, "the sum of a list of numbers"),
    "range": (_range, 1, 3, "range(n): [0, 1, ..., n-1]; range(a, b[, step]) as Python's, as a list"),
    "str": (str, 1, 1, "an integer (or a string) as a string, for names: 'down' + str(i + 1)"),
    "make_divisible": (make_divisible, 2, 3, "make_divisible(v, divisor[, min_value]): v rounded to a multiple of "
                       "divisor, never 10 % below v (MobileNet's channel rule)"),
}

#: ``true`` and ``false`` as YAML writes them (Python's ``True`` and ``False`` work too)
WORDS = {"true": True, "false": False}

#: loop iterations (comprehension items and range/sum lengths) one evaluation may take
MAX_STEPS = 1_000_000

#: what an expression may hold, as messages list it
ALLOWED = ("arithmetic, comparisons, and/or/not, 'a if c else b', list[index], list[a:b], [x for x in list if ...] "
           "and the functions " + ", ".join(FUNCTIONS))

BINOPS = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


@dataclass(frozen=True)
class Expr:
    """A parsed expression: its text, syntax tree, free names and source position.

    ``loc`` is the position of the expression's first character in the file (past the
    ``$`` or ``${``), so that a failing part can be pointed at exactly.
    """

    text: str
    tree: ast.expr
    names: frozenset[str]
    loc: Loc | None = None

    def __repr__(self) -> str:
        return f"${{{self.text}}}"


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$") and not value.startswith("$$")


def at(loc: Loc | None, col: int, width: int | None = None) -> Loc | None:
    """The position ``col`` characters into the expression at ``loc``."""
    return loc.shifted(col, width) if loc else None


def node_loc(node: ast.AST, loc: Loc | None, lead: int) -> Loc | None:
    """Where ``node`` of the expression at ``loc`` stands (``lead``: the blanks before
    the text that was parsed); the whole expression when it spans lines."""
    if loc is None or getattr(node, "lineno", 1) != 1:
        return loc
    end = getattr(node, "end_col_offset", None)
    width = end - node.col_offset if end is not None and getattr(node, "end_lineno", 1) == 1 else None
    return loc.shifted(node.col_offset + lead, width)


def describe(value: Any) -> str:
    """A value's type, as the spec language names it, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "null"
    return type(value).__name__
