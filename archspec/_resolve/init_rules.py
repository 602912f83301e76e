"""Init rules: the spec's ``init`` section, its numbers evaluated and checked.

What it does: evaluates each rule's weight and bias initialisers (a number, or a
function with its arguments) with the spec's parameters, refusing values that need the
input shape, that are not finite, that a float32 weight cannot hold, and arguments that do
not fit together once evaluated (``a`` not below ``b``: the schema's own rule,
:func:`archspec._init_fns.init_args_error`, which waited for the values).

What it deliberately does not do: match rules to nodes, or check an initialiser against
the tensors it fills (fans, the reach of its values: infer does, once shapes are known).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from .._errors import SpecExpressionError, SpecSchemaError
from .._ir import Deferred, InitRule
from .._init_fns import FLOAT32_MAX, NUMBER_INIT_ARGS, fits_float32, init_args_error
from .._values import shown
from .context import Context


def init_number(ctx: Context, value: Any, env: dict[str, Any], raw: tuple, where: str) -> float:
    """A number of an init rule, evaluated and checked."""
    v = ctx.value(value, env, raw, where)
    if isinstance(v, Deferred):
        raise SpecExpressionError(f"'{v.expr.text}' uses the input shape, which an init rule cannot see",
                                  v.expr.loc, node=where, hint="init rules apply to many nodes; use the spec's params")
    if not _init_number_check(v):
        raise SpecSchemaError(f"found {shown(v)}", ctx.loc(raw), node=where, expected="a finite number")
    if not fits_float32(v):  # the weights are float32: this would make them inf
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
                args = {k: init_number(ctx, v, env, raw + (tensor, k), where) if k in NUMBER_INIT_ARGS else v
                        for k, v in value.model_dump(exclude_none=True).items()}
                error = init_args_error(args["fn"], {k: v for k, v in args.items() if k != "fn"})
                if error is not None:
                    raise SpecSchemaError(error.message(), ctx.loc(raw + (tensor,)), node=where)
                tensors[tensor] = args
            else:
                tensors[tensor] = init_number(ctx, value, env, raw + (tensor,), where)
        rules.append(InitRule(rule.ops, rule.paths, tensors, ctx.loc(raw), i, within=rule.within))
    return rules


def _init_number_check(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
