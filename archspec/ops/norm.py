"""Normalisation: ``batchnorm2d``, ``frozen_batchnorm2d`` (torchvision's, fixed statistics),
``batchnorm1d``, ``layernorm`` (over the last dimension), ``layernorm2d`` (over the channels
of an image, ConvNeXt's), ``groupnorm`` and ``lrn`` (local response norm). Channel and
feature counts are inferred."""

from __future__ import annotations

from typing import Annotated, Any

from .._values import Bool, Float, Int
from ._common import NORM_DEFAULTS, need_image, need_rank
from ._registry import Inferred, OpDef, OpParams, Shape, ShapeError, register


class BatchNorm2dParams(OpParams):
    """Batch normalisation over the channels of an image; the channel count is inferred.
    ``eps`` and ``momentum`` differ between families (torchvision's MobileNetV3 uses 0.001
    and 0.01, MNASNet a momentum of 0.0003)."""

    eps: Annotated[Any, Float(gt=0)] = 1e-5
    momentum: Annotated[Any, Float(ge=0, le=1, nullable=True)] = 0.1
    affine: Annotated[Any, Bool()] = True
    track_running_stats: Annotated[Any, Bool()] = True


def _norm_defaults(p: Any, shapes: list[Shape]) -> dict[str, Any]:
    return NORM_DEFAULTS


#: the dtypes of batch norm's tensors that are not float32: torch counts the batches in int64
_BN_DTYPES = {"num_batches_tracked": "int64"}


