"""Init rules: the spec's ``init`` section, its numbers evaluated and checked.

What it does: evaluates each rule's weight and bias initialisers (a number, or a
function with its arguments) with the spec's parameters, refusing values that need the
input shape, that are not finite, that a float32 weight cannot hold, and ranges whose
``a`` is not below ``b``.

What it deliberately does not do: match rules to nodes, or check the function's
arguments against the function (the schema and infer do).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from .._errors import SpecExpressionError, SpecSchemaError
from .._ir import Deferred, InitRule
from .._values import shown
from .context import Context

FLOAT32_MAX = 3.4028234663852886e38


def init_number(ctx: Context, value: Any, env: dict[str, Any], raw: tuple, where: str) -> float:
    """A number of an init rule, evaluated and checked."""
    v = ctx.value(value, env, raw, where)
    if isinstance(v, Deferred):
        raise SpecExpressionError(f"'{v.expr.text}' uses the input shape, which an init rule cannot see",
                                  v.expr.loc, node=where, hint="init rules apply to many nodes; use the spec's params")
    if not _init_number_check(v):
        raise SpecSchemaError(f"found {shown(v)}", ctx.loc(raw), node=where, expected="a finite number")
    if abs(v) > FLOAT32_MAX:  # the weights are float32: this would make them inf
        raise SpecSchemaError(f"found {shown(v)}", ctx.loc(raw), node=where,
                              expected=f"a number a float32 weight can hold (at most {FLOAT32_MAX:.4g} in size)")
    return float(v)


def init_rules(ctx: Context, env: dict[str, Any]) -> list[InitRule]:
    """The spec's ``init`` rules, evaluated with ``env`` (the spec's parameters)."""
    rules = []
    for i, rule in enumerate(ctx.spec.init):
        raw = ("init", i)
        tensors: dict[str, Any] = {}
        where = f"init rule {i + 1}"
        for tensor in ("weight", "bias"):
            value = getattr(rule, tensor)
            if value is None:
                continue
            if isinstance(value, BaseModel):
                args = {}
                for k, v in value.model_dump(exclude_none=True).items():
                    args[k] = v if k in ("fn", "mode", "nonlinearity") else init_number(ctx, v, env, raw + (tensor, k), where)
                lo, hi = args.get("a"), args.get("b")
                if args["fn"] in ("uniform", "trunc_normal") and lo is not None and hi is not None and lo >= hi:
                    raise SpecSchemaError(f"'{args['fn']}' needs a < b, found a={lo} and b={hi}", ctx.loc(raw + (tensor,)),
                                          node=where)
                tensors[tensor] = args
            else:
                tensors[tensor] = init_number(ctx, value, env, raw + (tensor,), where)
        rules.append(InitRule(rule.ops, rule.paths, tensors, ctx.loc(raw), i))
    return rules


def _init_number_check(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
