"""The IR: a graph of op applications with qualified names, and the containers around them.

*resolve* produces it (templates instantiated, repeats unrolled, names qualified, every
value evaluated that does not need a shape); *infer* completes it (shapes, parameter,
buffer and MAC counts, the remaining values); *lower* turns it into modules and code.

- :class:`Node`: one op application, named by its dotted path (``inception3a.branch2.1.conv``),
  reading other nodes by path (a container's path stands for its output, ``input`` for the
  network input). Its :class:`NodeRole` says whether the spec names it or resolve made it:
  the join that closes a container (``inception3a#concat``) or a dense layer's input
  concat (``block.layer2#in``). The ``#`` suffixes are only how such paths are spelt (in
  messages, module trees and checkpoints); stages ask the role.
- :class:`Container`: a ``seq``/``concat``/``add``/``dense`` scope, with its children in
  order; it becomes a module in the module tree. ``block`` names the template it
  instantiates, if any.
- :class:`Graph`: nodes (document order), containers, the top-level order, outputs,
  init rules, and where everything came from.
- Queries of an inferred graph, for every stage after *infer*: :func:`needed` (the nodes
  the eval or the train graph computes), :func:`readers` (how many read each node) and
  :func:`classifier` (the eval graph's last layer with weights) and :func:`activation_peak`
  (the activation memory of an eval forward, per sample).

Every node and container keeps its source :class:`Loc` and, inside a block, the chain of
``use`` sites that instantiated it, so any later stage can say where a problem is.
"""

from __future__ import annotations

import enum
import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import ops
from ._errors import Loc
from ._expr import Expr

__all__ = ["Deferred", "Lazy", "NodeRole", "Node", "Container", "Output", "InitRule", "Graph", "INPUT", "ABSENT", "MODEL_ATTRIBUTES", "Renumbered",
           "UseSite", "display_path", "site_notes", "is_meta", "needed", "readers", "classifier",
           "Peak", "activation_peak", "ACTIVATION_BYTES"]

#: the reference to the network's (or a body's) input
INPUT = "input"

#: the public attributes of a compiled model beyond torch.nn.Module's: those
#: :class:`archspec._module.ArchModule` defines, ``Outputs``, which the class compiled for
#: each spec adds, and ``load_report``, which ``compile_spec`` sets. A node may not take one (a top-level node becomes an attribute of the
#: model). Declared here, below *resolve* and torch-free, so that *validate* checks node names
#: without importing the runtime layer; tests/test_resolve.py holds it equal to the class.
MODEL_ATTRIBUTES = frozenset({
    "code", "spec_name", "output_names", "num_features", "get_classifier", "loss_weights", "loss", "variant",
    "Outputs", "load_report",
})

#: what *infer*'s reference chasing gives for a switched-off node that reads nothing (a
#: ``param``): nothing stands for it, and a join reading it leaves it out. Never a node's path.
ABSENT = "#absent"


def display_path(ref: str) -> str:
    """A reference as users know it: a join's path (``inception3a#concat``), a dense layer's
    input (``block.layer2#in``) or a switched-off unnamed entry's alias (``head#off1``)
    shows the container, layer or body it belongs to."""
    return ref.split("#", 1)[0]


def is_meta(device: object) -> bool:
    """Whether ``device`` (a string, a ``torch.device`` or None) is the meta device, which
    holds shapes but no values; without importing torch."""
    return device is not None and str(device).partition(":")[0] == "meta"


@dataclass(frozen=True)
class Deferred:
    """A value whose expression needs the node's input shape; *infer* evaluates it."""

    expr: Expr
    env: Mapping[str, Any]

    def __repr__(self) -> str:
        return repr(self.expr)


@dataclass(frozen=True)
class Lazy:
    """A block argument that needs the *instance's* input shape (``ref``)."""

    expr: Expr
    env: Mapping[str, Any]
    ref: str
    where: str


@dataclass(frozen=True)
class UseSite:
    """Where a block was instantiated: the block's name, the instance path and the ``use`` line."""

    block: str
    path: str
    loc: Loc | None


def site_notes(sites: tuple[UseSite, ...]) -> list[tuple[Loc | None, str]]:
    """Notes naming the ``use`` sites a node was instantiated through, innermost first."""
    return [(s.loc, f"in block '{s.block}', used as {s.path}") for s in reversed(sites)]


