"""Backbones: the feature maps of a network at each stride, and its classifier, read from the IR.

A detection or segmentation model takes an image classifier's trunk and reads its feature
maps where the resolution changes (timm's ``features_only``). archspec knows every shape
statically, so it finds them without running the network:

- a *cut* is a node of the eval graph through which everything passes: no value computed
  before it (the input included) is read after it, so it carries all the network knows at
  that point (the end of a stage, not a branch of an Inception module nor a residual
  branch); a read of another node's shape only (``like: input``, a segmentation head's
  resize to the input size) carries none of its values and does not count;
- the *feature maps* are the cuts whose output is an image, ``C x H x W`` or channels-last
  ``H x W x C`` (Swin's, returned as the network computes them), one at each
  reduction (the product of the strides from the input, each op's stride read from its
  input and output sizes), before the head (the first pool to a fixed size, or the
  classifier): the last of the outermost cuts at that reduction, named by the outermost
  block whose output it is. ResNet-50: ``relu`` (2), ``layer1`` (4), ``layer2`` (8),
  ``layer3`` (16), ``layer4`` (32); MobileNetV3's ``features.1`` (a block's output) rather
  than the expansion conv inside ``features.2`` that is still at stride 2;
- a spec that nests a base as its backbone (``extends: {spec: ..., nest: backbone}``,
  :attr:`archspec._ir.Graph.trunk`) has the maps of that node: the cuts among its nodes,
  whatever the heads after it read (a segmentation head's tap of ``backbone.layer3``);
- the *classifier* is the last layer with weights (``linear`` or ``conv2d``) of the eval
  graph; ``num_features`` is what it reads (ResNet-50's 2048). It is a query of the IR
  (:func:`archspec._ir.classifier`), which *lower* asks too; this module re-exports it.

Tokens (ViT) are not feature maps in this sense: a trunk that turns its images into tokens
is refused, and ``compile_spec(..., outputs=[...])`` returns any node's value by path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import ops
from ._ir import INPUT, Graph, classifier, needed

__all__ = ["Feature", "FeatureInfo", "feature_maps", "select", "classifier"]


@dataclass(frozen=True)
class Feature:
    """One feature map: where it is (``module``: the path of its node or block), its
    channels, its reduction (input size / map size) and its per-sample shape."""

    module: str
    channels: int
    reduction: int
    shape: tuple[int, ...]


class FeatureInfo(Sequence):
    """The feature maps a ``features_only`` model returns, in order; like timm's
    ``feature_info``: ``channels()``, ``reduction()``, ``module_name()``, and each item as
    ``{"num_chs", "reduction", "module"}``."""

    def __init__(self, features: Sequence[Feature]) -> None:
        self.features = list(features)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._row(f) for f in self.features[i]]
        return self._row(self.features[i])

    @staticmethod
    def _row(f: Feature) -> dict:
        return {"num_chs": f.channels, "reduction": f.reduction, "module": f.module}

    def channels(self) -> list[int]:
        return [f.channels for f in self.features]

    def reduction(self) -> list[int]:
        return [f.reduction for f in self.features]

    def module_name(self) -> list[str]:
        return [f.module for f in self.features]

    def __repr__(self) -> str:
        return "FeatureInfo(" + ", ".join(f"{f.module}: {f.channels}x/{f.reduction}" for f in self.features) + ")"


def _cuts(graph: Graph, order: list[str], outputs: bool = True) -> list[str]:
    """The nodes of ``order`` that every later node of it depends on through them alone (and,
    with ``outputs``, that no output reads past)."""
    last_read = {INPUT: -1}
    for i, p in enumerate(order):
        for s in graph.nodes[p].data_sources:  # a read of a shape only (like: input) carries nothing
            last_read[s] = i
    for o in graph.outputs if outputs else ():
        last_read[o.node] = len(order)
    cuts = []
    reach = last_read[INPUT]  # the last position that reads a value made before position i
    for i, p in enumerate(order):
        if reach <= i and graph.nodes[p].batched:
            cuts.append(p)
        reach = max(reach, last_read.get(p, i))
    return cuts


def _name(graph: Graph, node: str) -> str:
    """The outermost block whose output is ``node`` (or the node itself)."""
    name = graph.nodes[node].display
    parent = graph.nodes[node].parent
    while parent is not None and parent in graph.containers:
        c = graph.containers[parent]
        if not c.enabled or c.value != node:
            break
        name, parent = c.path, c.parent
    return name


def _passes(op: str) -> bool:
    """Whether the op computes nothing new in eval mode: it passes its input through (dropout,
    identity) or reorders its dimensions (a permute): never named as a feature map."""
    d = ops.REGISTRY[op]
    return d.passthrough_eval or d.layout == "dims"


def feature_maps(graph: Graph) -> list[Feature]:
    """The feature maps of ``graph``'s eval graph (see the module docstring), in order."""
    if len(graph.input_shape) != 3:
        return []
    order = needed(graph, training=False)
    head = classifier(graph)
    if graph.trunk is not None:  # a nested backbone: its maps, whatever the heads after it read
        order = [p for p in order if p.startswith(graph.trunk + ".")]
        head = None
    stride = {INPUT: 1}
    size = {INPUT: graph.input_shape[1]}
    cuts = set(_cuts(graph, order, outputs=graph.trunk is None))
    at: dict[int, list[tuple[int, str]]] = {}  # stride -> (depth, node) of its cuts, in order
    for p in order:
        node = graph.nodes[p]
        cut = p in cuts
        if (cut and ops.REGISTRY[node.op].ends_trunk) or (head is not None and node.display == head[0]):
            break  # the head
        images = [s for s in node.data_sources if s in stride]
        if (node.image or node.channels_last) and images:
            size[p] = node.shape[1] if node.image else node.shape[0]
            # each op's stride, from the sizes of its input and output (55 -> 27 is 2: a 3x3
            # pool, stride 2); a join reads it from its input of the same size (not from a
            # squeeze-and-excitation gate, 1 x 1)
            src = next((s for s in images if size[s] == size[p]), images[0])
            stride[p] = stride[src] * max(1, round(size[src] / size[p]))
            if cut and not _passes(node.op):
                at.setdefault(stride[p], []).append((_name(graph, p).count("."), p))
        elif cut and at and len(node.shape) == 1:
            break  # flat features: the head (ShuffleNetV2's mean over the map)
        elif cut and at:  # the trunk leaves images (tokens)
            raise ValueError(f"{graph.name}'s trunk is not images from '{node.display}' on ({node.op}, "
                             f"{'x'.join(map(str, node.shape))}): its feature maps cannot be told by stride; "
                             "outputs=[...] returns any node's value")
    found = []
    for s in sorted(at):
        shallowest = min(depth for depth, _ in at[s])
        p = [q for depth, q in at[s] if depth == shallowest][-1]
        node = graph.nodes[p]
        found.append(Feature(_name(graph, p), node.shape[0] if node.image else node.shape[-1], s, tuple(node.shape)))
    return found


def select(features: list[Feature], out_indices: Sequence[int] | None, name: str) -> list[Feature]:
    """The features at ``out_indices`` (as timm: positions in the list, negative from the end)."""
    if not features:
        raise ValueError(f"{name} has no feature maps: no image of its eval graph is a cut between stages "
                         "(outputs=[...] returns any node's value)")
    if out_indices is None:
        return features
    chosen = []
    for i in out_indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -len(features) <= i < len(features):
            listing = ", ".join(f"{k}: {f.module} ({f.channels} x 1/{f.reduction})" for k, f in enumerate(features))
            raise ValueError(f"out_indices has {i!r}, but {name} has {len(features)} feature maps ({listing})")
        chosen.append(features[i])
    return chosen
