"""Pooling: ``maxpool2d``, ``avgpool2d``, ``adaptive_avgpool2d``, ``adaptive_maxpool2d``
and ``mean`` (an average over dimensions, ``x.mean([2, 3])``)."""

from __future__ import annotations

from typing import Annotated, Any

from .._values import Bool, IntList, Size
from ._common import arg, need_image, need_rank, torch_dim, window
from ._registry import Inferred, OpDef, OpParams, Shape, ShapeError, register


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
        c, h, w = need_image(shapes, op)
        stride = p.stride or p.kernel
        dilation = getattr(p, "dilation", (1, 1))
        for k, pad in zip(p.kernel, p.padding):
            if pad > k // 2:  # torch's rule: half the kernel, whatever the dilation
                raise ShapeError(f"padding {pad} is more than half the kernel ({k})", param="padding",
                                 expected=f"padding of at most {k // 2}")
        oh, ow = window(op, h, w, p.kernel, stride, p.padding, dilation, p.ceil_mode)
        return Inferred((c, oh, ow))

    return rule


def _maxpool_build(p: MaxPool2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.MaxPool2d(arg(p.kernel), stride=arg(p.stride or p.kernel), padding=arg(p.padding), dilation=arg(p.dilation),
                        ceil_mode=p.ceil_mode)


def _avgpool_build(p: AvgPool2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.AvgPool2d(arg(p.kernel), stride=arg(p.stride or p.kernel), padding=arg(p.padding), ceil_mode=p.ceil_mode,
                        count_include_pad=p.count_include_pad)


register(OpDef("maxpool2d", MaxPool2dParams, _pool_shape("maxpool2d"), MaxPool2dParams.__doc__ or "", build=_maxpool_build,
               shapeless=True, category="pool", layout="image"))
register(OpDef("avgpool2d", AvgPool2dParams, _pool_shape("avgpool2d"), AvgPool2dParams.__doc__ or "", build=_avgpool_build,
               shapeless=True, category="pool", layout="image"))


class AdaptiveAvgPool2dParams(OpParams):
    """Average pooling to a fixed output size (``size: 1`` is global average pooling)."""

    size: Annotated[Any, Size()] = 1


class AdaptiveMaxPool2dParams(OpParams):
    """Max pooling to a fixed output size (``size: 1`` is global max pooling)."""

    size: Annotated[Any, Size()] = 1


def _adaptive_shape(op: str):
    def rule(p: Any, shapes: list[Shape], names: list[str]) -> Inferred:
        c, _, _ = need_image(shapes, op)
        return Inferred((c, *p.size))

    return rule


def _adaptive_avg_build(p: AdaptiveAvgPool2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.AdaptiveAvgPool2d(arg(p.size))


def _adaptive_max_build(p: AdaptiveMaxPool2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.AdaptiveMaxPool2d(arg(p.size))


register(OpDef("adaptive_avgpool2d", AdaptiveAvgPool2dParams, _adaptive_shape("adaptive_avgpool2d"),
               AdaptiveAvgPool2dParams.__doc__ or "", build=_adaptive_avg_build, shapeless=True, category="pool", layout="image",
               ends_trunk=True))
register(OpDef("adaptive_maxpool2d", AdaptiveMaxPool2dParams, _adaptive_shape("adaptive_maxpool2d"),
               AdaptiveMaxPool2dParams.__doc__ or "", build=_adaptive_max_build, shapeless=True, category="pool", layout="image",
               ends_trunk=True))


class MeanParams(OpParams):
    """The average over ``dims`` (counted as torch counts them, the batch being 0), as
    ``x.mean(dims)``: ``dims: [2, 3]`` averages an image's height and width into C features
    (ShuffleNetV2's and MNASNet's global pooling). ``keepdim: true`` keeps them as size 1."""

    dims: Annotated[Any, IntList()]
    keepdim: Annotated[Any, Bool()] = False


def _mean_shape(p: MeanParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = need_rank(shapes, "mean", 1)
    axes = [torch_dim(d, len(shape), "mean", "dims") for d in p.dims]
    if len(set(axes)) != len(axes):
        raise ShapeError(f"'dims' names a dimension twice: {list(p.dims)}", param="dims")
    if p.keepdim:
        return Inferred(tuple(1 if i in axes else d for i, d in enumerate(shape)))
    return Inferred(tuple(d for i, d in enumerate(shape) if i not in axes))


def _mean_emit(graph, p: MeanParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    kwargs = {"keepdim": True} if p.keepdim else {}
    return graph.create_node("call_method", "mean", (args[0], list(p.dims)), kwargs, name=name)


register(OpDef("mean", MeanParams, _mean_shape, MeanParams.__doc__ or "", emit=_mean_emit, category="pool", layout="any"))
