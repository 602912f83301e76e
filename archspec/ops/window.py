"""Swin Transformer's ops on channels-last images: ``window_attention`` (shifted-window
multi-head self-attention, V1 and V2) and ``patch_merge`` (2x2 neighbourhoods onto the
channels).

Both read an ``H x W x C`` image per sample (a ``C x H x W`` image is refused: permute it
first). Their modules are :class:`archspec.layers.WindowAttention` and
:class:`archspec.layers.PatchMerge`; the norms and the linear layers around them (the
MLP, patch merging's ``reduction``) are ordinary spec nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from .._values import Bool, Float, Int, Size
from ._common import torch_default
from ._registry import Inferred, OpDef, OpParams, Shape, ShapeError, rank_name, register

#: the hidden width of Swin V2's continuous position bias MLP (torchvision's, fixed)
CPB_HIDDEN = 512

#: the dtypes of window attention's tensors that are not float32 (torchvision's index is int64)
_WINDOW_DTYPES = {"relative_position_index": "int64"}

_PERMUTE = "Swin works on channels-last images: permute the image first ({op: permute, dims: [0, 2, 3, 1]})"


def _need_channels_last(shapes: list[Shape], op: str) -> tuple[int, int, int]:
    shape = shapes[0]
    if len(shape) != 3:
        hint = ("reshape the tokens back into rows and columns first ({op: reshape, shape: [H, W, C]})" if len(shape) == 2 else
                "flat features have no rows and columns; move this node before 'flatten' or the pooling")
        raise ShapeError(f"{op} needs a channels-last image (height x width x channels), but its input is {rank_name(shape)}",
                         expected="an H x W x C input", hint=hint)
    return shape  # type: ignore[return-value]


class WindowAttentionParams(OpParams):
    """Swin's shifted-window multi-head self-attention with relative position bias, on a
    channels-last image ``H x W x C``. One op for V1 and V2, key for key torchvision's
    ``ShiftedWindowAttention`` and ``ShiftedWindowAttentionV2``.

    ``heads`` must divide the channels. The map is split into ``window`` (an integer or
    ``[height, width]``) windows, padded at the bottom and right to a multiple of the
    window; each pixel attends to the pixels of its window. ``shift`` (0, or
    ``window // 2`` in every second block) rolls the map up and left first and masks the
    pairs the roll brought together, so windows cross the previous block's borders; an
    axis the window covers whole is not shifted. A window larger than the map, or a shift
    not smaller than the window, is refused. ``cosine: true`` is V2: cosine similarity
    scaled by a learned, clamped ``logit_scale``, a position bias computed by a small MLP
    (``cpb_mlp``) from log-spaced relative coordinates, and no bias for the keys.
    ``qkv_bias`` and ``proj_bias`` give the input and output projections a bias;
    ``attention_dropout`` drops attention weights, ``dropout`` the output, in training.
    MACs: the projections and attention's two products (over the padded map)."""

    heads: Annotated[Any, Int(ge=1)]
    window: Annotated[Any, Size()] = 7
    shift: Annotated[Any, Size(ge=0)] = 0
    cosine: Annotated[Any, Bool()] = False
    qkv_bias: Annotated[Any, Bool()] = True
    proj_bias: Annotated[Any, Bool()] = True
    attention_dropout: Annotated[Any, Float(ge=0, le=1)] = 0.0
    dropout: Annotated[Any, Float(ge=0, le=1)] = 0.0


def _window_shape(p: WindowAttentionParams, shapes: list[Shape], names: list[str]) -> Inferred:
    h, w, c = _need_channels_last(shapes, "window_attention")
    (wh, ww), (sh, sw) = p.window, p.shift
    if c % p.heads:
        divisors = [d for d in range(1, c + 1) if c % d == 0]
        raise ShapeError(f"{p.heads} heads do not divide the {c} channels", param="heads",
                         expected=f"a divisor of {c} ({', '.join(map(str, divisors[:12]))}{', ...' if len(divisors) > 12 else ''})")
    if wh > h or ww > w:
        raise ShapeError(f"the {wh}x{ww} window is larger than the {h}x{w} map", param="window",
                         expected=f"a window of at most {h}x{w}",
                         hint="a window larger than the map would attend to its zero padding; use a smaller window or a "
                              "larger input")
    if sh >= wh or sw >= ww:
        raise ShapeError(f"the shift {sh}x{sw} is not smaller than the {wh}x{ww} window", param="shift",
                         expected=f"a shift below {wh}x{ww}: 0, or half the window ({wh // 2}x{ww // 2})")
    n = wh * ww
    span = (2 * wh - 1) * (2 * ww - 1)
    tokens = -(-h // wh) * wh * (-(-w // ww) * ww)  # over the padded map
    params: dict[str, Shape] = {}
    buffers: dict[str, Shape] = {}
    if p.cosine:
        params["logit_scale"] = (p.heads, 1, 1)
        buffers["relative_coords_table"] = (1, 2 * wh - 1, 2 * ww - 1, 2)
    else:
        params["relative_position_bias_table"] = (span, p.heads)
    buffers["relative_position_index"] = (n * n,)
    params["qkv.weight"] = (3 * c, c)
    if p.qkv_bias:
        params["qkv.bias"] = (3 * c,)
    params["proj.weight"] = (c, c)
    if p.proj_bias:
        params["proj.bias"] = (c,)
    macs = tokens * c * 3 * c + 2 * tokens * n * c + tokens * c * c  # qkv, q @ k^T and attn @ v, proj
    if p.cosine:
        params.update({"cpb_mlp.0.weight": (CPB_HIDDEN, 2), "cpb_mlp.0.bias": (CPB_HIDDEN,), "cpb_mlp.2.weight": (p.heads, CPB_HIDDEN)})
        macs += span * (2 * CPB_HIDDEN + CPB_HIDDEN * p.heads)
    return Inferred((h, w, c), params=params, buffers=buffers, macs=macs, dtypes=_WINDOW_DTYPES)


def _window_build(p: WindowAttentionParams, shapes: list[Shape], inplace: bool):
    from ..layers import WindowAttention

    return WindowAttention(shapes[0][-1], p.heads, list(p.window), list(p.shift), cosine=p.cosine, qkv_bias=p.qkv_bias,
                           proj_bias=p.proj_bias, attention_dropout=p.attention_dropout, dropout=p.dropout)


@dataclass(frozen=True)
class Computed:
    """A tensor's start that is computed, not drawn: ``init_tensor`` calls it with the
    tensor to fill (:func:`archspec.layers.relative_position_index` or
    :func:`~archspec.layers.relative_coords_table` of the window)."""

    what: str
    window: tuple[int, int]

    def __call__(self, tensor: Any) -> None:
        from .. import layers

        tensor.copy_(getattr(layers, self.what)(list(self.window)))


@dataclass(frozen=True)
class KeyBiasZero:
    """V2's ``qkv.bias`` start: PyTorch's uniform draw within ``bound``, then the keys'
    third zeroed (as the module's constructor leaves it)."""

    bound: float

    def __call__(self, tensor: Any) -> None:
        tensor.uniform_(-self.bound, self.bound)
        third = tensor.shape[0] // 3
        tensor[third:2 * third].zero_()


def _window_defaults(p: WindowAttentionParams, shapes: list[Shape]) -> dict[str, Any]:
    """The module's own start, in its ``state_dict`` order: its tensors (the bias table, or
    V2's logit scale and coordinates table; the index), then ``qkv``, ``proj`` and
    ``cpb_mlp`` as PyTorch starts a ``Linear``."""
    c = shapes[0][-1]
    window = tuple(p.window)
    out: dict[str, Any] = {}
    if p.cosine:
        out["logit_scale"] = math.log(10.0)
        out["relative_coords_table"] = Computed("relative_coords_table", window)
    else:
        out["relative_position_bias_table"] = {"fn": "trunc_normal", "std": 0.02}
    out["relative_position_index"] = Computed("relative_position_index", window)
    out.update({f"qkv.{k}": v for k, v in torch_default(c, p.qkv_bias).items()})
    if p.cosine and p.qkv_bias:
        out["qkv.bias"] = KeyBiasZero(1 / math.sqrt(c))
    out.update({f"proj.{k}": v for k, v in torch_default(c, p.proj_bias).items()})
    if p.cosine:
        out.update({f"cpb_mlp.0.{k}": v for k, v in torch_default(2, True).items()})
        out.update({f"cpb_mlp.2.{k}": v for k, v in torch_default(CPB_HIDDEN, False).items()})
    return out


register(OpDef("window_attention", WindowAttentionParams, _window_shape, WindowAttentionParams.__doc__ or "",
               build=_window_build, last_dim=True, image_hint=_PERMUTE, defaults=_window_defaults))


class PatchMergeParams(OpParams):
    """Swin's patch merging without its layers: a channels-last image ``H x W x C`` becomes
    ``ceil(H/2) x ceil(W/2) x 4C``, an odd height or width padded with a row or column of
    zeros, each 2x2 neighbourhood's pixels concatenated on channels in torchvision's order
    (top-left, bottom-left, top-right, bottom-right). The norm and the ``reduction``
    linear layer (``4C -> 2C``, no bias) are the spec's own nodes around it."""


def _merge_shape(p: PatchMergeParams, shapes: list[Shape], names: list[str]) -> Inferred:
    h, w, c = _need_channels_last(shapes, "patch_merge")
    return Inferred((-(-h // 2), -(-w // 2), 4 * c))


def _merge_build(p: PatchMergeParams, shapes: list[Shape], inplace: bool):
    from ..layers import PatchMerge

    return PatchMerge()


register(OpDef("patch_merge", PatchMergeParams, _merge_shape, PatchMergeParams.__doc__ or "", build=_merge_build,
               category="reshape", last_dim=True, image_hint=_PERMUTE))
