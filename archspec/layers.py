"""The few ``torch.nn`` modules archspec's ops need that torch itself lacks.

- :class:`LayerNorm2d`: layer normalisation over the channels of an N x C x H x W batch
  at every position (ConvNeXt's), with ``torch.nn.LayerNorm``'s weights and keys;
- :class:`StochasticDepth`: drops a residual branch per sample (or per batch) in training;
- :class:`SelfAttention`: ``torch.nn.MultiheadAttention`` (its keys, its initialisation)
  attending a batch of token sequences to itself, called with one tensor;
- :class:`WindowAttention` and :class:`PatchMerge`: Swin's shifted-window attention (V1
  and V2) and patch merging, on channels-last (N x H x W x C) batches;
- :class:`FusedConv2d`: a model optimised for inference's ``nn.Conv2d``, with the
  activation after it fused and, on the CPU, its weights packed once for oneDNN.

They are ordinary modules: picklable, TorchScript-able and traceable by ``torch.fx``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import List, Optional

import torch
import torch.fx
from torch import nn
from torch.nn import functional as F

__all__ = ["FusedConv2d", "LayerNorm2d", "StochasticDepth", "SelfAttention", "self_attention", "WindowAttention", "PatchMerge",
           "window_attention", "patch_merge", "relative_position_index", "relative_coords_table"]


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


#: the post-ops of oneDNN's convolution that :class:`FusedConv2d` applies (an op names the
#: one that computes it in its ``OpDef.fused_postop``), with the number of scalars each takes
POSTOPS = {"relu": 0, "hardtanh": 2, "swish": 0, "hardswish": 0}
#: what a FusedConv2d saved before it kept oneDNN's post-op held instead: its op's name
_SAVED_BY_OP = {"relu6": ("hardtanh", [0.0, 6.0]), "silu": ("swish", [])}


def _stamp(weight: torch.Tensor) -> tuple:
    """What tells a weight's values changed: the tensor; its memory (held, so that no
    other tensor gets the same address while the stamp lives); the count of in-place
    writes torch keeps (an inference-mode tensor keeps none: changed only in inference
    mode, in place, it looks the same)."""
    return weight, weight.detach(), weight.data_ptr(), -1 if weight.is_inference() else weight._version


def _autocast() -> bool:
    check = getattr(torch, "is_autocast_enabled", None)
    try:
        return bool(check("cpu"))  # torch >= 2.4
    except TypeError:
        return torch.is_autocast_cpu_enabled()


def _postop(y: torch.Tensor, postop: str, scalars: List[float], inplace: bool) -> torch.Tensor:
    """oneDNN's post-op ``postop`` applied by torch (``relu``, ``hardtanh`` between its two
    scalars, ``swish`` (SiLU), ``hardswish``): the same values the fused kernel gives."""
    if postop == "relu":
        return torch.relu_(y) if inplace else torch.relu(y)
    if postop == "hardtanh":
        return F.hardtanh(y, scalars[0], scalars[1], inplace)
    if postop == "swish":
        return F.silu(y, inplace)
    return F.hardswish(y, inplace)


def _onednn() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise") \
            and hasattr(torch._C._nn, "mkldnn_reorder_conv2d_weight") and hasattr(torch._C, "_get_mkldnn_enabled")
    except (AttributeError, RuntimeError):
        return False


class FusedConv2d(nn.Conv2d):
    """The ``nn.Conv2d`` of a model optimised for inference (``optimize="inference"``): the
    same parameters and keys, computing ``activation(conv(x) + other)``: a residual
    ``other`` where ``residual`` is true (the sum's other operand, of the output's shape),
    then ``activation``, one of oneDNN's post-ops (:data:`POSTOPS`) with its ``scalars``,
    or ``None``.

    On the CPU, in float32 and without gradients, it calls oneDNN's convolution with the
    sum and the activation applied in the kernel (after a sum oneDNN applies relu only; the
    others then run in place), on the weight packed once, per input
    size, into the blocked layout oneDNN reads (torch's own ``conv2d`` reorders the weight
    at every call): ResNet-50 at batch 2 on 2 cores runs in about 0.8x the time it takes
    with ``conv2d`` (``bench/compare.py``). The layout oneDNN picks depends on the input's
    size (a batch of 1 differs from a batch of 2), so packs are kept for up to
    :attr:`MAX_PACKS` sizes. Other devices and dtypes, gradients, TorchScript,
    ``torch.fx``, ``torch.compile`` and ``torch.export`` run ``conv2d``, the sum and the
    activation as torch ops. A weight changed after packing (in place, or replaced:
    ``load_state_dict``, ``.to()``, ``.data = ...``) is packed again at the next call; a
    change torch does not count (in place through ``.data``, or in inference mode) needs
    :meth:`clear_packs`. Packs are a cache,
    never saved: ``state_dict``, pickling and copying leave them out. Each is a second copy
    of the weight (ResNet-50's convs: 89 MiB per input size).
    """

    MAX_PACKS = 4
    __jit_ignored_attributes__ = ["_packs", "_packed_from"]
    # types, not strings: TorchScript reads them
    __annotations__ = {"activation": Optional[str], "scalars": List[float], "residual": bool}

    @classmethod
    def fuse(cls, conv: nn.Conv2d, postop: Optional[tuple[str, Sequence[float]]] = None,
             residual: bool = False) -> FusedConv2d:
        """``conv`` itself, now a :class:`FusedConv2d` (its parameters, hooks and place in
        the model kept) that applies ``postop`` (oneDNN's name and scalars, as an op's
        ``OpDef.fused_postop`` gives them; ``None``: no activation)."""
        if type(conv) is not nn.Conv2d:
            raise TypeError(f"only an nn.Conv2d is fused, not {type(conv).__name__}")
        name, scalars = postop if postop is not None else (None, ())
        if name is not None and (name not in POSTOPS or len(scalars) != POSTOPS[name]):
            raise ValueError(f"the post-op is one of {', '.join(f'{k} ({n} scalars)' for k, n in POSTOPS.items())} "
                             f"or None, not {postop!r}")
        conv.__class__ = cls
        conv.activation = name
        conv.scalars = [float(s) for s in scalars]
        conv.residual = residual
        conv._packs = {}
        conv._packed_from = None
        return conv

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_packs"], state["_packed_from"] = {}, None
        return state

    def __setstate__(self, state: dict) -> None:
        if "scalars" not in state:  # saved when the activation was kept by its op's name
            name, scalars = _SAVED_BY_OP.get(state["activation"], (state["activation"], []))
            state = {**state, "activation": name, "scalars": scalars}
        super().__setstate__(state)

    def clear_packs(self) -> None:
        """Forget the packed weights: the next call packs the weight again. Needed only
        after changing the weight where torch does not count it (through ``.data``)."""
        self._packs.clear()
        self._packed_from = None

    def extra_repr(self) -> str:
        return super().extra_repr() + (", residual=True" if self.residual else "") + (
            f", activation={self.activation}" + (f"{tuple(self.scalars)}" if self.scalars else "") if self.activation else "")

    def forward(self, x: torch.Tensor, other: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.residual != (other is not None):
            raise TypeError("a FusedConv2d is called with a residual exactly when it has residual=True")
        if not torch.jit.is_scripting():  # TorchScript compiles nothing of this branch
            if self._packable(x, other):
                return self._packed_forward(x, other)
        y = self._conv_forward(x, self.weight, self.bias)
        if other is not None:
            y = y + other
        activation = self.activation
        if activation is not None:
            y = _postop(y, activation, self.scalars, False)
        return y

    def _packable(self, x: torch.Tensor, other: Optional[torch.Tensor]) -> bool:
        if torch.jit.is_tracing() or symbolic_tracing() or compiling() or not isinstance(self.padding, tuple) \
                or self.padding_mode != "zeros" or _autocast():
            return False
        if x.device.type != "cpu" or x.dtype != torch.float32 or self.weight.dtype != torch.float32 or x.dim() != 4:
            return False
        if other is not None and (other.dtype != torch.float32 or other.dim() != 4):
            return False  # oneDNN adds a batch of the output's shape, without broadcasting
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, other, self.weight, self.bias)):
            return False  # oneDNN's fused kernel has no backward
        return _ONEDNN and torch._C._get_mkldnn_enabled()  # torch.backends.mkldnn.flags(enabled=False) turns it off

    def _packed_forward(self, x: torch.Tensor, other: Optional[torch.Tensor]) -> torch.Tensor:
        weight, key = self.weight, tuple(x.shape)
        stamp = _stamp(weight)
        if self._packed_from is None or self._packed_from[0] is not weight or self._packed_from[2:] != stamp[2:]:
            self._packs.clear()  # never packed, or the weight changed since: every pack is stale
            self._packed_from = stamp
        packed = self._packs.get(key)
        if packed is None and len(self._packs) < self.MAX_PACKS:
            with torch.no_grad():
                packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                    weight.detach().contiguous().to_mkldnn(), list(self.padding), list(self.stride), list(self.dilation),
                    self.groups, list(key))
            self._packs[key] = packed
        if packed is None:  # sizes enough packed already: the plain weight
            packed = weight
        args = (list(self.padding), list(self.stride), list(self.dilation), self.groups)
        attr, scalars = self.activation, self.scalars
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, packed, self.bias, *args, attr or "none", scalars, "")
        if self.activation in (None, "relu"):  # the only activation oneDNN applies after a sum
            return torch.ops.mkldnn._convolution_pointwise.binary(x, other, packed, self.bias, *args, "add", None, attr,
                                                                  scalars, "")
        y = torch.ops.mkldnn._convolution_pointwise.binary(x, other, packed, self.bias, *args, "add", None, None, [], "")
        return _postop(y, self.activation, self.scalars, True)


_ONEDNN = _onednn()
