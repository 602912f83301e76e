"""Attention layers: :class:`SelfAttention` (``torch.nn.MultiheadAttention``'s keys and
initialisation, attending a batch of token sequences to itself, called with one tensor),
and Swin's :class:`WindowAttention` (V1 and V2) and :class:`PatchMerge`, on channels-last
(N x H x W x C) batches. Their computations are functions that ``torch.fx`` records as
one call each (``self_attention``, ``window_attention``, ``patch_merge``)."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.fx
from torch import nn
from torch.nn import functional as F

__all__ = ["SelfAttention", "self_attention", "WindowAttention", "PatchMerge", "window_attention", "patch_merge",
           "relative_position_index", "relative_coords_table"]


def self_attention(x: torch.Tensor, in_proj_weight: torch.Tensor, in_proj_bias: torch.Tensor | None,
                   out_proj_weight: torch.Tensor, out_proj_bias: torch.Tensor | None, num_heads: int, dropout: float,
                   training: bool) -> torch.Tensor:
    """Multi-head self-attention of a batch-first ``B x N x D`` batch, computed as
    ``nn.MultiheadAttention`` computes it without the attention weights: one packed
    projection to queries, keys and values, ``scaled_dot_product_attention`` over the heads,
    the heads joined and projected out. Queries, keys and values have the memory layout
    torch's module gives them (tokens first), so in training the attention dropout draws
    the same mask; the input projection runs on the batch-first input itself (contiguous:
    with frozen weights torch would run the projection of a transposed view as a batched
    product, 1.6x slower here). A leaf for ``torch.fx`` (wrapped below), so a traced model
    shows one call, as it shows one call of ``nn.MultiheadAttention``."""
    b, n, d = x.shape
    hd = d // num_heads
    packed = F.linear(x, in_proj_weight, in_proj_bias).transpose(0, 1)  # N x B x 3D
    packed = packed.unflatten(-1, (3, d)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()  # 3 x N x B x D
    q, k, v = [t.view(n, b * num_heads, hd).transpose(0, 1).view(b, num_heads, n, hd) for t in packed.unbind(0)]
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout if training else 0.0)
    out = out.permute(2, 0, 1, 3).contiguous().view(n * b, d)
    return F.linear(out, out_proj_weight, out_proj_bias).view(n, b, d).transpose(0, 1)


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


# ---------------------------------------------------------------------------------------
# Swin Transformer: shifted-window attention and patch merging, on channels-last images


def relative_position_index(window: list[int]) -> torch.Tensor:
    """For each pair (i, j) of the ``Wh * Ww`` positions of a window (row-major), the row of
    the relative position table that holds their offset: ``(dh + Wh - 1) * (2 Ww - 1) +
    (dw + Ww - 1)`` for ``dh = h_i - h_j``, ``dw = w_i - w_j``; int64, ``(Wh*Ww)**2`` long."""
    wh, ww = int(window[0]), int(window[1])
    rows = torch.arange(wh).repeat_interleave(ww)  # each position's row and column
    cols = torch.arange(ww).repeat(wh)
    dh = rows[:, None] - rows[None, :] + (wh - 1)
    dw = cols[:, None] - cols[None, :] + (ww - 1)
    return (dh * (2 * ww - 1) + dw).flatten()


def relative_coords_table(window: list[int]) -> torch.Tensor:
    """Swin V2's log-spaced relative coordinates, the input of its position bias MLP:
    ``(1, 2 Wh - 1, 2 Ww - 1, 2)``, entry ``[0, a, b]`` being ``(f(dh / (Wh - 1)),
    f(dw / (Ww - 1)))`` for the offsets ``dh = a - (Wh - 1)``, ``dw = b - (Ww - 1)``, with
    ``f(t) = sign(t) * log2(8 |t| + 1) / 3`` (in float32; a window of 1 has only offset 0)."""
    wh, ww = int(window[0]), int(window[1])
    dh = torch.arange(-(wh - 1), wh, dtype=torch.float32) / max(wh - 1, 1)
    dw = torch.arange(-(ww - 1), ww, dtype=torch.float32) / max(ww - 1, 1)
    table = torch.stack([dh[:, None].expand(-1, 2 * ww - 1), dw[None, :].expand(2 * wh - 1, -1)], dim=-1) * 8
    return (torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0).unsqueeze(0)


def _shift_mask(hp: int, wp: int, window: list[int], shift: list[int], like: torch.Tensor) -> torch.Tensor:
    """The additive mask of shifted windows, ``(windows, N, N)``: after the cyclic roll, a
    window at the bottom or right edge holds pixels from up to three bands of the map
    (before ``-window``, up to ``-shift``, the rest); pairs from different bands get -100."""
    rows = torch.arange(hp, device=like.device)
    cols = torch.arange(wp, device=like.device)
    band_h = (rows >= hp - window[0]).to(torch.int64) + (rows >= hp - shift[0]).to(torch.int64)
    band_w = (cols >= wp - window[1]).to(torch.int64) + (cols >= wp - shift[1]).to(torch.int64)
    label = band_h[:, None] * 3 + band_w[None, :]
    label = label.reshape(hp // window[0], window[0], wp // window[1], window[1]).permute(0, 2, 1, 3)
    label = label.reshape(-1, window[0] * window[1])
    apart = label.unsqueeze(1) != label.unsqueeze(2)
    return torch.zeros(apart.shape, dtype=like.dtype, device=like.device).masked_fill(apart, -100.0)


def window_attention(x: torch.Tensor, qkv_weight: torch.Tensor, qkv_bias: Optional[torch.Tensor], proj_weight: torch.Tensor,
                     proj_bias: Optional[torch.Tensor], position_bias: torch.Tensor, window: list[int], shift: list[int],
                     heads: int, logit_scale: Optional[torch.Tensor] = None, attention_dropout: float = 0.0,
                     dropout: float = 0.0, training: bool = False) -> torch.Tensor:
    """Multi-head self-attention within windows of an N x H x W x C batch (Swin).

    The map is padded at the bottom and right to a multiple of the window; a shift is
    dropped along an axis the window covers whole. With a shift, the map is rolled up and
    left by it, windows that straddle the wrap are masked (-100 between pixels that were
    not neighbours), and the result is rolled back. ``position_bias`` (``1 x heads x N x
    N``, N the window's positions) is added to the attention logits. Without
    ``logit_scale`` the logits are the scaled dot products ``q k^T / sqrt(d)`` (V1); with
    it they are cosine similarities times ``exp(min(logit_scale, log 100))``, and the
    keys' bias is zero (V2).
    """
    b, h, w, c = x.shape
    wh, ww = window[0], window[1]
    pad_h = (wh - h % wh) % wh
    pad_w = (ww - w % ww) % ww
    x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    shifts = [shift[0] if wh < hp else 0, shift[1] if ww < wp else 0]
    rolled = shifts[0] > 0 or shifts[1] > 0
    if rolled:
        x = torch.roll(x, shifts=(-shifts[0], -shifts[1]), dims=(1, 2))
    nh, nw, n = hp // wh, wp // ww, wh * ww
    windows = x.reshape(b, nh, wh, nw, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nh * nw, n, c)
    if logit_scale is not None and qkv_bias is not None:
        third = qkv_bias.shape[0] // 3
        qkv_bias = torch.cat([qkv_bias[:third], torch.zeros_like(qkv_bias[third:2 * third]), qkv_bias[2 * third:]])
    qkv = F.linear(windows, qkv_weight, qkv_bias).reshape(b * nh * nw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    if logit_scale is not None:
        logits = F.normalize(q, dim=-1).matmul(F.normalize(k, dim=-1).transpose(-2, -1))
        logits = logits * torch.clamp(logit_scale, max=math.log(100.0)).exp()
    else:
        logits = (q * (c // heads) ** -0.5).matmul(k.transpose(-2, -1))
    logits = logits + position_bias
    if rolled:
        mask = _shift_mask(hp, wp, window, shifts, logits)
        logits = (logits.view(b, nh * nw, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, heads, n, n)
    attn = F.dropout(F.softmax(logits, dim=-1), p=attention_dropout, training=training)
    out = attn.matmul(v).transpose(1, 2).reshape(b * nh * nw, n, c)
    out = F.dropout(F.linear(out, proj_weight, proj_bias), p=dropout, training=training)
    out = out.reshape(b, nh, nw, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
    if rolled:
        out = torch.roll(out, shifts=(shifts[0], shifts[1]), dims=(1, 2))
    return out[:, :h, :w, :].contiguous()


def patch_merge(x: torch.Tensor) -> torch.Tensor:
    """N x H x W x C to N x ceil(H/2) x ceil(W/2) x 4C: odd sizes padded with a zero row or
    column, then each 2x2 neighbourhood's pixels concatenated on channels in the order
    (top-left, bottom-left, top-right, bottom-right), as torchvision's Swin."""
    h, w = x.shape[-3], x.shape[-2]
    x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
    return torch.cat([x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]], -1)


