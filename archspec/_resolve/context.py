"""What every part of resolve reads and none changes, and the evaluation of spec values.

What it does: holds the document, the validated spec, its parameters (overrides applied),
the limits and the names set by an override, in one frozen :class:`Context`; finds the
source position of a data path; evaluates a spec value (literals pass, ``$$`` unescapes,
expressions are evaluated, or left :class:`Deferred` when they need the input shape),
adding a note for each spec parameter whose value was set elsewhere; evaluates the
spec's ``input``.

What it deliberately does not do: build nodes or keep any state of the walk (that is
:mod:`.state`), or check what an evaluated value should be (its caller knows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import Loc, SpecError, SpecExpressionError, SpecSchemaError
from .._expr import SHAPE_NAMES, Expr, evaluate, is_expression, parse_value
from .._ir import Deferred, Lazy
from .._limits import Limits
from .._load import Document
from .._values import shown


@dataclass(frozen=True)
class Context:
    """The spec being resolved: its document, its model, its parameters and the limits."""

    doc: Document
    spec: Any
    params: dict[str, Any]
    limits: Limits
    overridden: frozenset[str] = frozenset()  # parameters set by --set or keyword arguments

    def loc(self, raw: tuple) -> Loc | None:
        return self.doc.locs.value(raw)

    def key_loc(self, raw: tuple) -> Loc | None:
        return self.doc.locs.key(raw)

    def raw(self, raw: tuple) -> Any:
        """The document's data at the path ``raw``; ``None`` where there is none."""
        value: Any = self.doc.data
        for p in raw:
            try:
                value = value[p]
            except (KeyError, IndexError, TypeError):
                return None
        return value

    def raw_keys(self, raw: tuple) -> set:
        value = self.raw(raw)
        return set(value) if isinstance(value, dict) else set()

    def value(self, value: Any, env: Mapping[str, Any], raw: tuple, where: str, structural: bool = False) -> Any:
        """Evaluate a spec value: literals pass, expressions are evaluated or deferred."""
        if isinstance(value, list):
            items = [self.value(v, env, raw + (i,), where, structural) for i, v in enumerate(value)]
            return items
        if isinstance(value, dict):  # an initialiser {fn: normal, std: $std}
            return {k: self.value(v, env, raw + (k,), where, structural) for k, v in value.items()}
        if isinstance(value, str) and value.startswith("$$"):
            return value[1:]
        if not is_expression(value):
            return value
        try:
            expr = parse_value(value, self.loc(raw), self.limits)
        except SpecExpressionError as e:
            raise e.at_node(where) from None
        lazy = {n for n in expr.names if isinstance(env.get(n), Lazy)}
        if expr.names & SHAPE_NAMES - set(env) or lazy:
            if structural:
                through = f" (through the block parameter '{sorted(lazy)[0]}')" if lazy else ""
                raise SpecExpressionError(
                    f"'{expr.text}' uses the input shape{through}, but this value decides the graph's structure",
                    expr.loc, node=where,
                    hint="'repeat', names, 'op', 'use', 'from' and 'when' in a list are fixed before shapes are known: "
                         "give them a parameter instead (a 'when' that needs the shape can stand in a mapping body)",
                )
            return Deferred(expr, env)
        try:
            return evaluate(expr, env, self.limits, where)
        except SpecError as e:
            raise self.with_param_notes(e, expr, env) from None

    def with_param_notes(self, error: SpecError, expr: Expr, env: Mapping[str, Any]) -> SpecError:
        """``error`` with a note for each spec parameter in ``expr`` whose value was set
        elsewhere (a variant file, ``--set``, a keyword argument): the value that broke
        an expression is often not written where the expression is."""
        for name in sorted(expr.names):
            if name not in self.params or env.get(name) is not self.params[name]:
                continue  # not a spec parameter here (a block parameter, the repeat index)
            value = shown(self.params[name])
            if name in self.overridden:
                error.notes.append((None, f"'{name}' is {value}, set by an override (--set or a keyword argument)"))
                continue
            loc = self.loc(("params", name))
            if loc is not None and error.loc is not None and loc.file != error.loc.file:
                error.notes.append((loc, f"'{name}' is {value}, set here"))
        return error


def spec_input(ctx: Context) -> tuple[int, ...]:
    """The spec's ``input``, its expressions evaluated with the spec's parameters
    (``[3, $image_size, $image_size]``)."""
    shape = []
    for i, item in enumerate(ctx.spec.input):
        value = ctx.value(item, ctx.params, ("input", i), "input", structural=True)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= ctx.limits.max_int:
            raise SpecSchemaError(f"the input's dimension {i} is {shown(value)}, from '{item}'", ctx.loc(("input", i)),
                                  node="input", expected=f"a positive integer up to {ctx.limits.max_int:.0e}")
        shape.append(value)
    return tuple(shape)
