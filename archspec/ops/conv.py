"""Layers with weights that mix features: ``conv2d``, ``conv_transpose2d`` and ``linear``.

Each is a parameter model, a shape rule (with the tensors the module holds and its
multiply-accumulates) and a builder; see :mod:`._registry`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from .._values import Bool, Int, Size
from ._common import arg, need_image, need_rank, torch_default, window
from ._registry import Inferred, OpDef, OpParams, Shape, ShapeError, register


class Conv2dParams(OpParams):
    """2-D convolution. ``in_channels`` is inferred; ``groups`` splits channels into groups,
    ``depthwise: true`` sets one group per input channel (and ``out`` defaults to the input
    channels), so a separable convolution is a depthwise conv followed by a 1x1 conv.
    ``exact: true`` refuses an input the windows do not tile exactly (torch leaves the
    remainder unused): a patch embedding whose patch size must divide the image."""

    out: Annotated[Any, Int(ge=1, nullable=True)] = None
    kernel: Annotated[Any, Size()]
    stride: Annotated[Any, Size()] = 1
    padding: Annotated[Any, Size(ge=0, words=("same", "valid"))] = 0
    dilation: Annotated[Any, Size()] = 1
    groups: Annotated[Any, Int(ge=1)] = 1
    depthwise: Annotated[Any, Bool()] = False
    bias: Annotated[Any, Bool()] = True
    exact: Annotated[Any, Bool()] = False


def _conv_shape(p: Conv2dParams, shapes: list[Shape], names: list[str]) -> Inferred:
    c, h, w = need_image(shapes, "conv2d")
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
        oh, ow = window("conv2d", h, w, kernel, stride, pad, dilation, False)
        if p.exact:
            for axis, size, k, s, pd, d, o in (("height", h, kernel[0], stride[0], pad[0], dilation[0], oh),
                                               ("width", w, kernel[1], stride[1], pad[1], dilation[1], ow)):
                left = size + 2 * pd - ((o - 1) * s + d * (k - 1) + 1)
                if left:
                    raise ShapeError(
                        f"the windows (kernel {k}, stride {s}) do not tile the input {axis} {size}: {o} windows cover "
                        f"{size + 2 * pd - left}, leaving {left} unused (exact: true)", param="kernel",
                        expected=f"an input {axis} that is a multiple of the stride, such as {size - left} or "
                                 f"{size - left + s}" if k == s and not pd else "windows that tile the input exactly")
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
    return nn.Conv2d(c, out, arg(p.kernel), stride=arg(p.stride), padding=arg(p.padding), dilation=arg(p.dilation),
                     groups=groups, bias=p.bias)


def _conv_defaults(p: Conv2dParams, shapes: list[Shape]) -> dict[str, Any]:
    c = shapes[0][0]
    groups = c if p.depthwise else p.groups
    return torch_default(c // groups * p.kernel[0] * p.kernel[1], p.bias)


register(OpDef("conv2d", Conv2dParams, _conv_shape, Conv2dParams.__doc__ or "", build=_conv_build, layout="image",
               defaults=_conv_defaults, classifier_dim=0, convolution=True))


class ConvTranspose2dParams(OpParams):
    """2-D transposed convolution (as ``torch.nn.ConvTranspose2d``; ``in_channels`` is
    inferred): the upsampling of a U-Net's decoder (``kernel: 2, stride: 2`` doubles the
    size). Each output size is ``(H - 1) * stride - 2 * padding + dilation * (kernel - 1)
    + output_padding + 1``; ``output_padding`` (less than the stride or the dilation)
    picks among the sizes a strided convolution maps to the same input size. The weight is
    ``in x out/groups x kH x kW``, as torch's."""

    out: Annotated[Any, Int(ge=1)]
    kernel: Annotated[Any, Size()]
    stride: Annotated[Any, Size()] = 1
    padding: Annotated[Any, Size(ge=0)] = 0
    output_padding: Annotated[Any, Size(ge=0)] = 0
    groups: Annotated[Any, Int(ge=1)] = 1
    dilation: Annotated[Any, Size()] = 1
    bias: Annotated[Any, Bool()] = True


