"""Deferred values: the expressions *resolve* left for want of a shape, evaluated now.

What it does: evaluates a :class:`Deferred` value (one using ``in_c``, ``in_h``, ``in_w``)
against the shape of the node's input, and a :class:`Lazy` block argument against the
shape of its instance's input (each once); decides a deferred `when`, which must come
out true or false. A shape name that the input cannot give (``in_h`` of flat features,
anything of a node that reads no input) is a :class:`SpecExpressionError`.

What it deliberately does not do: validate an op's parameters (the walk does, with the
values this gives).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import Loc, SpecExpressionError, SpecSchemaError
from .._expr import SHAPE_NAMES, evaluate
from .._ir import Deferred, Lazy
from .._values import shown
from ..ops import fmt_shape
from .refs import live
from .state import State

__all__ = ["realize", "decide"]


def shape_env(shape: tuple[int, ...] | None) -> dict[str, int]:
    if not shape:
        return {}
    env = {"in_c": shape[0]}
    if len(shape) == 3:
        env.update(in_h=shape[1], in_w=shape[2])
    return env


def realize(state: State, value: Any, shape: tuple[int, ...] | None, where: str) -> Any:
    if isinstance(value, list):
        return [realize(state, v, shape, where) for v in value]
    if not isinstance(value, Deferred):
        return value
    env = _env_with_lazies(state, value.env, value.expr.names)
    env.update(shape_env(shape))
    missing = (value.expr.names & SHAPE_NAMES) - set(env)
    if missing and shape is None:
        name = sorted(missing)[0]
        raise SpecExpressionError(f"'{name}' is not known here: this node reads no input (a param), in "
                                  f"'{value.expr.text.strip()}'", value.expr.loc, node=where,
                                  hint="give the size as a block parameter (a block's parameter may use in_c: "
                                       "channels: \"${in_c}\")")
    if missing:
        name = sorted(missing)[0]
        raise SpecExpressionError(
            f"'{name}' is not defined for this node's input, which is {fmt_shape(shape)} "
            f"in '{value.expr.text.strip()}'", value.expr.loc, node=where,
            expected="in_h and in_w only for C x H x W inputs",
        )
    return evaluate(value.expr, env, state.limits, where)


def _env_with_lazies(state: State, env: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    out = dict(env)
    for n in names:
        v = out.get(n)
        if isinstance(v, Lazy):
            out[n] = _lazy(state, v)
    return out


def _lazy(state: State, lazy: Lazy) -> Any:
    key = id(lazy)
    if key not in state.lazy_values:
        shape = state.shape_of(live(state, lazy.ref))
        env = _env_with_lazies(state, lazy.env, lazy.expr.names)
        env.update(shape_env(shape))
        state.lazy_values[key] = evaluate(lazy.expr, env, state.limits, lazy.where)
    return state.lazy_values[key]


def decide(state: State, when: bool | Deferred, shape: tuple[int, ...] | None, where: str, loc: Loc | None) -> bool:
    if not isinstance(when, Deferred):
        return bool(when)
    value = realize(state, when, shape, where)
    if isinstance(value, bool):
        return value
    raise SpecSchemaError(f"'when' is {shown(value)}, from '{when.expr.text.strip()}'", when.expr.loc, node=where,
                          expected="true or false",
                          hint="compare it: when: \"${in_c > 1}\"" if isinstance(value, (int, float)) else None)