class NodeRole(enum.Enum):
    """Why a :class:`Node` is in the graph: the spec names it, or *resolve* made it for a container."""

    #: a node the spec names (an op, or a ``use`` of one); its path is a dotted name
    OP = "op"
    #: the join that closes a ``concat:``, ``add:`` or ``dense:`` body, at ``<container>#<kind>``;
    #: its ``parent`` is that container, whose output it is
    JOIN = "join"
    #: the concat that feeds a dense layer the body's input and the layers before it, at
    #: ``<layer>#in``; the layer computes it (:meth:`Graph.owner`)
    DENSE_INPUT = "dense_input"


@dataclass
class Node:
    """One op application: what *resolve* knows of it (op, parameters, inputs by path,
    ``when``, where it is written), and below the line what *infer* fills in (the nodes
    that really produce its inputs, shapes, layout, the module's tensors and its costs).

    ``params`` holds evaluated values, or :class:`Deferred` ones that need the input shape;
    ``inputs`` are references as resolve wired them (node or container paths, ``input``, or
    aliases of nodes switched off), ``sources`` the nodes infer found behind them. The last
    ``shape_only`` of each are read only for their shape (an op's ``refs`` parameter, such as
    ``like: input``): the op's code reads their sizes, not their values.
    """

    path: str
    op: str
    params: dict[str, Any]
    inputs: list[str]
    loc: Loc | None
    param_locs: dict[str, Loc] = field(default_factory=dict)
    env: Mapping[str, Any] = field(default_factory=dict)
    when: bool | Deferred = True
    parent: str | None = None
    role: NodeRole = NodeRole.OP
    sites: tuple[UseSite, ...] = ()
    doc: str | None = None
    shape_only: int = 0  # how many of the last inputs are read only for their shape (OpDef.refs)
    # filled in by infer
    enabled: bool = True
    sources: list[str] = field(default_factory=list)  # producing node paths (or "input")
    in_shapes: list[tuple[int, ...]] = field(default_factory=list)
    shape: tuple[int, ...] | None = None
    concrete: Any = None  # the op's validated parameter model
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)  # the module's state: name -> shape ("" for a param node)
    batched: bool = True  # False for a learnable tensor (a param node), which has no batch dimension
    image: bool = False  # the output is a C x H x W image (not channels-last, not tokens)
    channels_last: bool = False  # the output is an image permuted to H x W x C
    n_params: int = 0
    n_buffers: int = 0
    macs: int = 0
    dtypes: dict[str, str] = field(default_factory=dict)  # tensor name -> torch dtype name, where not float32
    buffers: tuple[str, ...] = ()  # which of ``tensors`` are buffers (the rest are parameters)
    weight_bytes: int = 0  # of its parameters and buffers, each at its dtype

    @property
    def data_inputs(self) -> list[str]:
        """The inputs whose values the op reads (its ``from:``), without those read only for their shape."""
        return self.inputs[:len(self.inputs) - self.shape_only]

    @property
    def data_sources(self) -> list[str]:
        """The sources whose values the op reads, without those read only for their shape."""
        return self.sources[:len(self.sources) - self.shape_only]

    @property
    def implicit(self) -> bool:
        """Made by *resolve*, not named in the spec (a join or a dense layer's input): it has
        no module of its own, no ``init:`` rule selects it and no warning names it."""
        return self.role is not NodeRole.OP

    @property
    def display(self) -> str:
        """The path as users know it (implicit joins show their container or layer)."""
        return display_path(self.path)

    @property
    def name(self) -> str:
        return self.display.rsplit(".", 1)[-1]


@dataclass
class Container:
    """A ``seq:``, ``concat:``, ``add:`` or ``dense:`` scope (a body, or the instance of a
    block, named by ``block``): its children in order, the reference it reads (``input``;
    a block that declares ``inputs:`` also has them all, in order, the first being
    ``input``) and the one that is its value (``output``: the last child of a seq, the join
    of the others). It becomes a module of the module tree; infer decides whether it is
    enabled and records the node that really gives its value (and those its declared
    inputs read, so that its forward takes them in the declared order).
    """

    path: str
    kind: str  # seq, concat, add, dense
    children: list[str]
    input: str
    output: str
    loc: Loc | None
    block: str | None = None
    parent: str | None = None
    when: bool | Deferred = True
    sites: tuple[UseSite, ...] = ()
    doc: str | None = None
    args: dict[str, Any] = field(default_factory=dict)  # the block arguments, for summaries
    checkpoint: bool = False  # activation checkpointing of its forward in train mode
    inputs: list[str] = field(default_factory=list)  # a block's declared inputs' refs, in order ([] for one)
    # filled in by infer
    enabled: bool = True
    shape: tuple[int, ...] | None = None
    value: str | None = None  # the node whose output is the container's (or "input")
    sources: list[str] = field(default_factory=list)  # the nodes its declared inputs read, in order

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


