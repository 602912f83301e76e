"""Regularisation that acts only in training: ``dropout`` and ``stochastic_depth``.
Both are the identity in eval mode (they return their input)."""

from __future__ import annotations

from typing import Annotated, Any

from .._values import Choice, Float
from ._common import same_shape
from ._registry import OpDef, OpParams, Shape, register


class DropoutParams(OpParams):
    """Dropout with probability ``p`` in training; the identity in eval mode."""

    p: Annotated[Any, Float(ge=0, le=1)] = 0.5


def _dropout_build(p: DropoutParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.Dropout(p.p)


register(OpDef("dropout", DropoutParams, same_shape, DropoutParams.__doc__ or "", build=_dropout_build, alias=True,
               shapeless=True, category="dropout", passthrough_eval=True))


class StochasticDepthParams(OpParams):
    """Stochastic depth (Huang et al. 2016) on a residual branch: in training, each sample's
    branch (``mode: row``) or the whole batch's (``mode: batch``) is zeroed with probability
    ``p`` and the rest scaled by 1 / (1 - p), drawing the mask as torchvision does (one
    Bernoulli draw per row), so a seeded run matches it; the identity in eval mode."""

    p: Annotated[Any, Float(ge=0, le=1)]
    mode: Annotated[Any, Choice("row", "batch")] = "row"


def _sd_build(p: StochasticDepthParams, shapes: list[Shape], inplace: bool):
    from ..layers import StochasticDepth

    return StochasticDepth(p.p, p.mode)


register(OpDef("stochastic_depth", StochasticDepthParams, same_shape, StochasticDepthParams.__doc__ or "", build=_sd_build,
               alias=True, shapeless=True, category="dropout", passthrough_eval=True))
