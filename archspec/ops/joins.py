"""Ops that join several inputs: ``concat`` (on channels), ``add`` and ``mul``.

They own no parameters and no module: *lower* writes them into the generated forward as
``torch.cat([...], 1)``, ``a + b`` (``a.add_(b)`` where overwriting ``a`` is safe) and
``a * b``. Containers (``concat:``, ``add:``, ``dense:``) use them for their implicit
joins, and a spec can use them directly with ``from: [a, b]``.

``add`` and ``mul`` broadcast as numpy does, checked statically: shapes are aligned from
the last dimension, and each pair of sizes must be equal or one of them 1, so a ``C x 1 x
1`` gate scales a ``C x H x W`` image (squeeze-and-excitation). They also accept learnable
tensors (``param`` nodes), which have no batch dimension; ``concat`` expands them over
the batch. Each of them, switched off by ``when``, passes its first input through (what
``OpDef.passes_first_when_off`` gives a join by default).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from .._values import Int
from ._common import broadcast, listing
from ._registry import LEARNED, Inferred, OpDef, OpParams, Shape, ShapeError, fmt_shape, register


class ConcatParams(OpParams):
    """Concatenate the inputs along ``dim`` (1: channels, counted with the batch as 0). A
    learnable tensor (``param``) among them is expanded over the batch first, so ViT
    prepends its class token with ``{op: concat, from: [class_token, tokens], dim: 1}``."""

    dim: Annotated[Any, Int(ge=1)] = 1


def _concat_shape(p: ConcatParams, shapes: list[Shape], names: list[str]) -> Inferred:
    axis = p.dim - 1
    first = shapes[0]
    if any(len(s) != len(first) for s in shapes):
        raise ShapeError("cannot concatenate inputs of different ranks: " + listing(shapes, names))
    if axis >= len(first):
        raise ShapeError(f"dim {p.dim} does not exist in inputs of shape {fmt_shape(first)}", param="dim")
    for i, s in enumerate(shapes[1:], 1):
        if s[:axis] + s[axis + 1:] != first[:axis] + first[axis + 1:]:
            what = "spatial sizes" if axis == 0 and len(first) == 3 else "shapes outside dim " + str(p.dim)
            raise ShapeError(
                f"cannot concatenate inputs with different {what}: " + listing(shapes, names),
                inputs=[0, i],
                hint="every input must agree in all dimensions but the concatenated one; check strides, padding and ceil_mode",
            )
    total = sum(s[axis] for s in shapes)
    return Inferred(first[:axis] + (total,) + first[axis + 1:])


def _concat_emit(graph, p: ConcatParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    import torch

    if len(args) == 1:
        return args[0]
    # a param node's value (held here, or returned by a container): no batch dimension of its
    # own; codegen marks it, knowing which sources are param nodes
    learned = [bool(a.meta.get(LEARNED)) for a in args]
    if any(learned):
        batch = graph.create_node("call_method", "size", (args[learned.index(False)], 0), name=name + "_batch")
        args = [graph.create_node("call_method", "expand", (a, batch, *shape)) if own else a
                for a, own, shape in zip(args, learned, shapes)]
    return graph.create_node("call_function", torch.cat, (list(args), p.dim), name=name)


register(OpDef("concat", ConcatParams, _concat_shape, ConcatParams.__doc__ or "", emit=_concat_emit, arity=(1, None),
               category="join", expands=True, emit_shapeless=True, joins=("concat", "dense"), join_params=(("dim", 1),)))


def _first_clash(shapes: list[Shape]) -> int:
    for i in range(1, len(shapes)):
        if broadcast([shapes[0], shapes[i]]) is None:
            return i
    return 1


class AddParams(OpParams):
    """Element-wise sum of the inputs (a residual connection), broadcasting as numpy does."""


def _add_shape(p: AddParams, shapes: list[Shape], names: list[str]) -> Inferred:
    out = broadcast(shapes)
    if out is None:
        raise ShapeError("cannot add inputs of different shapes: " + listing(shapes, names), inputs=[0, _first_clash(shapes)],
                         hint="a residual sum needs equal shapes; project the shortcut with a 1x1 conv (and stride) to match")
    return Inferred(out)


def _add_emit(graph, p: AddParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    result, so_far = args[0], shapes[0]
    for i, (other, shape) in enumerate(zip(args[1:], shapes[1:])):
        last = i == len(args) - 2
        total = broadcast([so_far, shape])
        # in place: into the first input where the plan allows it; after the first sum the
        # running total is our own tensor (if it already has the sum's shape)
        if (inplace or i > 0) and total == so_far:
            result = graph.create_node("call_method", "add_", (result, other), name=name if last else None)
        else:
            result = graph.create_node("call_function", operator.add, (result, other), name=name if last else None)
        so_far = total
    return result


register(OpDef("add", AddParams, _add_shape, AddParams.__doc__ or "", emit=_add_emit, arity=(2, None), inplace=True,
               category="join", broadcast=True, residual_sum=True, joins=("add",), glyph="+"))


class MulParams(OpParams):
    """Element-wise product of the inputs, broadcasting as numpy does: a ``C x 1 x 1`` gate
    times a ``C x H x W`` image (squeeze-and-excitation), a learnable ``C x 1 x 1`` scale
    times a branch (layer scale)."""


def _mul_shape(p: MulParams, shapes: list[Shape], names: list[str]) -> Inferred:
    out = broadcast(shapes)
    if out is None:
        raise ShapeError("cannot multiply inputs whose shapes do not broadcast: " + listing(shapes, names),
                         inputs=[0, _first_clash(shapes)],
                         hint="shapes are aligned from the last dimension, and each pair of sizes must be equal or 1 "
                              "(a gate over a C x H x W image is C x 1 x 1)")
    return Inferred(out)


def _mul_emit(graph, p: MulParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    result = args[0]
    for i, other in enumerate(args[1:]):
        result = graph.create_node("call_function", operator.mul, (result, other), name=name if i == len(args) - 2 else None)
    return result


register(OpDef("mul", MulParams, _mul_shape, MulParams.__doc__ or "", emit=_mul_emit, arity=(2, None), category="join",
               broadcast=True))
