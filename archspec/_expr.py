"""The expression language: small, safe arithmetic over parameters and shapes.

A spec value is an expression when it is a string that starts with ``$``:

- ``$name`` reads one name: a block parameter, a spec parameter, the repeat index ``i``;
- ``${...}`` evaluates an expression: ``${bn_size * growth}``, ``${in_c // 2}``,
  ``${out if grow_first or i == reps - 1 else in_c}``, ``${block_config[2]}``.

Node names may hold ``{...}`` parts, evaluated the same way: ``denselayer{i+1}``.

The language is a whitelist over Python's expression syntax, evaluated here node by node
(never by ``eval``): numbers, strings, booleans, lists; ``+ - * / // % **``; comparisons
(``in`` and ``not in`` too); ``and or not``; ``a if c else b``; indexing and slicing a
list (``cfg[2]``, ``depths[:s]``); list comprehensions (``[ceil(n * d) for n in depths]``,
with ``if`` filters); and the functions in :data:`FUNCTIONS` (``min max abs int float
round ceil floor sqrt log exp len sum range make_divisible``). There is no attribute
access, no other calls, no lambda, no assignment; integers and powers are bounded
(``Limits.max_int``), lists by ``Limits.max_repeat`` items and every evaluation by
:data:`MAX_STEPS` loop iterations, so an expression can neither reach Python objects nor
run away with time or memory.

The shape of a node's input is visible as ``in_c`` (channels or features), ``in_h`` and
``in_w``; expressions that use them are evaluated by the *infer* stage, once shapes are
known; all others by *resolve*.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ._errors import Loc, SpecExpressionError, did_you_mean
from ._limits import DEFAULT_LIMITS, Limits

__all__ = ["Expr", "SHAPE_NAMES", "FUNCTIONS", "MAX_STEPS", "parse_value", "is_expression", "evaluate", "parse_name_template",
           "describe", "make_divisible"]

#: names bound to the node's input shape; expressions using them are evaluated by `infer`
SHAPE_NAMES = frozenset({"in_c", "in_h", "in_w"})

_MAX_DEPTH = 64



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
    "make_divisible": (make_divisible, 2, 3, "make_divisible(v, divisor[, min_value]): v rounded to a multiple of "
                       "divisor, never 10 % below v (MobileNet's channel rule)"),
}
_FUNCTIONS = FUNCTIONS

#: ``true`` and ``false`` as YAML writes them (Python's ``True`` and ``False`` work too)
_WORDS = {"true": True, "false": False}

#: loop iterations (comprehension items and range/sum lengths) one evaluation may take
MAX_STEPS = 1_000_000

_ALLOWED = ("arithmetic, comparisons, and/or/not, 'a if c else b', list[index], list[a:b], [x for x in list if ...] "
            "and the functions " + ", ".join(FUNCTIONS))

_BINOPS = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
_CMPOPS = {
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
            f"invalid expression '{text_shown}': {e.msg}", _at(loc, col), expected="arithmetic, comparisons, conditionals and min/max/int"
        ) from None
    except (RecursionError, MemoryError, ValueError):
        raise SpecExpressionError(f"the expression '{text_shown[:60]}...' nests too deeply to parse", loc) from None
    lead = len(text) - len(text.lstrip())
    names: set[str] = set()
    _check(module.body, text_shown, loc, lead, names, 0)
    return module.body, frozenset(names)


def _at(loc: Loc | None, col: int, width: int | None = None) -> Loc | None:
    return loc.shifted(col, width) if loc else None


def _node_loc(node: ast.AST, loc: Loc | None, lead: int) -> Loc | None:
    if loc is None or getattr(node, "lineno", 1) != 1:
        return loc
    end = getattr(node, "end_col_offset", None)
    width = end - node.col_offset if end is not None and getattr(node, "end_lineno", 1) == 1 else None
    return loc.shifted(node.col_offset + lead, width)


def _check(node: ast.AST, text: str, loc: Loc | None, lead: int, names: set[str], depth: int,
           bound: frozenset[str] = frozenset()) -> None:
    """Refuse what the language does not have; collect the free names into ``names``
    (``bound``: the variables of enclosing comprehensions, which are not free)."""
    if depth > _MAX_DEPTH:
        raise SpecExpressionError(f"the expression '{text[:60]}' nests deeper than {_MAX_DEPTH} levels", loc)

    def refuse(what: str, hint: str | None = None) -> SpecExpressionError:
        return SpecExpressionError(f"{what} is not allowed in an expression ('{text}')", _node_loc(node, loc, lead),
                                   expected=_ALLOWED, hint=hint)

    def check(child: ast.AST, inner: frozenset[str] = bound) -> None:
        _check(child, text, loc, lead, names, depth + 1, inner)

    if isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool)) or node.value is None:
            raise refuse(f"the constant {node.value!r}")
        return
    if isinstance(node, ast.Name):
        if node.id not in bound and node.id not in _WORDS:
            names.add(node.id)
        return
    children: list[ast.AST]
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
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
            if type(op) not in _CMPOPS:
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
                _node_loc(node, loc, lead),
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


class _Evaluator:
    def __init__(self, expr: Expr, env: Mapping[str, Any], limits: Limits, where: str | None) -> None:
        self.expr = expr
        self.env = env
        self.limits = limits
        self.where = where
        self.lead = len(expr.text) - len(expr.text.lstrip())
        self.steps = 0

    def fail(self, node: ast.AST, message: str, hint: str | None = None, expected: str | None = None) -> SpecExpressionError:
        return SpecExpressionError(
            f"{message} in '{self.expr.text.strip()}'",
            _node_loc(node, self.expr.loc, self.lead),
            node=self.where,
            hint=hint,
            expected=expected,
        )

    def number(self, node: ast.AST, value: Any, what: str) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(node, f"{what} needs numbers, but '{ast.unparse(node)}' is {describe(value)} ({value!r})")
        return value

    def bounded(self, node: ast.AST, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, complex):
            raise self.fail(node, "the result is a complex number")
        if isinstance(value, int) and abs(value) > self.limits.max_int:
            raise self.fail(node, f"the integer result is larger than {self.limits.max_int:.0e} (Limits.max_int)")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node, f"the result is {value}, not a finite number")
        return value

    def eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return self.bounded(node, node.value) if not isinstance(node.value, str) else node.value
        if isinstance(node, ast.Name):
            if node.id in _WORDS:  # YAML's spelling, as the values around the expression are written
                return _WORDS[node.id]
            if node.id in self.env:
                return self.env[node.id]
            known = sorted(self.env)
            if node.id in SHAPE_NAMES:
                raise self.fail(node, f"'{node.id}' (the input shape) is not known here",
                                hint="the input shape is only known for a node's own values, not for 'when', 'repeat' or names")
            raise self.fail(node, f"unknown name '{node.id}'", hint=did_you_mean(node.id, known),
                            expected="one of: " + (", ".join(known) if known else "(no names are defined here)"))
        if isinstance(node, ast.BinOp):
            symbol, fn = _BINOPS[type(node.op)]
            left = self.number(node.left, self.eval(node.left), f"'{symbol}'")
            right = self.number(node.right, self.eval(node.right), f"'{symbol}'")
            if symbol in ("/", "//", "%") and right == 0:
                raise self.fail(node.right, f"division by zero: '{ast.unparse(node.right)}' is 0")
            if symbol == "**":
                if left == 0 and right < 0:
                    raise self.fail(node.right, "zero to a negative power")
                if abs(left) > 1 and abs(right) > 64:
                    raise self.fail(node.right, f"the power {right} is too large (at most 64 for a base other than 0, 1, -1)")
                if left < 0 and not float(right).is_integer():
                    raise self.fail(node, "a negative number to a fractional power has no real value")
            try:
                result = fn(left, right)
            except (ArithmeticError, ValueError) as e:  # overflow of floats, and the like
                raise self.fail(node, f"the result cannot be computed ({e})") from None
            return self.bounded(node, result)
        if isinstance(node, ast.UnaryOp):
            value = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                return not self.truth(node.operand, value)
            value = self.number(node.operand, value, "'-'" if isinstance(node.op, ast.USub) else "'+'")
            return -value if isinstance(node.op, ast.USub) else +value
        if isinstance(node, ast.BoolOp):
            is_and = isinstance(node.op, ast.And)
            result: Any = is_and
            for sub in node.values:
                result = self.truth(sub, self.eval(sub))
                if result != is_and:
                    return result
            return result
        if isinstance(node, ast.Compare):
            left = self.eval(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.eval(right_node)
                if isinstance(op, (ast.In, ast.NotIn)):
                    if not isinstance(right, (list, tuple, str)) or (isinstance(right, str) and not isinstance(left, str)):
                        raise self.fail(node, f"'in' needs a list (or a string in a string) on its right, found {describe(right)}")
                elif type(op) not in (ast.Eq, ast.NotEq):
                    comparable = (
                        all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
                        or all(isinstance(v, str) for v in (left, right))
                    )
                    if not comparable:
                        raise self.fail(node, f"cannot order {describe(left)} and {describe(right)}")
                if not _CMPOPS[type(op)](_plain(left), _plain(right)):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return self.eval(node.body) if self.truth(node.test, self.eval(node.test)) else self.eval(node.orelse)
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self.eval(e) for e in node.elts)
        if isinstance(node, ast.Subscript):
            seq = self.eval(node.value)
            if not isinstance(seq, (list, tuple)):
                raise self.fail(node.value, f"only lists can be indexed, but '{ast.unparse(node.value)}' is {describe(seq)}")
            if isinstance(node.slice, ast.Slice):
                bounds = []
                for part in (node.slice.lower, node.slice.upper, node.slice.step):
                    value = None if part is None else self.eval(part)
                    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                        raise self.fail(part, f"a slice bound must be an integer, found {describe(value)}")
                    bounds.append(value)
                if bounds[2] == 0:
                    raise self.fail(node.slice.step, "a slice step cannot be zero")
                return seq[slice(*bounds)]
            index = self.eval(node.slice)
            if isinstance(index, bool) or not isinstance(index, int):
                raise self.fail(node.slice, f"a list index must be an integer, found {describe(index)}")
            if not -len(seq) <= index < len(seq):
                raise self.fail(node.slice, f"index {index} is out of range for a list of {len(seq)}")
            return seq[index]
        if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            return tuple(self.comprehension(node, 0))
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(node, f"'{type(node).__name__}' cannot be evaluated")  # pragma: no cover - _check refuses these

    def comprehension(self, node: ast.ListComp | ast.GeneratorExp, level: int) -> list[Any]:
        """The items of ``[elt for x in a if c for y in b ...]``, generator ``level`` onwards."""
        if level == len(node.generators):
            return [self.eval(node.elt)]
        gen = node.generators[level]
        items = self.eval(gen.iter)
        if not isinstance(items, (list, tuple)):
            raise self.fail(gen.iter, f"a comprehension loops over a list, but '{ast.unparse(gen.iter)}' is {describe(items)}")
        out: list[Any] = []
        outer = self.env
        try:
            for item in items:
                self.step(gen.iter)
                self.env = {**outer, gen.target.id: item}  # type: ignore[union-attr]
                if all(self.truth(cond, self.eval(cond)) for cond in gen.ifs):
                    out.extend(self.comprehension(node, level + 1))
                    if len(out) > self.limits.max_repeat:
                        raise self.fail(node, f"the list would have more than {self.limits.max_repeat:,} items (Limits.max_repeat)")
        finally:
            self.env = outer
        return out

    def step(self, node: ast.AST, count: int = 1) -> None:
        self.steps += count
        if self.steps > MAX_STEPS:
            raise self.fail(node, f"the expression loops more than {MAX_STEPS:,} times")

    def call(self, node: ast.Call) -> Any:
        name = node.func.id  # type: ignore[attr-defined]
        fn = FUNCTIONS[name][0]
        args = [self.eval(a) for a in node.args]
        arg_nodes = list(node.args)
        if name in ("min", "max", "sum") and len(args) == 1:
            if not isinstance(args[0], (list, tuple)) or (not args[0] and name != "sum"):
                raise self.fail(node, f"'{name}' of one argument needs a {'' if name == 'sum' else 'non-empty '}list, "
                                      f"found {describe(args[0])}")
            self.step(node, len(args[0]))
            arg_nodes = [node.args[0]] * len(args[0])
            args = list(args[0])
        elif name == "len":
            if not isinstance(args[0], (list, tuple, str)):
                raise self.fail(node.args[0], f"'len' needs a list or a string, but '{ast.unparse(node.args[0])}' is "
                                              f"{describe(args[0])}")
            return len(args[0])
        for a, arg_node in zip(args, arg_nodes):
            self.number(arg_node, a, f"'{name}'")
        if name == "range":
            if any(not isinstance(a, int) for a in args):
                raise self.fail(node, "'range' needs integers")
            if len(args) == 3 and args[2] == 0:
                raise self.fail(node.args[2], "the step of 'range' cannot be zero")
            count = len(range(*args))
            if count > self.limits.max_repeat:
                raise self.fail(node, f"range of {count:,} items, over the limit of {self.limits.max_repeat:,} (Limits.max_repeat)")
            self.step(node, count)
        if name == "make_divisible":
            if any(not isinstance(a, int) or a < 1 for a in args[1:]):
                raise self.fail(node, "'make_divisible' needs a positive integer divisor (and min_value)")
        try:
            return self.bounded(node, sum(args) if name == "sum" else fn(*args))
        except (ArithmeticError, ValueError) as e:  # int(inf), round(nan), log(0), ...
            raise self.fail(node, f"'{name}' cannot compute this ({e})") from None

    def truth(self, node: ast.AST, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value != 0
        raise self.fail(node, f"a condition must be a boolean or a number, but '{ast.unparse(node)}' is {describe(value)}")


def _plain(value: Any) -> Any:
    """Lists and tuples compare alike (a YAML list equals an expression's ``[...]``)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def evaluate(expr: Expr, env: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS, where: str | None = None) -> Any:
    """Evaluate ``expr`` with the names in ``env``; ``where`` is the node path for errors."""
    return _Evaluator(expr, env, limits, where).eval(expr.tree)


def parse_name_template(name: str, loc: Loc | None = None, limits: Limits = DEFAULT_LIMITS) -> list[str | Expr]:
    """Split a node name such as ``denselayer{i+1}`` into literal text and expressions."""
    parts: list[str | Expr] = []
    pos = 0
    while pos < len(name):
        start = name.find("{", pos)
        close = name.find("}", pos)
        if close != -1 and (start == -1 or close < start):
            raise SpecExpressionError(f"unmatched '}}' in the name '{name}'", _at(loc, close))
        if start == -1:
            parts.append(name[pos:])
            break
        if start > pos:
            parts.append(name[pos:start])
        end = name.find("}", start)
        if end == -1:
            raise SpecExpressionError(f"unclosed '{{' in the name '{name}'", _at(loc, start), expected="'{expression}' such as 'layer{i+1}'")
        parts.append(parse(name[start + 1:end], _at(loc, start + 1), limits))
        pos = end + 1
    return parts
