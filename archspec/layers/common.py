"""The tracing checks every layer asks, and the small modules of the ops.

- :func:`symbolic_tracing` and :func:`compiling`: whether ``torch.fx``, or
  ``torch.compile`` / ``torch.export``, traces the code now;
- :class:`LayerNorm2d`: layer normalisation over the channels of an N x C x H x W batch
  at every position (ConvNeXt's), with ``torch.nn.LayerNorm``'s weights and keys;
- :class:`FrozenBatchNorm2d`: batch normalisation with fixed statistics and affine
  parameters, all buffers (torchvision's detection backbones');
- :class:`StochasticDepth`: drops a residual branch per sample (or per batch) in training.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn
from torch.nn import functional as F

__all__ = ["symbolic_tracing", "compiling", "LayerNorm2d", "FrozenBatchNorm2d", "StochasticDepth"]


def symbolic_tracing() -> bool:
    """Whether ``torch.fx`` traces symbolically now (torch >= 2.6 tells it apart from
    export, and warns on the old question)."""
    check = getattr(torch.fx._symbolic_trace, "is_fx_symbolic_tracing", torch.fx._symbolic_trace.is_fx_tracing)
    return bool(check())


def compiling() -> bool:
    """Whether ``torch.compile`` (or ``torch.export``) traces the code now."""
    compiler = getattr(torch, "compiler", None)
    check = getattr(compiler, "is_compiling", None)
    return bool(check()) if check is not None else False


class LayerNorm2d(nn.LayerNorm):
    """``LayerNorm(C)`` applied to the channels of each position of an N x C x H x W batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.permute(0, 2, 3, 1)
        normed = F.layer_norm(channels_last, self.normalized_shape, self.weight, self.bias, self.eps)
        return normed.permute(0, 3, 1, 2)


class FrozenBatchNorm2d(nn.Module):
    """Batch normalisation of an N x C x H x W batch with fixed statistics and affine
    parameters, as ``torchvision.ops.FrozenBatchNorm2d``: ``x * scale + shift`` with
    ``scale = weight * rsqrt(running_var + eps)`` and ``shift = bias - running_mean *
    scale``, in that order (the values torchvision's computes, to the last bit). Its four
    tensors are buffers (``weight``, ``bias``, ``running_mean``, ``running_var``: no
    gradients, no batch count), so a trained batch norm's checkpoint loads into it: its
    ``num_batches_tracked`` is ignored. It starts as the identity (scale 1, shift 0)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)  # a trained batch norm's, meaningless here
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.reshape(1, -1, 1, 1)
        b = self.bias.reshape(1, -1, 1, 1)
        rv = self.running_var.reshape(1, -1, 1, 1)
        rm = self.running_mean.reshape(1, -1, 1, 1)
        scale = w * (rv + self.eps).rsqrt()
        return x * scale + (b - rm * scale)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class StochasticDepth(nn.Module):
    """In training, zero each sample's input (``mode="row"``) or the whole batch
    (``mode="batch"``) with probability ``p``, scaling what survives by ``1 / (1 - p)``;
    the identity in eval mode or when ``p`` is 0.

    The mask is one Bernoulli draw per row (per batch), from the default generator, in the
    same order as torchvision's ``stochastic_depth``, so a seeded run drops the same rows.
    """

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"a drop probability is between 0 and 1, found {p}")
        if mode not in ("row", "batch"):
            raise ValueError(f"mode is 'row' or 'batch', found {mode!r}")
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        rows = x.shape[0] if self.mode == "row" else 1
        mask = torch.empty([rows] + [1] * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        if keep > 0.0:
            mask = mask / keep
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"

