"""Attention over token sequences: ``attention`` (multi-head self-attention, ViT's).

Tokens are ``N x D`` per sample (``N`` tokens of ``D`` features); an image becomes tokens
by a ``reshape`` and a ``permute`` (``C x H x W`` -> ``C x HW`` -> ``HW x C``), as ViT's
patch embedding does. The MACs are counted as torchvision counts them for its published
figures: the projections and attention's two products (queries times keys, weights times
values).
"""

from __future__ import annotations

from typing import Annotated, Any

from .._values import Bool, Float, Int
from ._common import torch_default
from ._registry import Inferred, OpDef, OpParams, Shape, ShapeError, fmt_shape, rank_name, register


class AttentionParams(OpParams):
    """Multi-head self-attention over the tokens of each sample (``N x D`` in and out), as
    ``torch.nn.MultiheadAttention(D, heads, batch_first=True)`` called with the same
    tensor as queries, keys and values: same keys (``in_proj_weight``, ``in_proj_bias``,
    ``out_proj.weight``, ``out_proj.bias``), same default initialisation. ``heads`` must
    divide ``D``; ``dropout`` drops attention weights in training."""

    heads: Annotated[Any, Int(ge=1)]
    dropout: Annotated[Any, Float(ge=0, le=1)] = 0.0
    bias: Annotated[Any, Bool()] = True


def _tokens(shapes: list[Shape], op: str) -> tuple[int, int]:
    shape = shapes[0]
    if len(shape) != 2:
        hint = None
        if len(shape) == 3:
            hint = ("an image becomes tokens by {op: reshape, shape: [C, -1]} then {op: permute, dims: [0, 2, 1]} "
                    "(a channels-last H x W x C one by {op: reshape, shape: [-1, C]})")
        elif len(shape) == 1:
            hint = "flat features are one vector per sample: reshape them into tokens ({op: reshape, shape: [N, D]})"
        raise ShapeError(f"{op} needs tokens (N x D), but its input is {rank_name(shape)}", expected="tokens (N x D)",
                         hint=hint)
    return shape  # type: ignore[return-value]


def _attention_shape(p: AttentionParams, shapes: list[Shape], names: list[str]) -> Inferred:
    n, d = _tokens(shapes, "attention")
    if d % p.heads:
        below = max(h for h in range(1, p.heads) if d % h == 0) if p.heads > 1 else 1
        above = next((h for h in range(p.heads + 1, d + 1) if d % h == 0), d)
        raise ShapeError(f"{p.heads} heads do not divide the width {d} of the tokens ({fmt_shape(shapes[0])})",
                         param="heads", expected=f"a divisor of {d}, such as {below} or {above}")
    params: dict[str, Shape] = {"in_proj_weight": (3 * d, d)}
    if p.bias:
        params["in_proj_bias"] = (3 * d,)
    params["out_proj.weight"] = (d, d)
    if p.bias:
        params["out_proj.bias"] = (d,)
    # projections (queries, keys, values in; one out) and the two products over N x N
    macs = 4 * n * d * d + 2 * n * n * d
    return Inferred((n, d), params=params, macs=macs)


def _attention_build(p: AttentionParams, shapes: list[Shape], inplace: bool):
    from ..layers import SelfAttention

    return SelfAttention(shapes[0][-1], p.heads, dropout=p.dropout, bias=p.bias)


def _attention_defaults(p: AttentionParams, shapes: list[Shape]) -> dict[str, Any]:
    # torch's MultiheadAttention: in_proj xavier_uniform, out_proj a Linear's default
    # weight, both biases 0
    d = shapes[0][-1]
    return {"in_proj_weight": {"fn": "xavier_uniform"}, "in_proj_bias": 0.0,
            "out_proj.weight": torch_default(d, False)["weight"], "out_proj.bias": 0.0}


register(OpDef("attention", AttentionParams, _attention_shape, AttentionParams.__doc__ or "", build=_attention_build,
               layout="any", defaults=_attention_defaults))
