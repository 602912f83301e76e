"""Built-in ops that join several inputs: ``concat`` (on channels) and ``add``.

They own no parameters and no module: *lower* writes them into the generated forward as
``torch.cat([...], 1)`` and ``a + b`` (``a.add_(b)`` where overwriting ``a`` is safe).
Containers (``concat:``, ``add:``, ``dense:``) use them for their implicit joins, and a
spec can use them directly with ``from: [a, b]``.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from .._values import Int
from ._registry import Inferred, OpDef, OpParams, Shape, ShapeError, fmt_shape, register


class ConcatParams(OpParams):
    """Concatenate the inputs along ``dim`` (1: channels, counted with the batch as 0)."""

    dim: Annotated[Any, Int(ge=1)] = 1


def _concat_shape(p: ConcatParams, shapes: list[Shape], names: list[str]) -> Inferred:
    axis = p.dim - 1
    first = shapes[0]
    if any(len(s) != len(first) for s in shapes):
        raise ShapeError("cannot concatenate inputs of different ranks: " + _listing(shapes, names))
    if axis >= len(first):
        raise ShapeError(f"dim {p.dim} does not exist in inputs of shape {fmt_shape(first)}", param="dim")
    for i, s in enumerate(shapes[1:], 1):
        if s[:axis] + s[axis + 1:] != first[:axis] + first[axis + 1:]:
            what = "spatial sizes" if axis == 0 and len(first) == 3 else "shapes outside dim " + str(p.dim)
            raise ShapeError(
                f"cannot concatenate inputs with different {what}: " + _listing(shapes, names),
                inputs=[0, i],
                hint="every input must agree in all dimensions but the concatenated one; check strides, padding and ceil_mode",
            )
    total = sum(s[axis] for s in shapes)
    return Inferred(first[:axis] + (total,) + first[axis + 1:])


def _listing(shapes: list[Shape], names: list[str]) -> str:
    return ", ".join(f"{n} is {fmt_shape(s)}" for n, s in zip(names, shapes))


def _concat_emit(graph, p: ConcatParams, args: list, name: str, inplace: bool):
    import torch

    if len(args) == 1:
        return args[0]
    return graph.create_node("call_function", torch.cat, (list(args), p.dim), name=name)


register(OpDef("concat", ConcatParams, _concat_shape, ConcatParams.__doc__ or "", emit=_concat_emit, arity=(1, None), category="join"))


class AddParams(OpParams):
    """Element-wise sum of the inputs (a residual connection); shapes must be equal."""


def _add_shape(p: AddParams, shapes: list[Shape], names: list[str]) -> Inferred:
    for i, s in enumerate(shapes[1:], 1):
        if s != shapes[0]:
            raise ShapeError("cannot add inputs of different shapes: " + _listing(shapes, names), inputs=[0, i],
                             hint="a residual sum needs equal shapes; project the shortcut with a 1x1 conv (and stride) to match")
    return Inferred(shapes[0])


def _add_emit(graph, p: AddParams, args: list, name: str, inplace: bool):
    result = args[0]
    for i, other in enumerate(args[1:]):
        last = i == len(args) - 2
        if inplace or i > 0:  # after the first sum the running total is our own tensor
            result = graph.create_node("call_method", "add_", (result, other), name=name if last else None)
        else:
            result = graph.create_node("call_function", operator.add, (result, other), name=name if last else None)
    return result


register(OpDef("add", AddParams, _add_shape, AddParams.__doc__ or "", emit=_add_emit, arity=(2, None), inplace=True, category="join"))