# torch.fx records these as calls (their shapes and branches depend on the input's size)
torch.fx.wrap("window_attention")
torch.fx.wrap("patch_merge")


class WindowAttention(nn.Module):
    """Swin's shifted-window multi-head self-attention with relative position bias, on an
    N x H x W x C batch, with torchvision's ``ShiftedWindowAttention`` keys (``qkv``,
    ``proj``, ``relative_position_bias_table``, ``relative_position_index``) or, with
    ``cosine=True``, ``ShiftedWindowAttentionV2``'s (``logit_scale``, ``cpb_mlp``,
    ``relative_coords_table`` instead of the table): see :func:`window_attention`.

    The relative position index and the V2 coordinates table are computed from the window
    and kept as persistent buffers (they are in the ``state_dict``). Built off the meta
    device, the module starts as PyTorch would start its layers, its own tensors first
    (the table truncated-normal with std 0.02, ``logit_scale`` log 10), then ``qkv``,
    ``proj`` and ``cpb_mlp`` (in V2 the keys' third of ``qkv.bias`` is zero).
    """

    __constants__ = ["cosine"]  # TorchScript compiles only the branches of this module's version

    def __init__(self, dim: int, heads: int, window: list[int], shift: list[int], cosine: bool = False,
                 qkv_bias: bool = True, proj_bias: bool = True, attention_dropout: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide {dim} channels")
        if len(window) != 2 or len(shift) != 2 or any(not 0 <= s < w for s, w in zip(shift, window)):
            raise ValueError(f"window and shift are pairs with 0 <= shift < window, found {window} and {shift}")
        self.heads = heads
        self.window = [int(window[0]), int(window[1])]
        self.shift = [int(shift[0]), int(shift[1])]
        self.cosine = cosine
        self.attention_dropout = attention_dropout
        self.dropout = dropout
        span = (2 * self.window[0] - 1) * (2 * self.window[1] - 1)
        if cosine:
            self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
            self.register_buffer("relative_coords_table", relative_coords_table(self.window))
        else:
            self.relative_position_bias_table = nn.Parameter(torch.empty(span, heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(self.window))
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        if cosine:
            self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, heads, bias=False))
            if self.qkv.bias is not None:
                with torch.no_grad():
                    self.qkv.bias[dim:2 * dim].zero_()

    def position_bias(self) -> torch.Tensor:
        """The relative position bias, ``1 x heads x N x N``: looked up in the learned table
        (V1), or computed by ``cpb_mlp`` from the coordinates table and squashed into
        (0, 16) by ``16 * sigmoid`` (V2)."""
        n = self.window[0] * self.window[1]
        if self.cosine:
            table = self.cpb_mlp(self.relative_coords_table).view(-1, self.heads)
        else:
            table = self.relative_position_bias_table
        bias = table[self.relative_position_index].view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if self.cosine:
            bias = 16 * torch.sigmoid(bias)
        return bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit_scale: Optional[torch.Tensor] = None
        if self.cosine:
            logit_scale = self.logit_scale
        return window_attention(x, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias, self.position_bias(),
                                self.window, self.shift, self.heads, logit_scale, self.attention_dropout, self.dropout,
                                self.training)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, window={self.window}, shift={self.shift}, cosine={self.cosine}"


class PatchMerge(nn.Module):
    """Swin's patch merging without its layers: N x H x W x C to N x ceil(H/2) x ceil(W/2)
    x 4C (:func:`patch_merge`); the norm and the reduction are the spec's own nodes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return patch_merge(x)

