"""The expression evaluator: a checked syntax tree and the names in scope to a value.

What it does: :func:`evaluate` walks the tree that :mod:`.parse` accepted, node by node
(never by ``eval``), checking types as it goes (numbers for arithmetic, integers for
indices and slice bounds, booleans or numbers for conditions), and bounds every result:
integers by ``Limits.max_int``, floats finite, lists by ``Limits.max_repeat`` items, loops
by :data:`MAX_STEPS` iterations; every failure is a :class:`SpecExpressionError` at the
failing part.

What it deliberately does not do: parse, or decide which names are in scope (the
*resolve* and *infer* stages pass them in).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from typing import Any

from .._errors import SpecExpressionError, did_you_mean
from .._limits import DEFAULT_LIMITS, Limits
from .language import BINOPS, CMPOPS, FUNCTIONS, MAX_STEPS, SHAPE_NAMES, WORDS, Expr, describe, node_loc

__all__ = ["evaluate"]


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
            node_loc(node, self.expr.loc, self.lead),
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
            if node.id in WORDS:  # YAML's spelling, as the values around the expression are written
                return WORDS[node.id]
            if node.id in self.env:
                return self.env[node.id]
            known = sorted(self.env)
            if node.id in SHAPE_NAMES:
                raise self.fail(node, f"'{node.id}' (the input shape) is not known here",
                                hint="the input shape is only known for a node's own values, not for 'when', 'repeat' or names")
            raise self.fail(node, f"unknown name '{node.id}'", hint=did_you_mean(node.id, known),
                            expected="one of: " + (", ".join(known) if known else "(no names are defined here)"))
        if isinstance(node, ast.BinOp):
            symbol, fn = BINOPS[type(node.op)]
            left, right = self.eval(node.left), self.eval(node.right)
            if symbol == "+" and isinstance(left, str) and isinstance(right, str):  # a name made of parts: 'down' + str(i)
                if len(left) + len(right) > 1024:
                    raise self.fail(node, "the string would be longer than 1,024 characters")
                return left + right
            left = self.number(node.left, left, f"'{symbol}'")
            right = self.number(node.right, right, f"'{symbol}'")
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
                if not CMPOPS[type(op)](_plain(left), _plain(right)):
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
        elif name == "str":  # for node names ('down' + str(i)): integers and strings only (a float's digits are no name)
            if isinstance(args[0], bool) or not isinstance(args[0], (int, str)):
                raise self.fail(node.args[0], f"'str' needs an integer or a string, but '{ast.unparse(node.args[0])}' is "
                                              f"{describe(args[0])}")
            return str(args[0])
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