@dataclass
class Output:
    """A value the network returns: its ``name`` (a named-tuple field, or the path of a tap),
    the reference it reads, whether only training computes it, and its weight in
    ``model.loss()``. ``implicit``: the default output (the graph's last node): where that
    node is switched off, the output reads what stands for it, as the node's readers do
    (a declared output of a node switched off is left out)."""

    name: str
    ref: str
    training_only: bool
    loc: Loc | None
    node: str | None = None  # the producing node path, filled by infer
    implicit: bool = False  # the default output (the graph's last node): it falls back as readers do
    loss_weight: float | None = None  # its weight in model.loss(); None: 1 for the first output, else 0


@dataclass
class InitRule:
    ops: list[str] | None
    paths: list[str] | None
    tensors: dict[str, Any]  # "weight"/"bias" -> float or {"fn": ..., args}
    loc: Loc | None
    index: int
    within: str | None = None  # only nodes at or below this path (a nested base's rules)

    def selects(self, node: Node) -> bool:
        """Whether this rule applies to ``node`` (by op, by dotted path with shell
        wildcards, and inside ``within``)."""
        if node.implicit or (self.ops is not None and node.op not in self.ops):
            return False
        if self.within is not None and not (node.display == self.within or node.display.startswith(self.within + ".")):
            return False
        return self.paths is None or any(fnmatch.fnmatchcase(node.display, pattern) for pattern in self.paths)

    def targets(self, node: Node, name: str) -> list[str]:
        """The tensors of ``node`` that the rule's ``weight`` or ``bias`` (``name``) sets: its
        own, and those of the linear layers its module holds (``window_attention``'s
        ``qkv.weight``, ``cpb_mlp.0.weight``, ...)."""
        return [t for t in node.tensors if t == name or t.endswith("." + name)]


@dataclass
class Renumbered:
    """A list body whose item ``off`` (the path it would have had) is switched off by a
    literal ``when: false`` or through an override, so the items after it are numbered
    lower than their place in the list: ``moved`` holds each one's path and the path its
    place would give it. *infer* warns where a moved item holds weights (its checkpoint
    keys move with it)."""

    off: str
    why: str  # "'when' is false", or the override that made it so
    loc: Loc | None  # its 'when'
    moved: list[tuple[str, str]]


@dataclass
class Graph:
    """A whole network: its nodes in document order and its containers by path, the
    top-level children, the outputs and ``init:`` rules, the aliases of nodes switched off
    (each stands for the references in its list), and the files it was read from. *infer*
    fills ``order`` (the enabled nodes, topologically) and the in-place plan; the methods
    and the module's functions (:func:`needed`, :func:`readers`, :func:`classifier`) are
    queries for the stages after it.
    """

    name: str
    description: str | None
    input_shape: tuple[int, ...]
    params: dict[str, Any]
    nodes: dict[str, Node]
    containers: dict[str, Container]
    top: list[str]
    outputs: list[Output]
    init: list[InitRule]
    aliases: dict[str, list[str]]
    source: str
    files: list[str]
    order: list[str] = field(default_factory=list)  # topological order of enabled nodes, filled by infer
    inplace: dict[str, int | None] = field(default_factory=dict)  # node -> input it may overwrite, filled by infer
    alias_locs: dict[str, Loc] = field(default_factory=dict)  # where each switched-off node is written
    off_joins: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # switched-off add/mul: (op, all inputs)
    taps: bool = False  # outputs were asked for by path: the network returns a dict of them
    tap_list: bool = False  # ... or a list of them, in order (a features_only backbone)
    returns: str = "tuple"  # the spec's outputs as a tensor or named tuple ("tuple"), or a dict by name ("dict")
    trunk: str | None = None  # the container a nested base became (extends with nest): features_only's maps are its
    checkpoint_keys: list[tuple[str, str]] = field(default_factory=list)  # (regex, replacement) for foreign checkpoints
    renumbered: list[Renumbered] = field(default_factory=list)  # list items numbered lower than their place
    activations: Peak | None = None  # the eval forward's activation peak per sample (activation_peak), filled by infer

    @property
    def returns_dict(self) -> bool:
        """Whether the forward returns the spec's outputs as a dict by name (``returns: dict``;
        a network compiled with ``outputs=`` returns its taps its own way)."""
        return self.returns == "dict" and not self.taps

    def owner(self, path: str) -> str | None:
        """The container whose generated forward computes node ``path``: its parent, except
        a dense layer's input join (``block.layer2#in``), which the layer computes (as
        torchvision's dense layers concatenate their inputs themselves), so that the join
        is inside the layer's call and its activation checkpointing."""
        node = self.nodes[path]
        if node.role is NodeRole.DENSE_INPUT and node.display in self.containers:
            return node.display
        return node.parent

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """The compiled module's ``state_dict`` keys and shapes, known without building it."""
        return {f"{p}.{name}" if name else p: shape for p in self.order if not self.nodes[p].implicit
                for name, shape in self.nodes[p].tensors.items()}


