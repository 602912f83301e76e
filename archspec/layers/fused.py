"""The convolution of a model optimised for inference: :class:`FusedConv2d`, an
``nn.Conv2d`` with the activation after it (and a residual sum) fused and, on the CPU, its
weights packed once for oneDNN; :data:`POSTOPS`, the post-ops it applies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import List, Optional

import torch
from torch import nn
from torch.nn import functional as F

from .common import compiling, symbolic_tracing

__all__ = ["FusedConv2d", "POSTOPS"]


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