def _bn_tensors(p: BatchNorm2dParams, c: int) -> tuple[dict, dict]:
    params = {"weight": (c,), "bias": (c,)} if p.affine else {}
    buffers = {"running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()} if p.track_running_stats else {}
    return params, buffers


def _bn_inferred(p: BatchNorm2dParams, shape: Shape) -> Inferred:
    params, buffers = _bn_tensors(p, shape[0])
    return Inferred(shape, params=params, buffers=buffers, dtypes=_BN_DTYPES if buffers else {})


def _bn_shape(p: BatchNorm2dParams, shapes: list[Shape], names: list[str]) -> Inferred:
    need_image(shapes, "batchnorm2d")
    return _bn_inferred(p, shapes[0])


def _bn_build(p: BatchNorm2dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.BatchNorm2d(shapes[0][0], eps=p.eps, momentum=p.momentum, affine=p.affine, track_running_stats=p.track_running_stats)


register(OpDef("batchnorm2d", BatchNorm2dParams, _bn_shape, BatchNorm2dParams.__doc__ or "", build=_bn_build, category="norm",
               defaults=_norm_defaults, folds_into=("conv2d", 3)))


class FrozenBatchNorm2dParams(OpParams):
    """Batch normalisation of an image with fixed statistics and affine parameters, as
    ``torchvision.ops.FrozenBatchNorm2d`` (the backbones of torchvision's detection
    checkpoints): ``weight``, ``bias``, ``running_mean`` and ``running_var`` are all buffers
    (nothing is trained, no batch is counted), the same in train and eval mode; a trained
    batch norm's checkpoint loads into it. ``optimize="inference"`` folds it into the
    convolution before it, as a batch norm."""

    eps: Annotated[Any, Float(gt=0)] = 1e-5


def _frozen_bn_shape(p: FrozenBatchNorm2dParams, shapes: list[Shape], names: list[str]) -> Inferred:
    c, _, _ = need_image(shapes, "frozen_batchnorm2d")
    return Inferred(shapes[0], buffers={"weight": (c,), "bias": (c,), "running_mean": (c,), "running_var": (c,)})


def _frozen_bn_build(p: FrozenBatchNorm2dParams, shapes: list[Shape], inplace: bool):
    from ..layers import FrozenBatchNorm2d

    return FrozenBatchNorm2d(shapes[0][0], eps=p.eps)


register(OpDef("frozen_batchnorm2d", FrozenBatchNorm2dParams, _frozen_bn_shape, FrozenBatchNorm2dParams.__doc__ or "",
               build=_frozen_bn_build, category="norm", layout="image", defaults=_norm_defaults,
               folds_into=("conv2d", 3)))


class BatchNorm1dParams(BatchNorm2dParams):
    """Batch normalisation of flat features (``F``) or of channels of a sequence
    (``C x L``), as ``torch.nn.BatchNorm1d``."""


def _bn1d_shape(p: BatchNorm1dParams, shapes: list[Shape], names: list[str]) -> Inferred:
    return _bn_inferred(p, need_rank(shapes, "batchnorm1d", 1, 2))


def _bn1d_build(p: BatchNorm1dParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.BatchNorm1d(shapes[0][0], eps=p.eps, momentum=p.momentum, affine=p.affine, track_running_stats=p.track_running_stats)


register(OpDef("batchnorm1d", BatchNorm1dParams, _bn1d_shape, BatchNorm1dParams.__doc__ or "", build=_bn1d_build,
               category="norm",
               defaults=_norm_defaults, folds_into=("linear", 1)))


class LayerNormParams(OpParams):
    """Layer normalisation over the last dimension (``torch.nn.LayerNorm(last)``): the
    features of tokens, or the channels of a channels-last image. ``affine: false`` has no
    weight and bias; ``bias: false`` keeps the weight only."""

    eps: Annotated[Any, Float(gt=0)] = 1e-5
    affine: Annotated[Any, Bool()] = True
    bias: Annotated[Any, Bool()] = True


def _ln_tensors(p: LayerNormParams, c: int) -> dict:
    if not p.affine:
        return {}
    return {"weight": (c,), "bias": (c,)} if p.bias else {"weight": (c,)}


def _ln_shape(p: LayerNormParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = need_rank(shapes, "layernorm", 1)
    return Inferred(shape, params=_ln_tensors(p, shape[-1]))


def _ln_build(p: LayerNormParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.LayerNorm(shapes[0][-1], eps=p.eps, elementwise_affine=p.affine, bias=p.bias)


register(OpDef("layernorm", LayerNormParams, _ln_shape, LayerNormParams.__doc__ or "", build=_ln_build, category="norm",
               last_dim=True, image_hint="normalise an image's channels with layernorm2d, or permute it to channels-last first",
               defaults=_norm_defaults))


class LayerNorm2dParams(LayerNormParams):
    """Layer normalisation over the channels of a C x H x W image, at every position
    (ConvNeXt's ``LayerNorm2d``: the same weights and keys as ``torch.nn.LayerNorm(C)``)."""


def _ln2d_shape(p: LayerNorm2dParams, shapes: list[Shape], names: list[str]) -> Inferred:
    c, _, _ = need_image(shapes, "layernorm2d")
    return Inferred(shapes[0], params=_ln_tensors(p, c))


def _ln2d_build(p: LayerNorm2dParams, shapes: list[Shape], inplace: bool):
    from ..layers import LayerNorm2d

    return LayerNorm2d(shapes[0][0], eps=p.eps, elementwise_affine=p.affine, bias=p.bias)


register(OpDef("layernorm2d", LayerNorm2dParams, _ln2d_shape, LayerNorm2dParams.__doc__ or "", build=_ln2d_build,
               category="norm", layout="image",
               defaults=_norm_defaults))


class GroupNormParams(OpParams):
    """Group normalisation: the channels (the first dimension per sample) in ``groups``
    groups, as ``torch.nn.GroupNorm``."""

    groups: Annotated[Any, Int(ge=1)]
    eps: Annotated[Any, Float(gt=0)] = 1e-5
    affine: Annotated[Any, Bool()] = True


def _gn_shape(p: GroupNormParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = need_rank(shapes, "groupnorm", 1)
    if shape[0] % p.groups:
        raise ShapeError(f"groups={p.groups} does not divide the {shape[0]} channels", param="groups",
                         expected=f"a divisor of {shape[0]}")
    return Inferred(shape, params={"weight": (shape[0],), "bias": (shape[0],)} if p.affine else {})


def _gn_build(p: GroupNormParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.GroupNorm(p.groups, shapes[0][0], eps=p.eps, affine=p.affine)


register(OpDef("groupnorm", GroupNormParams, _gn_shape, GroupNormParams.__doc__ or "", build=_gn_build, category="norm",
               defaults=_norm_defaults))


class LRNParams(OpParams):
    """Local response normalisation across ``size`` neighbouring channels (AlexNet):
    ``b = a / (k + alpha / size * sum(a^2)) ** beta``, as ``torch.nn.LocalResponseNorm``."""

    size: Annotated[Any, Int(ge=1)]
    alpha: Annotated[Any, Float(ge=0)] = 1e-4
    beta: Annotated[Any, Float(ge=0)] = 0.75
    k: Annotated[Any, Float()] = 1.0


def _lrn_shape(p: LRNParams, shapes: list[Shape], names: list[str]) -> Inferred:
    need_image(shapes, "lrn")
    return Inferred(shapes[0])


def _lrn_build(p: LRNParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.LocalResponseNorm(p.size, alpha=p.alpha, beta=p.beta, k=p.k)


register(OpDef("lrn", LRNParams, _lrn_shape, LRNParams.__doc__ or "", build=_lrn_build, saves_output=True, category="norm"))
