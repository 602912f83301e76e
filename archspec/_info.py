"""What a compiled model knows about itself: :class:`ModelInfo`, :class:`Recipe`, :class:`Optimized`.

*lower* writes a :class:`ModelInfo` onto every :class:`~archspec._module.ArchModule`
(``model._archspec_info``) from the inferred graph; the compiler adds the
:class:`Recipe` (the call that made the model, so that ``variant()`` can make it again
with other parameters) and :mod:`._optimize` the :class:`Optimized` counts. The module's
properties (``spec_name``, ``output_names``, ``num_features``, ``loss_weights``), the
checkpoint loader (``checkpoint_keys``) and ``variant()`` read it.

The records are frozen: a stage that adds to them makes a new one
(``dataclasses.replace``), so a model copied before the change keeps what it had. They
pickle, deep-copy and ``torch.save`` with the model; TorchScript and ``torch.export`` do
not see them (the generated forward reads none of them).

What it deliberately does not do: import torch, the compiler or any stage. It is plain
data; the :class:`Recipe` holds the function to call rather than naming a module to
import, so the runtime layer recompiles without importing the compiler.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ._limits import Limits

__all__ = ["ModelInfo", "Optimized", "Recipe", "saved_info"]


@dataclass(frozen=True)
class Recipe:
    """How a model was compiled: ``compile(path, params=params, input_shape=...,
    limits=..., checkpoint=...)``. ``compile`` is the compiler's entry point
    (``compile_spec``); it is kept here, not imported by the runtime, so that the module
    layer (``ArchModule.variant``) calls back into the compiler without importing it: the
    compiler, which sits above the runtime, hands down the function it owns, and a model
    unpickled in another process finds it again by its qualified name."""

    compile: Callable[..., Any]
    path: str | os.PathLike[str]
    params: Mapping[str, Any]
    input_shape: Sequence[int] | None
    limits: Limits | None
    checkpoint: Sequence[str] | None

    def again(self, overrides: Mapping[str, Any], **options: Any) -> Any:
        """The same compilation with ``overrides`` on top of the parameters; ``options``
        are further keyword arguments of ``compile`` (``weights=``, ``strict=``, ``device=``)."""
        return self.compile(self.path, params={**self.params, **overrides}, input_shape=self.input_shape,
                            limits=self.limits, checkpoint=self.checkpoint, **options)


@dataclass(frozen=True)
class Optimized:
    """What ``optimize="inference"`` did (:mod:`._optimize`): batch norms folded into the
    layer before them, activations fused into convolutions, residual adds fused into the
    convolution before them, eval no-ops dropped, and whether the weights are channels-last."""

    folded: int
    fused: int
    residual: int
    dropped: int
    channels_last: bool


@dataclass(frozen=True)
class ModelInfo:
    """A compiled model's metadata, from its inferred graph (see the module docstring)."""

    name: str  #: the spec's name
    type_name: str  #: the name of the outputs' named tuple (``ResNetOutputs``)
    outputs: list[tuple[str, bool]]  #: each output's name and whether it is training-only, in order
    loss_weights: dict[str, float]  #: each output's weight in ``model.loss()``
    input_shape: list[int]  #: the input the shapes were inferred for, ``(C, H, W)``
    taps: bool  #: outputs were asked for by path (``outputs=``): the forward returns their values by path
    source: str  #: the spec file, as the graph names it
    checkpoint_keys: list[tuple[str, str]]  #: (regex, replacement) rules for foreign checkpoints
    classifier: tuple[str, int] | None  #: the classifier layer's path and the features it reads
    #: the containers the eval forward runs inline (their nodes in the model's forward, see _codegen)
    eval_inlined: list[str] = field(default_factory=list)
    recipe: Recipe | None = None  #: how to compile it again (set by compile_spec)
    optimized: Optimized | None = None  #: what optimize="inference" did, None when it was not optimised
    returns: str = "tuple"  #: the spec's ``returns``: "dict" makes the forward return an OrderedDict by output name


def saved_info(value: ModelInfo | Mapping[str, Any]) -> ModelInfo:
    """The :class:`ModelInfo` of a model being unpickled: ``value`` itself, or the plain dict
    that archspec 0.1 before these records kept (a model ``torch.save``'d by it). Such a
    dict's recipe named no compile function, so the model it gives cannot make
    ``variant()``s (it says so); everything else it knew carries over."""
    if isinstance(value, ModelInfo):
        return value
    known = {f.name for f in fields(ModelInfo)} - {"recipe", "optimized"}
    optimized = value.get("optimized")
    return ModelInfo(**{k: v for k, v in value.items() if k in known},
                     optimized=Optimized(**optimized) if optimized else None)
