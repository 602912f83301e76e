"""Activations: element-wise functions that keep their input's shape.

``relu``, ``relu6``, ``hardswish``, ``hardsigmoid``, ``silu``, ``leaky_relu``, ``elu``
and ``mish`` take ``inplace``: ``auto`` (the default) overwrites the input only where the
in-place plan finds nothing else reads it, ``true`` insists (an error where unsafe),
``false`` never. ``sigmoid``, ``tanh``, ``gelu``, ``softplus`` and ``softmax`` have no
in-place form in torch.

``saves_output`` marks the activations whose backward reads their own output (relu,
sigmoid, tanh, softmax; leaky_relu and elu when run in place): nothing after them may
overwrite it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from .._values import Choice, Float, Int
from ._common import InplaceValue, same_shape, torch_dim
from ._registry import Inferred, OpDef, OpParams, Shape, register


class _InplaceParams(OpParams):
    inplace: Annotated[Any, InplaceValue()] = "auto"


def _activation(name: str, params: type[OpParams], make: Callable[[Any, bool], Any], *, inplace: bool,
                saves_output: bool, infer=same_shape, inplace_refused=None,
                postop: tuple[str, tuple[float, ...]] | None = None) -> None:
    def build(p: Any, shapes: list[Shape], use_inplace: bool):
        return make(p, use_inplace)

    register(OpDef(name, params, infer, params.__doc__ or "", build=build, inplace=inplace, saves_output=saves_output,
                   category="activation", inplace_refused=inplace_refused, shapeless=True, fused_postop=postop))


def _negative(field: str):
    def refused(p: Any) -> str | None:
        if getattr(p, field) < 0:
            return f"torch has no in-place backward for {field} {getattr(p, field)} (below 0)"
        return None

    return refused


def _nn(cls_name: str, **fixed: Any) -> Callable[[Any, bool], Any]:
    """A builder for ``torch.nn.<cls_name>``, with ``inplace`` where the op has it."""

    def make(p: Any, use_inplace: bool) -> Any:
        import torch.nn as nn

        kwargs = {k: getattr(p, k) for k in fixed}
        if "inplace" in type(p).model_fields:
            kwargs["inplace"] = use_inplace
        return getattr(nn, cls_name)(**kwargs)

    return make


class ReLUParams(_InplaceParams):
    """Rectified linear unit, max(x, 0). ``inplace: auto`` (the default) overwrites the
    input only where nothing else reads it; ``true`` insists (an error where unsafe),
    ``false`` never."""


class ReLU6Params(_InplaceParams):
    """ReLU capped at 6, min(max(x, 0), 6) (MobileNetV2)."""


class HardswishParams(_InplaceParams):
    """x * relu6(x + 3) / 6 (MobileNetV3)."""


class HardsigmoidParams(_InplaceParams):
    """relu6(x + 3) / 6, a cheap sigmoid (MobileNetV3's squeeze-and-excitation gate)."""


class SiLUParams(_InplaceParams):
    """x * sigmoid(x), also called swish (EfficientNet)."""


class MishParams(_InplaceParams):
    """x * tanh(softplus(x))."""


class LeakyReLUParams(_InplaceParams):
    """max(x, 0) + negative_slope * min(x, 0)."""

    negative_slope: Annotated[Any, Float()] = 0.01


class ELUParams(_InplaceParams):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""

    alpha: Annotated[Any, Float()] = 1.0


class SigmoidParams(OpParams):
    """1 / (1 + exp(-x)) (squeeze-and-excitation gates)."""


class TanhParams(OpParams):
    """The hyperbolic tangent."""


class GELUParams(OpParams):
    """Gaussian error linear unit (ConvNeXt, transformers); ``approximate: tanh`` uses the
    tanh approximation."""

    approximate: Annotated[Any, Choice("none", "tanh")] = "none"


class SoftplusParams(OpParams):
    """log(1 + exp(beta * x)) / beta, linear above ``threshold``."""

    beta: Annotated[Any, Float(gt=0)] = 1.0
    threshold: Annotated[Any, Float()] = 20.0


class SoftmaxParams(OpParams):
    """Softmax over ``dim`` (counted as torch counts it, the batch being 0; -1 is the last),
    so ``dim: 1`` is over the channels of an image or the classes of flat logits."""

    dim: Annotated[Any, Int()] = -1


def _softmax_shape(p: SoftmaxParams, shapes: list[Shape], names: list[str]) -> Inferred:
    torch_dim(p.dim, len(shapes[0]), "softmax")
    return Inferred(shapes[0])


_activation("relu", ReLUParams, _nn("ReLU"), inplace=True, saves_output=True, postop=("relu", ()))
_activation("relu6", ReLU6Params, _nn("ReLU6"), inplace=True, saves_output=False, postop=("hardtanh", (0.0, 6.0)))
_activation("hardswish", HardswishParams, _nn("Hardswish"), inplace=True, saves_output=False,
            postop=("hardswish", ()))
_activation("hardsigmoid", HardsigmoidParams, _nn("Hardsigmoid"), inplace=True, saves_output=False)
_activation("silu", SiLUParams, _nn("SiLU"), inplace=True, saves_output=False, postop=("swish", ()))
_activation("mish", MishParams, _nn("Mish"), inplace=True, saves_output=False)
_activation("leaky_relu", LeakyReLUParams, _nn("LeakyReLU", negative_slope=None), inplace=True, saves_output=True,
            inplace_refused=_negative("negative_slope"))
_activation("elu", ELUParams, _nn("ELU", alpha=None), inplace=True, saves_output=True, inplace_refused=_negative("alpha"))
_activation("sigmoid", SigmoidParams, _nn("Sigmoid"), inplace=False, saves_output=True)
_activation("tanh", TanhParams, _nn("Tanh"), inplace=False, saves_output=True)
_activation("gelu", GELUParams, _nn("GELU", approximate=None), inplace=False, saves_output=False)
_activation("softplus", SoftplusParams, _nn("Softplus", beta=None, threshold=None), inplace=False, saves_output=False)
_activation("softmax", SoftmaxParams, _nn("Softmax", dim=None), inplace=False, saves_output=True, infer=_softmax_shape)