def _conv_t_shape(p: ConvTranspose2dParams, shapes: list[Shape], names: list[str]) -> Inferred:
    c, h, w = need_image(shapes, "conv_transpose2d")
    if c % p.groups:
        raise ShapeError(f"groups={p.groups} does not divide the {c} input channels", param="groups",
                         expected=f"a divisor of {c}")
    if p.out % p.groups:
        raise ShapeError(f"groups={p.groups} does not divide the {p.out} output channels", param="groups",
                         expected=f"a multiple of {p.groups} output channels")
    sizes = []
    for i, (axis, size) in enumerate((("height", h), ("width", w))):
        k, s, pad, op, d = p.kernel[i], p.stride[i], p.padding[i], p.output_padding[i], p.dilation[i]
        if op >= max(s, d):
            # torch refuses it: from one input size, output_padding 0 .. max(s, d) - 1 reach max(s, d) sizes
            least = (size - 1) * s - 2 * pad + d * (k - 1) + 1
            top = max(s, d) - 1
            reach = f"{least} only (output_padding 0" if top == 0 else f"{least} to {least + top} (output_padding 0 to {top}"
            raise ShapeError(
                f"a transposed convolution of stride {s} and dilation {d} cannot reach an output {axis} of {least + op} "
                f"from an input {axis} of {size}: it reaches {reach}, less than the stride or the dilation)",
                param="output_padding", expected=f"an output_padding of at most {top} in {axis}")
        out = (size - 1) * s - 2 * pad + d * (k - 1) + op + 1
        if out < 1:
            raise ShapeError(f"the conv_transpose2d output {axis} would be {out}: padding {pad} removes more than the "
                             f"{out + 2 * pad} {'rows' if axis == 'height' else 'columns'} it makes", param="padding",
                             expected=f"a padding of at most {(out + 2 * pad - 1) // 2} in {axis}, or a larger input")
        sizes.append(out)
    params = {"weight": (c, p.out // p.groups, *p.kernel)}
    if p.bias:
        params["bias"] = (p.out,)
    # as torch's flop counter counts it: every input value times a kernel's weights per output channel of its group
    macs = c * h * w * (p.out // p.groups) * p.kernel[0] * p.kernel[1]
    return Inferred((p.out, *sizes), params=params, macs=macs)


def _conv_t_build(p: ConvTranspose2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.ConvTranspose2d(shapes[0][0], p.out, arg(p.kernel), stride=arg(p.stride), padding=arg(p.padding),
                              output_padding=arg(p.output_padding), groups=p.groups, bias=p.bias,
                              dilation=arg(p.dilation))


def _conv_t_defaults(p: ConvTranspose2dParams, shapes: list[Shape]) -> dict[str, Any]:
    # torch's fan in for this weight is its dimension 1 times the kernel: out/groups x kH x kW
    return torch_default(p.out // p.groups * p.kernel[0] * p.kernel[1], p.bias)


register(OpDef("conv_transpose2d", ConvTranspose2dParams, _conv_t_shape, ConvTranspose2dParams.__doc__ or "",
               build=_conv_t_build, layout="image", defaults=_conv_t_defaults, classifier_dim=0,
               # batch norm after it folds into its weight's output channels, dimension 1
               takes_fold=(("batchnorm2d", 3), ("frozen_batchnorm2d", 3)), fold_dim=1))


class LinearParams(OpParams):
    """Fully connected layer on the last dimension (as ``torch.nn.Linear``): flat features
    (``F``), tokens (``N x D``) or a channels-last image (``H x W x C``, after a permute);
    ``in_features`` is inferred."""

    out: Annotated[Any, Int(ge=1)]
    bias: Annotated[Any, Bool()] = True


def _linear_shape(p: LinearParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = need_rank(shapes, "linear", 1)
    f = shape[-1]
    params = {"weight": (p.out, f)}
    if p.bias:
        params["bias"] = (p.out,)
    return Inferred((*shape[:-1], p.out), params=params, macs=p.out * f * math.prod(shape[:-1]))


def _linear_build(p: LinearParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.Linear(shapes[0][-1], p.out, bias=p.bias)


register(OpDef("linear", LinearParams, _linear_shape, LinearParams.__doc__ or "", build=_linear_build, last_dim=True,
               defaults=lambda p, shapes: torch_default(shapes[0][-1], p.bias), classifier_dim=-1,
               # torch's linear over more than one dimension returns a view of a 2-D product
               returns_view=lambda shapes: len(shapes[0]) > 1))
