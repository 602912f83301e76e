"""Built-in ops that live in the module tree: convolution, normalisation, activation,
pooling, dropout, flatten, linear and identity.

Each is a parameter model, a shape rule and a builder; see :mod:`._registry`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from .._values import Bool, Float, Int, Size
from ._registry import Inferred, OpDef, OpParams, Shape, ShapeError, fmt_shape, register

# ---------------------------------------------------------------------------------------
# helpers


def _need_image(shapes: list[Shape], op: str) -> tuple[int, int, int]:
    shape = shapes[0]
    if len(shape) != 3:
        if len(shape) == 1:
            raise ShapeError(
                f"{op} needs an image input (channels x height x width), but its input is flat ({shape[0]} features)",
                expected="a C x H x W input",
                hint="flat features come out of 'flatten' or 'linear'; move this node before them",
            )
        raise ShapeError(f"{op} needs a C x H x W input, found {fmt_shape(shape)}", expected="a C x H x W input")
    return shape  # type: ignore[return-value]


def _arg(v: Any) -> Any:
    """A size as torch's constructors print best: ``3`` for ``(3, 3)``."""
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return v[0]
    return v


def _window_out(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    span = dilation * (kernel - 1) + 1
    num = size + 2 * pad - span
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _window(op: str, h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
            dilation: tuple[int, int], ceil_mode: bool) -> tuple[int, int]:
    outs = []
    for axis, size, k, s, p, d in (("height", h, kernel[0], stride[0], pad[0], dilation[0]),
                                   ("width", w, kernel[1], stride[1], pad[1], dilation[1])):
        span = d * (k - 1) + 1
        out = _window_out(size, k, s, p, d, ceil_mode)  # torch's formula (ceil_mode may fit a partial window)
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


# ---------------------------------------------------------------------------------------
# conv2d


class Conv2dParams(OpParams):
    """2-D convolution. ``in_channels`` is inferred; ``groups`` splits channels into groups,
    ``depthwise: true`` sets one group per input channel (and ``out`` defaults to the input
    channels), so a separable convolution is a depthwise conv followed by a 1x1 conv."""

    out: Annotated[Any, Int(ge=1, nullable=True)] = None
    kernel: Annotated[Any, Size()]
    stride: Annotated[Any, Size()] = 1
    padding: Annotated[Any, Size(ge=0, words=("same", "valid"))] = 0
    dilation: Annotated[Any, Size()] = 1
    groups: Annotated[Any, Int(ge=1)] = 1
    depthwise: Annotated[Any, Bool()] = False
    bias: Annotated[Any, Bool()] = True


def _conv_shape(p: Conv2dParams, shapes: list[Shape], names: list[str]) -> Inferred:
    c, h, w = _need_image(shapes, "conv2d")
    groups = c if p.depthwise else p.groups
    if p.depthwise and p.groups != 1:
        raise ShapeError("give either 'depthwise: true' or 'groups', not both", param="groups")
    out = p.out if p.out is not None else (c if p.depthwise else None)
    if out is None:
        raise ShapeError("conv2d needs 'out', the number of output channels", param="out",
                         expected="out: <channels> (only a depthwise conv may leave it out)")
    if c % groups:
        raise ShapeError(f"groups={groups} does not divide the {c} input channels", param="groups",
                         expected=f"a divisor of {c}")
    if out % groups:
        if p.depthwise:
            raise ShapeError(f"a depthwise conv makes a multiple of its {c} input channels, but out is {out}", param="out",
                             expected=f"a multiple of {c}, or no 'out'")
        raise ShapeError(f"groups={groups} does not divide the {out} output channels", param="groups",
                         expected=f"a multiple of {groups} output channels")
    kernel, stride, dilation = p.kernel, p.stride, p.dilation
    if p.padding == "same":
        if stride != (1, 1):
            raise ShapeError("padding 'same' needs stride 1", param="padding", expected="stride 1, or a numeric padding")
        oh, ow = h, w
    else:
        pad = (0, 0) if p.padding == "valid" else p.padding
        oh, ow = _window("conv2d", h, w, kernel, stride, pad, dilation, False)
    per_out = (c // groups) * kernel[0] * kernel[1]
    params = {"weight": (out, c // groups, *kernel)}
    if p.bias:
        params["bias"] = (out,)
    return Inferred((out, oh, ow), params=params, macs=out * oh * ow * per_out)


def _conv_build(p: Conv2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    c = shapes[0][0]
    groups = c if p.depthwise else p.groups
    out = p.out if p.out is not None else c
    return nn.Conv2d(c, out, _arg(p.kernel), stride=_arg(p.stride), padding=_arg(p.padding), dilation=_arg(p.dilation),
                     groups=groups, bias=p.bias)


register(OpDef("conv2d", Conv2dParams, _conv_shape, Conv2dParams.__doc__ or "", build=_conv_build))


# ---------------------------------------------------------------------------------------
# batchnorm2d


class BatchNorm2dParams(OpParams):
    """Batch normalisation over channels; the channel count is inferred."""

    eps: Annotated[Any, Float(gt=0)] = 1e-5
    momentum: Annotated[Any, Float(ge=0, le=1, nullable=True)] = 0.1
    affine: Annotated[Any, Bool()] = True
    track_running_stats: Annotated[Any, Bool()] = True


def _bn_shape(p: BatchNorm2dParams, shapes: list[Shape], names: list[str]) -> Inferred:
    c, _, _ = _need_image(shapes, "batchnorm2d")
    params = {"weight": (c,), "bias": (c,)} if p.affine else {}
    buffers = {"running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()} if p.track_running_stats else {}
    return Inferred(shapes[0], params=params, buffers=buffers)


def _bn_build(p: BatchNorm2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.BatchNorm2d(shapes[0][0], eps=p.eps, momentum=p.momentum, affine=p.affine, track_running_stats=p.track_running_stats)


register(OpDef("batchnorm2d", BatchNorm2dParams, _bn_shape, BatchNorm2dParams.__doc__ or "", build=_bn_build))


# ---------------------------------------------------------------------------------------
# relu


class _InplaceValue(Bool):
    expected = "true, false or 'auto'"
    json = {"anyOf": [{"type": "boolean"}, {"enum": ["auto"]}]}

    def check(self, value: Any) -> Any:
        if value == "auto":
            return value
        return super().check(value)


class ReLUParams(OpParams):
    """Rectified linear unit. ``inplace: auto`` (the default) overwrites the input only
    where nothing else reads it; ``true`` insists (an error where unsafe), ``false`` never."""

    inplace: Annotated[Any, _InplaceValue()] = "auto"


def _same_shape(p: Any, shapes: list[Shape], names: list[str]) -> Inferred:
    return Inferred(shapes[0])


def _relu_build(p: ReLUParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.ReLU(inplace=inplace)


register(OpDef("relu", ReLUParams, _same_shape, ReLUParams.__doc__ or "", build=_relu_build, inplace=True, saves_output=True,
               category="activation"))


# ---------------------------------------------------------------------------------------
# local response norm


class LRNParams(OpParams):
    """Local response normalisation across ``size`` neighbouring channels (AlexNet):
    ``b = a / (k + alpha / size * sum(a^2)) ** beta``, as ``torch.nn.LocalResponseNorm``."""

    size: Annotated[Any, Int(ge=1)]
    alpha: Annotated[Any, Float(ge=0)] = 1e-4
    beta: Annotated[Any, Float(ge=0)] = 0.75
    k: Annotated[Any, Float()] = 1.0


def _lrn_shape(p: LRNParams, shapes: list[Shape], names: list[str]) -> Inferred:
    _need_image(shapes, "lrn")
    return Inferred(shapes[0])


def _lrn_build(p: LRNParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.LocalResponseNorm(p.size, alpha=p.alpha, beta=p.beta, k=p.k)


register(OpDef("lrn", LRNParams, _lrn_shape, LRNParams.__doc__ or "", build=_lrn_build, saves_output=True, category="norm"))


# ---------------------------------------------------------------------------------------
# pooling


class MaxPool2dParams(OpParams):
    """Max pooling; ``stride`` defaults to the kernel size."""

    kernel: Annotated[Any, Size()]
    stride: Annotated[Any, Size(nullable=True)] = None
    padding: Annotated[Any, Size(ge=0)] = 0
    dilation: Annotated[Any, Size()] = 1
    ceil_mode: Annotated[Any, Bool()] = False


class AvgPool2dParams(OpParams):
    """Average pooling; ``stride`` defaults to the kernel size."""

    kernel: Annotated[Any, Size()]
    stride: Annotated[Any, Size(nullable=True)] = None
    padding: Annotated[Any, Size(ge=0)] = 0
    ceil_mode: Annotated[Any, Bool()] = False
    count_include_pad: Annotated[Any, Bool()] = True


def _pool_shape(op: str):
    def rule(p: Any, shapes: list[Shape], names: list[str]) -> Inferred:
        c, h, w = _need_image(shapes, op)
        stride = p.stride or p.kernel
        dilation = getattr(p, "dilation", (1, 1))
        for k, pad in zip(p.kernel, p.padding):
            if pad > k // 2:  # torch's rule: half the kernel, whatever the dilation
                raise ShapeError(f"padding {pad} is more than half the kernel ({k})", param="padding",
                                 expected=f"padding of at most {k // 2}")
        oh, ow = _window(op, h, w, p.kernel, stride, p.padding, dilation, p.ceil_mode)
        return Inferred((c, oh, ow))

    return rule


def _maxpool_build(p: MaxPool2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.MaxPool2d(_arg(p.kernel), stride=_arg(p.stride or p.kernel), padding=_arg(p.padding), dilation=_arg(p.dilation),
                        ceil_mode=p.ceil_mode)


def _avgpool_build(p: AvgPool2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.AvgPool2d(_arg(p.kernel), stride=_arg(p.stride or p.kernel), padding=_arg(p.padding), ceil_mode=p.ceil_mode,
                        count_include_pad=p.count_include_pad)


register(OpDef("maxpool2d", MaxPool2dParams, _pool_shape("maxpool2d"), MaxPool2dParams.__doc__ or "", build=_maxpool_build, category="pool"))
register(OpDef("avgpool2d", AvgPool2dParams, _pool_shape("avgpool2d"), AvgPool2dParams.__doc__ or "", build=_avgpool_build, category="pool"))


class AdaptiveAvgPool2dParams(OpParams):
    """Average pooling to a fixed output size (``size: 1`` is global average pooling)."""

    size: Annotated[Any, Size()] = 1


def _adaptive_shape(p: AdaptiveAvgPool2dParams, shapes: list[Shape], names: list[str]) -> Inferred:
    c, _, _ = _need_image(shapes, "adaptive_avgpool2d")
    return Inferred((c, *p.size))


def _adaptive_build(p: AdaptiveAvgPool2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.AdaptiveAvgPool2d(_arg(p.size))


register(OpDef("adaptive_avgpool2d", AdaptiveAvgPool2dParams, _adaptive_shape, AdaptiveAvgPool2dParams.__doc__ or "",
               build=_adaptive_build, category="pool"))


# ---------------------------------------------------------------------------------------
# dropout, flatten, identity


class DropoutParams(OpParams):
    """Dropout with probability ``p`` in training; the identity in eval mode."""

    p: Annotated[Any, Float(ge=0, le=1)] = 0.5


def _dropout_build(p: DropoutParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.Dropout(p.p)


register(OpDef("dropout", DropoutParams, _same_shape, DropoutParams.__doc__ or "", build=_dropout_build, alias=True, category="dropout"))


class FlattenParams(OpParams):
    """Flatten dimensions ``start_dim`` to ``end_dim`` (counted as in torch, with the batch
    as dimension 0), so the default turns C x H x W into C*H*W features."""

    start_dim: Annotated[Any, Int(ge=1)] = 1
    end_dim: Annotated[Any, Int()] = -1


def _flatten_shape(p: FlattenParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = shapes[0]
    rank = len(shape) + 1
    start, end = p.start_dim, p.end_dim if p.end_dim >= 0 else rank + p.end_dim
    if not 1 <= start <= end < rank:
        raise ShapeError(f"cannot flatten dimensions {p.start_dim}..{p.end_dim} of a {rank}-dimensional batch "
                         f"({fmt_shape(shape)} per sample)", param="start_dim")
    s, e = start - 1, end - 1
    return Inferred((*shape[:s], math.prod(shape[s:e + 1]), *shape[e + 1:]))


def _flatten_build(p: FlattenParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.Flatten(p.start_dim, p.end_dim)


register(OpDef("flatten", FlattenParams, _flatten_shape, FlattenParams.__doc__ or "", build=_flatten_build, alias=True, category="reshape"))


class IdentityParams(OpParams):
    """Passes its input through unchanged (a named placeholder)."""


def _identity_build(p: IdentityParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.Identity()


register(OpDef("identity", IdentityParams, _same_shape, IdentityParams.__doc__ or "", build=_identity_build, alias=True, category="reshape"))


# ---------------------------------------------------------------------------------------
# linear


class LinearParams(OpParams):
    """Fully connected layer; ``in_features`` is inferred from a flat input."""

    out: Annotated[Any, Int(ge=1)]
    bias: Annotated[Any, Bool()] = True


def _linear_shape(p: LinearParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = shapes[0]
    if len(shape) != 1:
        raise ShapeError(
            f"linear needs flat features, but its input is {fmt_shape(shape)}",
            expected="a flat input (N x features)",
            hint="add a {op: flatten} node before it (after a global pooling, usually)",
        )
    f = shape[0]
    params = {"weight": (p.out, f)}
    if p.bias:
        params["bias"] = (p.out,)
    return Inferred((p.out,), params=params, macs=p.out * f)


def _linear_build(p: LinearParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.Linear(shapes[0][0], p.out, bias=p.bias)


register(OpDef("linear", LinearParams, _linear_shape, LinearParams.__doc__ or "", build=_linear_build))
