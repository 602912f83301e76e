"""Shape helpers shared by the op files: rank checks, sliding windows, broadcasting."""

from __future__ import annotations

import math
from typing import Any

from .._values import Bool
from ._registry import Inferred, Shape, ShapeError, fmt_shape, rank_name

__all__ = ["torch_default", "NORM_DEFAULTS", "need_image", "need_rank", "arg", "window", "window_out", "same_shape", "listing", "broadcast", "torch_dim", "InplaceValue"]


def torch_default(fan_in: int, bias: bool) -> dict[str, Any]:
    """PyTorch's default start of a conv or linear layer with ``fan_in`` inputs per output,
    as ``init:`` values: the weight ``kaiming_uniform(a=sqrt(5))`` (uniform within
    ``1/sqrt(fan_in)``), the bias uniform within ``1/sqrt(fan_in)``."""
    out: dict[str, Any] = {"weight": {"fn": "kaiming_uniform", "a": math.sqrt(5)}}
    if bias:
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        out["bias"] = {"fn": "uniform", "a": -bound, "b": bound}
    return out


#: the start of every normalisation layer's tensors, as torch's: scale 1, shift 0, running
#: mean 0 and variance 1, no batches seen
NORM_DEFAULTS: dict[str, Any] = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0,
                                 "num_batches_tracked": 0}


def need_image(shapes: list[Shape], op: str) -> tuple[int, int, int]:
    """The input as ``(C, H, W)``, or a ShapeError naming what it is instead."""
    shape = shapes[0]
    if len(shape) != 3:
        if len(shape) == 1:
            raise ShapeError(
                f"{op} needs an image input (channels x height x width), but its input is flat ({shape[0]} features)",
                expected="a C x H x W input",
                hint="flat features come out of 'flatten' or 'linear'; move this node before them",
            )
        raise ShapeError(f"{op} needs a C x H x W input, but its input is {rank_name(shape)}", expected="a C x H x W input")
    return shape  # type: ignore[return-value]


def need_rank(shapes: list[Shape], op: str, least: int, most: int | None = None) -> Shape:
    """The input, if its rank (per sample) is within ``least..most``."""
    shape = shapes[0]
    if len(shape) < least or (most is not None and len(shape) > most):
        wanted = f"{least}" if least == most else (f"at least {least}" if most is None else f"{least} to {most}")
        raise ShapeError(f"{op} needs an input of {wanted} dimensions per sample, but its input is {rank_name(shape)}",
                         expected=f"an input of {wanted} dimensions (the batch not counted)")
    return shape


def torch_dim(dim: int, rank: int, op: str, param: str = "dim") -> int:
    """A dimension counted as torch counts it (the batch is 0; negative from the end) as an
    index into the per-sample shape of rank ``rank``; the batch itself is refused."""
    full = rank + 1
    d = dim + full if dim < 0 else dim
    if not 0 <= d < full:
        expected = "dimension 1 (or -1)" if rank == 1 else f"a dimension from 1 to {rank} (or -{rank} to -1)"
        raise ShapeError(f"{op}: dimension {dim} does not exist in a {full}-dimensional batch ({rank} per sample)",
                         param=param, expected=expected)
    if d == 0:
        raise ShapeError(f"{op} cannot act on dimension {dim}, the batch", param=param,
                         expected=f"a dimension from 1 to {rank} (the batch is 0)")
    return d - 1


def arg(v: Any) -> Any:
    """A size as torch's constructors print best: ``3`` for ``(3, 3)``."""
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return v[0]
    return v


def window_out(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    span = dilation * (kernel - 1) + 1
    num = size + 2 * pad - span
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def window(op: str, h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
           dilation: tuple[int, int], ceil_mode: bool) -> tuple[int, int]:
    """The output height and width of a sliding window, as torch computes them."""
    outs = []
    for axis, size, k, s, p, d in (("height", h, kernel[0], stride[0], pad[0], dilation[0]),
                                   ("width", w, kernel[1], stride[1], pad[1], dilation[1])):
        span = d * (k - 1) + 1
        out = window_out(size, k, s, p, d, ceil_mode)  # torch's formula (ceil_mode may fit a partial window)
        if out < 1 and size + 2 * p < span:
            raise ShapeError(
                f"the {op} kernel spans {span} {'rows' if axis == 'height' else 'columns'} "
                f"but the padded input {axis} is only {size + 2 * p} ({size} + 2 x padding {p})",
                param="kernel",
                expected=f"a kernel of at most {size + 2 * p} in {axis}, or a larger input",
            )
        if out < 1:
            raise ShapeError(f"the {op} output {axis} would be {out}", param="stride", expected="an output size of at least 1")
        outs.append(out)
    return outs[0], outs[1]


def same_shape(p: Any, shapes: list[Shape], names: list[str]) -> Inferred:
    return Inferred(shapes[0])


def listing(shapes: list[Shape], names: list[str]) -> str:
    return ", ".join(f"{n} is {fmt_shape(s)}" for n, s in zip(names, shapes))


def broadcast(shapes: list[Shape]) -> Shape | None:
    """The numpy broadcast of ``shapes`` (aligned from the last dimension), or ``None``."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(1, rank + 1):
        sizes = {s[-i] for s in shapes if len(s) >= i} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(reversed(out))


class InplaceValue(Bool):
    """``inplace``: true, false or 'auto' (in place only where nothing else reads the input)."""

    expected = "true, false or 'auto'"
    json = {"anyOf": [{"type": "boolean"}, {"enum": ["auto"]}]}

    def check(self, value: Any) -> Any:
        if value == "auto":
            return value
        return super().check(value)
