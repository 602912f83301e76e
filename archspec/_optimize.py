"""Optimising a compiled model for inference: ``compile_spec(path, optimize="inference")``.

What it does, all decided statically from the inferred IR:

- **folds batch norm** (and frozen batch norm) into the conv2d, conv_transpose2d or linear
  before it (the layer a norm's ``OpDef.folds_into`` names, or one whose ``takes_fold``
  names the norm), where the batch norm reads that layer's output and nothing else does
  (the layer is not an output either), and the batch norm uses running statistics:
  ``w' = w * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta``, computed in
  float64, along the weight's output channels (``OpDef.fold_dim``: dimension 1 of a
  transposed convolution's, group by group). The batch norm's module is removed; the layer
  gains a bias where it had none;
- **fuses an activation into the conv2d before it** (relu, relu6, silu, hardswish), where
  the activation reads the conv's value (after folding) and nothing else does; every conv2d
  left becomes a :class:`~archspec.layers.FusedConv2d` (the same parameters and keys),
  which on the CPU in float32 runs oneDNN's convolution on weights packed once per input
  size, instead of reordering them at every call;
- **drops what eval mode does not compute**: dropout, stochastic depth and identity nodes
  (their modules are removed, their readers read their input);
- **channels-last**: for image networks with convolutions past the stem (not a
  transformer's patch embedding), the weights and the input are put in channels-last
  memory order (on CPU, torch's convolutions are faster so, and a ConvNeXt block's permute
  to H x W x C costs nothing: see ``bench/compare.py``);
- the result runs the eval graph only (``train()`` refuses), its parameters do not require
  gradients, and what remains keeps the spec's names (``features.0.weight``...).

``optimize="compiled"`` also wraps the result in ``torch.compile``.

Weights load before folding: ``compile_spec(path, weights=..., optimize="inference")``
reads a checkpoint of the unoptimised network, then folds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from . import ops
from ._info import Optimized
from ._ir import INPUT, Graph, needed, readers
from ._module import ArchModule, Block
from .layers import FusedConv2d

__all__ = ["MODES", "fold_plan", "eval_noops", "fuse_plan", "optimize"]

MODES = ("inference", "compiled")


def fold_plan(graph: Graph) -> dict[str, str]:
    """Batch norms of the eval graph that fold into the layer they read: {bn: layer}."""
    paths = needed(graph, training=False)
    count = readers(graph, paths, values_only=True)  # a like: read takes the size, which folding keeps
    plan = {}
    for p in paths:
        node = graph.nodes[p]
        fold = ops.REGISTRY[node.op].folds_into
        if fold is None or not getattr(node.concrete, "track_running_stats", True) or len(node.sources) != 1:
            continue  # (a frozen batch norm has no such setting: it always has its statistics)
        src = node.sources[0]
        if src == INPUT or count.get(src) != 1:
            continue
        layer = graph.nodes[src].op
        rank = fold[1] if layer == fold[0] else dict(ops.REGISTRY[layer].takes_fold).get(node.op)
        if rank is None or len(graph.nodes[src].shape) != rank:
            continue  # a linear on tokens: the batch norm's channels are not its outputs
        plan[p] = src
    return plan


def eval_noops(graph: Graph) -> dict[str, str]:
    """Nodes of the eval graph that compute nothing in eval mode: {node: its input}."""
    return {p: graph.nodes[p].sources[0] for p in needed(graph, training=False)
            if ops.REGISTRY[graph.nodes[p].op].passthrough_eval and len(graph.nodes[p].sources) == 1}


def fuse_plan(graph: Graph, skip: dict[str, str], fusable: Callable[[str], bool] = lambda conv: True
              ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """What the conv2d layers of the eval graph compute themselves, ``skip`` (nodes whose
    readers read another: folded batch norms, eval no-ops) taken into account:

    - residual sums ``{add: (conv, other)}``: an ``add`` of two values of one shape, one of
      them a conv's value that nothing else reads, whose own input nothing else reads
      either (the conv is called later, when ``other`` is there: nothing may overwrite its
      input meanwhile);
    - activations ``{activation: conv}`` (relu, relu6, silu, hardswish): the activation
      reads the conv's value, or the sum it adds, and nothing else does (nor is it an
      output).

    Only the convs for which ``fusable`` holds take part.
    """
    paths = [p for p in needed(graph, training=False) if p not in skip]

    def counted(skip: dict[str, str], adds: dict[str, tuple[str, str]]) -> tuple[Callable[[str], str], dict[str, int]]:
        """The value a node stands for, and how many nodes read each value: those that
        compute, the outputs, and each fused sum's conv (reading what it adds)."""
        def value(p: str) -> str:
            while p in skip:
                p = skip[p]
            return p

        count: dict[str, int] = {}
        reads = [value(s) for p in paths if p not in skip for s in graph.nodes[p].sources]
        reads += [value(o.node) for o in graph.outputs] + [value(other) for _, other in adds.values()]
        for r in reads:
            count[r] = count.get(r, 0) + 1
        return value, count

    def sole(conv: str, count: dict[str, int]) -> bool:
        return (conv != INPUT and ops.REGISTRY[graph.nodes[conv].op].convolution and count.get(conv) == 1
                and fusable(conv))

    value, count = counted(skip, {})
    residual: dict[str, tuple[str, str]] = {}
    for p in paths:
        node = graph.nodes[p]
        if not ops.REGISTRY[node.op].sums_residual(node.concrete) or len(node.sources) != 2 or any(
                s != INPUT and (graph.nodes[s].shape != node.shape or not graph.nodes[s].batched) for s in node.sources) \
                or (INPUT in node.sources and graph.input_shape != node.shape):
            continue  # a learnable tensor (no batch dimension) is broadcast: not a residual
        for conv, other in ((value(node.sources[0]), value(node.sources[1])),
                            (value(node.sources[1]), value(node.sources[0]))):
            if sole(conv, count) and conv != other and count.get(value(graph.nodes[conv].sources[0])) == 1:
                residual[p] = (conv, other)
                break
    value, count = counted({**skip, **{p: conv for p, (conv, _) in residual.items()}}, residual)
    activation = {}
    for p in paths:
        node = graph.nodes[p]
        if ops.REGISTRY[node.op].fused_postop is not None and len(node.sources) == 1 and sole(value(node.sources[0]), count):
            activation[p] = value(node.sources[0])
    return activation, residual


