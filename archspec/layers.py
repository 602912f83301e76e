"""The few ``torch.nn`` modules archspec's ops need that torch itself lacks.

- :class:`LayerNorm2d`: layer normalisation over the channels of an N x C x H x W batch
  at every position (ConvNeXt's), with ``torch.nn.LayerNorm``'s weights and keys;
- :class:`StochasticDepth`: drops a residual branch per sample (or per batch) in training;
- :class:`SelfAttention`: ``torch.nn.MultiheadAttention`` (its keys, its initialisation)
  attending a batch of token sequences to itself, called with one tensor.

They are ordinary modules: picklable, TorchScript-able and traceable by ``torch.fx``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LayerNorm2d", "StochasticDepth", "SelfAttention", "self_attention"]


class LayerNorm2d(nn.LayerNorm):
    """``LayerNorm(C)`` applied to the channels of each position of an N x C x H x W batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.permute(0, 2, 3, 1)
        normed = F.layer_norm(channels_last, self.normalized_shape, self.weight, self.bias, self.eps)
        return normed.permute(0, 3, 1, 2)


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


def self_attention(x: torch.Tensor, in_proj_weight: torch.Tensor, in_proj_bias: torch.Tensor | None,
                   out_proj_weight: torch.Tensor, out_proj_bias: torch.Tensor | None, num_heads: int, dropout: float,
                   training: bool) -> torch.Tensor:
    """Multi-head self-attention of a batch-first ``B x N x D`` batch: torch's own
    ``multi_head_attention_forward`` (which ``nn.MultiheadAttention`` runs), without the
    attention weights. A leaf for ``torch.fx`` (wrapped below), so a traced model shows
    one call, as it shows one call of ``nn.MultiheadAttention``."""
    tokens_first = x.transpose(0, 1)
    out, _ = F.multi_head_attention_forward(
        tokens_first, tokens_first, tokens_first, x.shape[-1], num_heads, in_proj_weight, in_proj_bias, None, None,
        False, dropout, out_proj_weight, out_proj_bias, training=training, need_weights=False)
    return out.transpose(0, 1)


torch.fx.wrap("self_attention")


class SelfAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention(dim, heads, batch_first=True)`` called as ``attn(x)`` on a
    ``B x N x D`` batch: every token attends to every token of its sequence; the output
    has the input's shape. Same keys (``in_proj_weight``, ``in_proj_bias``,
    ``out_proj.weight``, ``out_proj.bias``) and checkpoints as the torch module."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__(dim, heads, dropout=dropout, bias=bias, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self_attention(x, self.in_proj_weight, self.in_proj_bias, self.out_proj.weight, self.out_proj.bias,
                              self.num_heads, self.dropout, self.training)
