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

from .._values import Float, Int
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
            spatial = axis == 0 and len(first) == 3
            what = "spatial sizes" if spatial else "shapes outside dim " + str(p.dim)
            raise ShapeError(
                f"cannot concatenate inputs with different {what}: " + listing(shapes, names),
                inputs=[0, i],
                hint=_resolution_hint(shapes, names, i) if spatial else
                "every input must agree in all dimensions but the concatenated one; check strides, padding and ceil_mode",
            )
    total = sum(s[axis] for s in shapes)
    return Inferred(first[:axis] + (total,) + first[axis + 1:])


def _as_written(name: str) -> str:
    """An input's name, as the messages give it ('enc', the input), as a spec names it in ``like:``."""
    return "input" if name == "the input" else name.strip("'")


def _resolution_hint(shapes: list[Shape], names: list[str], i: int) -> str:
    """How to join images of two sizes (a skip at another resolution, a U-Net's): pad the
    smaller to the other's size, or resize it, naming the other node as ``like:`` does."""
    (a, sa), (b, sb) = (names[0], shapes[0]), (names[i], shapes[i])
    if sb[1] <= sa[1] and sb[2] <= sa[2]:
        (a, sa), (b, sb) = (b, sb), (a, sa)  # a: the smaller
    like = _as_written(b)
    which = f"the smaller ({a}, {fmt_shape(sa)})" if sa[1] <= sb[1] and sa[2] <= sb[2] else f"{a} ({fmt_shape(sa)})"
    return (f"to join a skip at another resolution, pad {which} to the size of {b} (`{{op: pad, like: {like}}}`) "
            f"or resize it (`{{op: interpolate, like: {like}}}`) before the concat; else check strides, padding and "
            "ceil_mode")


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
    """Element-wise sum of the inputs (a residual connection), broadcasting as numpy does,
    times ``scale``, plus ``constant``: ``(a + b) * scale + constant``, so ``{op: add, from:
    [a, b], scale: 0.5}`` averages two heads. With a ``constant`` or a ``scale`` written, one
    input is enough (``{op: add, constant: 1}``); without, it takes two or more."""

    scale: Annotated[Any, Float()] = 1.0
    constant: Annotated[Any, Float()] = 0.0


def _add_shape(p: AddParams, shapes: list[Shape], names: list[str]) -> Inferred:
    out = broadcast(shapes)
    if out is None:
        i = _first_clash(shapes)
        a, b = shapes[0], shapes[i]
        hint = "a residual sum needs equal shapes; project the shortcut with a 1x1 conv (and stride) to match"
        if len(a) == len(b) == 3 and a[0] == b[0] and a[1:] != b[1:]:  # the same channels at two resolutions
            small, big = (i, 0) if a[1] * a[2] > b[1] * b[2] else (0, i)
            target = _as_written(names[big])
            hint = (f"to add maps of two resolutions (a segmentation head's fusion), resize the smaller ({names[small]}) "
                    f"to the other's size first ({{op: interpolate, like: {target}}}); a residual sum needs a strided "
                    "1x1 projection of the shortcut instead")
        raise ShapeError("cannot add inputs of different shapes: " + listing(shapes, names), inputs=[0, i], hint=hint)
    return Inferred(out)


def _steps(graph, first, steps: list[tuple[str, Any, bool]], name: str):
    """``first`` combined with each ``(method, operand, in_place)`` in turn (``add``, ``mul``:
    ``first.add_(operand)`` in place, else ``first + operand``); the last node is ``name``."""
    result = first
    for i, (method, other, in_place) in enumerate(steps):
        last = name if i == len(steps) - 1 else None
        if in_place:
            result = graph.create_node("call_method", method + "_", (result, other), name=last)
        else:
            fn = operator.add if method == "add" else operator.mul
            result = graph.create_node("call_function", fn, (result, other), name=last)
    return result


def _constants(constants: list[tuple[str, float, float]], steps: list[tuple[str, Any, bool]],
               own: bool) -> list[tuple[str, Any, bool]]:
    """``steps`` followed by each ``(method, number, neutral)`` whose number is not its
    neutral one (no multiply by 1, no add of 0), in place once the running result is the
    op's own tensor (after a first step) or its first input may be overwritten (``own``):
    a number broadcasts to the tensor's own shape."""
    for method, value, neutral in constants:
        if value != neutral:
            steps = [*steps, (method, value, own or bool(steps))]
    return steps


def _result(graph, first, steps: list[tuple[str, Any, bool]], name: str):
    """The node of ``first`` and ``steps``; with no step (one input, its numbers neutral:
    an add whose other branch is switched off) the input itself, which is what the
    in-place plan takes such a join for (``OpDef.returns_input``)."""
    return _steps(graph, first, steps, name) if steps else first


def _add_emit(graph, p: AddParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    steps, so_far = [], shapes[0]
    for i, (other, shape) in enumerate(zip(args[1:], shapes[1:])):
        total = broadcast([so_far, shape])
        # in place: into the first input where the plan allows it; after the first sum the
        # running total is our own tensor (if it already has the sum's shape)
        steps.append(("add", other, (inplace or i > 0) and total == so_far))
        so_far = total
    steps = _constants([("mul", p.scale, 1.0), ("add", p.constant, 0.0)], steps, inplace)
    return _result(graph, args[0], steps, name)


def _plain_sum(p: AddParams) -> bool:
    """A sum without a scale or a constant: what a convolution may add itself (optimize)."""
    return p.scale == 1 and p.constant == 0


register(OpDef("add", AddParams, _add_shape, AddParams.__doc__ or "", emit=_add_emit, arity=(2, None), inplace=True,
               category="join", broadcast=True, residual_sum=_plain_sum, one_input_with=("constant", "scale"),
               joins=("add",), glyph="+"))


class MulParams(OpParams):
    """Element-wise product of the inputs, broadcasting as numpy does: a ``C x 1 x 1`` gate
    times a ``C x H x W`` image (squeeze-and-excitation), a learnable ``C x 1 x 1`` scale
    times a branch (layer scale); times ``constant``. With a ``constant`` written, one input
    is enough: ``{op: mul, constant: 0.5}`` halves it."""

    constant: Annotated[Any, Float()] = 1.0


def _mul_shape(p: MulParams, shapes: list[Shape], names: list[str]) -> Inferred:
    out = broadcast(shapes)
    if out is None:
        raise ShapeError("cannot multiply inputs whose shapes do not broadcast: " + listing(shapes, names),
                         inputs=[0, _first_clash(shapes)],
                         hint="shapes are aligned from the last dimension, and each pair of sizes must be equal or 1 "
                              "(a gate over a C x H x W image is C x 1 x 1)")
    return Inferred(out)


def _mul_emit(graph, p: MulParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    steps = _constants([("mul", p.constant, 1.0)], [("mul", other, False) for other in args[1:]], False)
    return _result(graph, args[0], steps, name)


register(OpDef("mul", MulParams, _mul_shape, MulParams.__doc__ or "", emit=_mul_emit, arity=(2, None), category="join",
               broadcast=True, one_input_with=("constant",)))