def _prefers_channels_last(graph: Graph, eval_paths: set[str]) -> bool:
    """Whether channels-last memory order pays: on an image input, where convolutions run
    past the stem. torch's CPU convolutions are faster on it, and a ConvNeXt block's
    permute to H x W x C becomes free (0.90 of eager against 0.99 without, ``bench/``),
    though its linears do 93 % of its multiply-accumulates. A transformer whose one conv
    is its patch embedding (ViT, Swin) would only gain layout copies before its tokens."""
    convs = sum(1 for p in eval_paths if ops.REGISTRY[graph.nodes[p].op].convolution)
    return len(graph.input_shape) == 3 and convs > 1


def _fold(layer: nn.Module, bn: nn.Module, dim: int = 0) -> None:
    """Fold the batch norm ``bn`` (running statistics, or frozen ones) into ``layer``, whose
    weight holds its output channels along ``dim`` (``OpDef.fold_dim``): 0, or 1 for a
    transposed convolution, whose ``in x out/groups x kH x kW`` weight holds the output
    channels of group ``g`` in rows ``g * in/groups ...`` of dimension 1."""
    with torch.no_grad():
        weight = layer.weight.double()
        scale = torch.rsqrt(bn.running_var.double() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        shift = -bn.running_mean.double() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        bias = layer.bias.double() * scale + shift if layer.bias is not None else shift
        if dim == 0:
            layer.weight.copy_(weight * scale.reshape(-1, *[1] * (weight.dim() - 1)))
        else:
            groups = getattr(layer, "groups", 1)
            grouped = weight.unflatten(0, (groups, -1))  # groups x in/groups x out/groups x ...
            scaled = grouped * scale.reshape(groups, *[1] * dim, -1, *[1] * (weight.dim() - dim - 1))
            layer.weight.copy_(scaled.flatten(0, 1))
        if layer.bias is None:
            layer.bias = nn.Parameter(bias.to(layer.weight.dtype))
        else:
            layer.bias.copy_(bias)


def _remove(model: nn.Module, path: str) -> None:
    parent, _, name = path.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    delattr(owner, name)


def optimize(model: ArchModule, graph: Graph, mode: str = "inference", channels_last: bool | None = None) -> Any:
    """``model`` (compiled from ``graph``, its weights loaded) optimised in place for
    inference (see the module docstring); ``mode="compiled"`` returns it wrapped in
    ``torch.compile``. ``channels_last=None`` uses channels-last where convolutions do
    most of the network's work."""
    if mode not in MODES:
        raise ValueError(f"optimize is one of {', '.join(map(repr, MODES))}, not {mode!r}")
    if any(t.is_meta for t in model.state_dict().values()):
        raise ValueError("cannot optimise a model built on the 'meta' device: folding needs its weights")
    model.eval()
    folds = fold_plan(graph)
    for bn, layer in folds.items():
        _fold(model.get_submodule(layer), model.get_submodule(bn), ops.REGISTRY[graph.nodes[layer].op].fold_dim)
    skip = dict(folds)
    for p, src in eval_noops(graph).items():
        skip[p] = src
    for p in list(skip):  # a chain of skipped nodes reads the first node that computes
        while skip[p] in skip:
            skip[p] = skip[skip[p]]
    eval_paths = set(needed(graph, training=False))
    fused, sums = fuse_plan(graph, skip, lambda conv: type(model.get_submodule(conv)) is nn.Conv2d)
    residual = dict(sums.values())  # {conv: the value it adds}
    skip.update({p: conv for p, (conv, _) in sums.items()})
    skip.update(fused)
    for p in graph.order:  # drop the modules of what the optimised forward never calls
        node = graph.nodes[p]
        if ops.REGISTRY[node.op].build is not None and (p in skip or p not in eval_paths) and not ops.REGISTRY[node.op].tensor:
            _remove(model, p)
    for path in sorted(graph.containers, key=lambda c: -c.count(".")):  # containers left empty, innermost first
        try:
            block = model.get_submodule(path)
        except AttributeError:
            continue
        if not block._modules and not block._parameters and not block._buffers:
            _remove(model, path)
    if channels_last is None:
        channels_last = _prefers_channels_last(graph, eval_paths)
    from ._lower import inference_source

    model._archspec_code = inference_source(graph, skip, channels_last, residual)
    model._archspec_info = replace(model._archspec_info, optimized=Optimized(
        folded=len(folds), fused=len(fused), residual=len(sums), dropped=len(skip) - len(folds) - len(fused) - len(sums),
        channels_last=channels_last))
    model._archspec_install()
    for block in model.modules():  # their forwards would call the folded batch norms
        if isinstance(block, Block):
            block._archspec_uninstall("a model optimised for inference runs as one function")
    postop = {conv: ops.REGISTRY[graph.nodes[a].op].fused_postop for a, conv in fused.items()}
    for p in eval_paths - set(skip):
        if ops.REGISTRY[graph.nodes[p].op].convolution and type(model.get_submodule(p)) is nn.Conv2d:
            FusedConv2d.fuse(model.get_submodule(p), postop.get(p), p in residual)
    model.requires_grad_(False)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.eval()
    if mode == "compiled":
        return torch.compile(model)
    return model
