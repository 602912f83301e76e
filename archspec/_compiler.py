"""The pipeline, chained in one place: load -> validate -> resolve -> infer -> lower.

``load_spec`` runs the first four stages (no torch needed) and returns the inferred IR
graph; ``compile_spec`` adds *lower* and returns the ``nn.Module``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._errors import Loc, SpecLimitError, did_you_mean
from ._infer import infer
from ._info import Recipe
from ._ir import Graph, is_meta, needed
from ._limits import DEFAULT_LIMITS, Limits
from ._load import display_path, load_document
from ._resolve import resolve
from ._schema import validate

if TYPE_CHECKING:  # pragma: no cover
    from ._module import ArchModule

__all__ = ["load_spec", "compile_spec", "build_model"]


def load_spec(
    path: str | os.PathLike[str],
    *,
    params: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    outputs: Sequence[str] | None = None,
    checkpoint: Sequence[str] | None = None,
    limits: Limits | None = None,
    **overrides: Any,
) -> Graph:
    """Load, validate, resolve and infer a spec: the IR :class:`Graph`, with shapes and costs.

    ``path`` is a spec file (``"specs/resnet/resnet50.yaml"``, a ``Path``) or the name of a
    bundled spec (``"resnet50"``, ``"resnet/resnet50"``, ``"archspec:resnet50"``), found
    wherever archspec is installed. A string is a name when it is ``archspec:NAME``, or
    when nothing exists at that path and it has no ``.yaml``/``.yml`` suffix (and, if it
    has a ``/``, is a bundled name); a ``Path`` is always a file. An unknown name is a
    :class:`SpecReferenceError` that lists the nearest bundled names; a missing file is one
    that says so. ``archspec list`` lists the bundled specs.

    ``params`` and keyword arguments override the spec's ``params`` (``num_classes=10``);
    ``input_shape`` (``(C, H, W)``) replaces the spec's ``input``; ``outputs`` (node or
    block paths) replaces the spec's outputs with those nodes' values. ``checkpoint``
    (block names, or container paths with shell wildcards: ``["dense_layer"]``,
    ``["features.denseblock*"]``) marks containers for activation checkpointing, beside
    those the spec marks with ``checkpoint: true``. Raises a
    :class:`SpecError` for any mistake in the spec. Needs no torch and allocates no weights.
    """
    limits = limits or DEFAULT_LIMITS
    if isinstance(outputs, str):
        outputs = [outputs]
    try:
        doc = load_document(path, limits)
        spec = validate(doc)
        both = sorted(set(params or {}) & set(overrides))
        if both:
            raise TypeError(f"parameter {both[0]!r} is given twice, in params= and as a keyword argument")
        merged = dict(params or {})
        merged.update(overrides)
        graph = resolve(doc, spec, merged, tuple(input_shape) if isinstance(input_shape, (list, tuple)) else input_shape,
                        limits, outputs=list(outputs) if outputs is not None else None)
        if checkpoint is not None:
            mark_checkpoints(graph, [checkpoint] if isinstance(checkpoint, str) else list(checkpoint))
        return infer(graph, limits)
    except RecursionError:  # the limits keep specs far from this; a last line of defence
        raise SpecLimitError("the spec nests too deeply to process (see Limits.max_nesting and Limits.max_yaml_depth)",
                             Loc(display_path(path), 1, 1)) from None


def mark_checkpoints(graph: Graph, patterns: list[str]) -> None:
    """Mark the containers that ``patterns`` name (a block's name, or a container path with
    shell wildcards) for activation checkpointing; a pattern that names none is an error."""
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(f"checkpoint= takes block names or container paths, not {pattern!r}")
        hits = [c for c in graph.containers.values() if c.block == pattern or fnmatch.fnmatchcase(c.path, pattern)]
        if not hits:
            blocks = sorted({c.block for c in graph.containers.values() if c.block})
            hint = did_you_mean(pattern, blocks + list(graph.containers))
            raise ValueError(f"checkpoint={pattern!r} names no block or container of {graph.name} "
                             f"(blocks: {', '.join(blocks) or 'none'}; or a container path, wildcards allowed)"
                             + (f"; {hint}" if hint else ""))
        for c in hits:
            c.checkpoint = True


def compile_spec(
    path: str | os.PathLike[str],
    *,
    params: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    outputs: Sequence[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    strict: bool = True,
    init: bool = True,
    device: Any = None,
    optimize: str | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    checkpoint: Sequence[str] | None = None,
    limits: Limits | None = None,
    **overrides: Any,
) -> ArchModule:
    """Compile a spec into a ``torch.nn.Module`` (an :class:`ArchModule`).

    ``path`` is a spec file or a bundled spec's name, as for :func:`load_spec`:
    ``compile_spec("densenet121")`` builds the bundled DenseNet-121 wherever archspec is
    installed, ``compile_spec("specs/densenet121.yaml")`` the file.

    ``compile_spec("googlenet", num_classes=10, aux_logits=False)`` overrides
    spec parameters; ``input_shape`` sets the input the shapes are inferred for (the
    module then expects that size wherever the network's layers depend on it);
    ``init=False`` skips the spec's ``init:`` rules (PyTorch's defaults remain);
    ``device`` is where the parameters are created (``"meta"``: no memory at all).

    ``outputs=["features.denseblock2", ...]`` makes the forward return a dict of those
    nodes' values, by path (a feature extractor; the rest of the module tree stays, so
    checkpoints of the whole network still load). ``weights`` loads a checkpoint
    (``strict=False``: what fits; the report is ``model.load_report``, and is logged).

    ``optimize="inference"`` returns an eval-only model with batch norm folded into the
    layer before it, eval no-ops dropped and channels-last weights where there are
    convolutions (:mod:`archspec._optimize`); ``optimize="compiled"`` also wraps it in
    ``torch.compile``. Weights load before folding.

    ``features_only=True`` returns a backbone, as timm's: its forward returns the list of
    the feature maps at each stride (``out_indices``: which of them, by position), found
    statically (:mod:`archspec._features`), and ``model.feature_info`` says their channels,
    reductions and module names; the modules after them are dropped once ``weights``
    (of the whole network) are loaded.

    ``checkpoint=["dense_layer"]`` (block names, or container paths with wildcards) adds
    activation checkpointing to those containers in train mode (recomputing their
    activations in the backward pass), beside what the spec marks ``checkpoint: true``.

    Every compiled model has ``model.num_features`` (what its classifier reads) and
    ``model.variant(num_classes=10)`` (the same spec with other parameters, carrying over
    every weight that still fits).
    """
    if features_only:
        return _backbone(path, params, input_shape, outputs, weights, strict, init, device, optimize, out_indices, limits,
                         overrides, checkpoint)
    if out_indices is not None:
        raise TypeError("out_indices= selects feature maps: it needs features_only=True")
    graph = load_spec(path, params=params, input_shape=input_shape, outputs=outputs, checkpoint=checkpoint, limits=limits,
                      **overrides)
    model = build_model(graph, weights=weights, strict=strict, init=init, device=device)
    recipe = Recipe(compile=compile_spec, path=path, params={**(params or {}), **overrides}, input_shape=input_shape,
                    limits=limits, checkpoint=checkpoint)
    model._archspec_info = replace(model._archspec_info, recipe=recipe)
    if optimize is not None:
        from ._optimize import optimize as optimized

        return optimized(model, graph, optimize)
    return model


def _backbone(path, params, input_shape, outputs, weights, strict, init, device, optimize, out_indices, limits,
              overrides, checkpoint) -> ArchModule:
    """``compile_spec(..., features_only=True)``: the feature maps' network."""
    from ._features import FeatureInfo, feature_maps, select
    from ._module import pruned

    if outputs is not None or optimize is not None:
        raise TypeError("features_only=True chooses the outputs itself and is not optimised: drop outputs= and optimize=")
    base = load_spec(path, params=params, input_shape=input_shape, limits=limits, **overrides)
    features = select(feature_maps(base), out_indices, base.name)
    graph = load_spec(path, params=params, input_shape=input_shape, limits=limits,
                      outputs=[f.module for f in features], checkpoint=checkpoint, **overrides)
    graph.tap_list = True
    model = build_model(graph, weights=weights, strict=strict, init=init, device=device)
    model._modules = pruned(model, set(needed(graph, training=True)))  # the weights are in: drop the head
    model.feature_info = FeatureInfo(features)
    return model


def build_model(graph: Graph, *, weights: str | os.PathLike[str] | None = None, strict: bool = True, init: bool = True,
                device: Any = None) -> ArchModule:
    """The module of an inferred graph, its tensors filled once each.

    Without ``weights``, every tensor starts from the spec's ``init:`` rules or its op's
    default. With ``weights``, the module is built on the meta device and the checkpoint's
    tensors are put in place as they are (no filling first); with ``strict=False`` only
    the tensors the checkpoint does not cover are then initialised.
    """
    from ._initialize import init_plan, materialize
    from ._lower import lower

    if weights is None:
        return lower(graph, init=init, device=device)
    model = lower(graph, init=False, materialize=False)
    from ._weights import load_weights

    model.load_report = load_weights(model, weights, strict=strict, device=device)
    if not is_meta(device):
        materialize(model, init_plan(graph, rules=init and not strict), device)
    return model