# -- queries of an inferred graph --------------------------------------------------------------


def readers(graph: Graph, paths: list[str], values_only: bool = False) -> dict[str, int]:
    """How many of the nodes ``paths`` and of the graph's outputs read each node
    (``values_only``: not counting the reads of a node's shape alone, ``like:``)."""
    count = {p: 0 for p in paths}
    for p in paths:
        node = graph.nodes[p]
        for s in (node.data_sources if values_only else node.sources):
            if s != INPUT:
                count[s] = count.get(s, 0) + 1
    for o in graph.outputs:
        if o.node != INPUT:
            count[o.node] = count.get(o.node, 0) + 1
    return count


def needed(graph: Graph, training: bool) -> list[str]:
    """The nodes (in order) that the eval or the train graph computes."""
    wanted = [o.node for o in graph.outputs if training or not o.training_only]
    keep: set[str] = set()
    stack = [w for w in wanted if w != INPUT]
    while stack:
        p = stack.pop()
        if p in keep:
            continue
        keep.add(p)
        stack.extend(s for s in graph.nodes[p].sources if s != INPUT)
    return [p for p in graph.order if p in keep]


def classifier(graph: Graph) -> tuple[str, int] | None:
    """The classifier (the eval graph's last op with a ``classifier_dim``: a linear or a
    conv2d) and what it reads: ``(path, num_features)``, or None for a network without one."""
    for p in reversed(needed(graph, training=False)):
        node = graph.nodes[p]
        dim = ops.REGISTRY[node.op].classifier_dim
        if dim is not None:
            return node.display, node.in_shapes[0][dim]
    return None


#: bytes per element of an activation: the compiled model computes in float32 unless told otherwise
ACTIVATION_BYTES = 4


@dataclass(frozen=True)
class Peak:
    """The activation memory of one eval forward, per sample (:func:`activation_peak`):
    ``bytes`` at its peak, reached while ``at`` is computed (a node path, ``None`` for a
    graph without nodes), and what is live then, largest first (``(source, bytes)``, a
    source being a node path or ``input``)."""

    bytes: int
    at: str | None
    live: list[tuple[str, int]]


def activation_peak(graph: Graph) -> Peak:
    """The most bytes of activations an eval forward holds at once, per sample, in float32.

    The eval nodes run in the graph's order; each output is allocated when its node runs and
    freed after the last node that reads it (or a view of it) has run, the eval outputs and
    the network input (the caller holds it) at the end. A view (``alias`` ops: flatten,
    reshape, dropout in eval) and an op planned to run in place share their input's memory;
    learnable tensors are weights, not activations. What an op holds while it runs (attention
    scores, a convolution's workspace) and what training keeps for the backward pass are not
    counted: this is the floor a forward needs, known before one runs.
    """
    steps = needed(graph, training=False)
    root: dict[str, str | None] = {INPUT: INPUT}
    size = {INPUT: math.prod(graph.input_shape) * ACTIVATION_BYTES}
    born = {INPUT: 0}
    last = {INPUT: len(steps)}
    for i, p in enumerate(steps):
        node = graph.nodes[p]
        op = ops.REGISTRY[node.op]
        for s in node.sources:
            r = root.get(s)
            if r is not None:
                last[r] = max(last[r], i)
        shared = graph.inplace.get(p)
        if op.tensor:
            root[p] = None
        elif op.returns_input(len(node.sources), node.concrete) or shared is not None:
            root[p] = root.get(node.sources[shared or 0])
        else:
            root[p] = p
            size[p], born[p], last[p] = math.prod(node.shape or ()) * ACTIVATION_BYTES, i, i
    for o in graph.outputs:
        r = root.get(o.node)
        if r is not None and not o.training_only:
            last[r] = len(steps)
    change = [0] * (len(steps) + 2)
    for r, n in size.items():
        change[born[r]] += n
        change[last[r] + 1] -= n
    peak, at, held = -1, 0, 0
    for i in range(len(steps) or 1):
        held += change[i]
        if held > peak:
            peak, at = held, i
    live = sorted(((r, n) for r, n in size.items() if born[r] <= at <= last[r]), key=lambda x: -x[1])
    return Peak(peak, steps[at] if steps else None, live)
