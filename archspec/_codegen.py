"""The generated forwards: the model's, and one per container, called from its parent's
(part of *lower*; torch only for ``torch.fx``).

Every container (a block instance, a ``seq``/``concat``/``add``/``dense`` body) is a
module with a forward of its own, generated as straight-line code over its children, so
``model.features(x)`` runs the features, forward hooks on a block fire, and wrappers that
work on submodules (FSDP2's ``fully_shard``, activation checkpointing, ``torch.compile``
regions) work on the spec's blocks. The model's forward calls its top-level containers,
they call theirs, and so on down to the op modules.

**Calling convention.** A container's forward takes the values its nodes read from
outside it, in the order they are first read (the first, ``x``, is usually its input; a
side input, such as a dense layer's earlier features, is ``x1``, ``x2``, ...), those of a
block's declared inputs first, in their declared order (``up(x, skip)``), and returns
the values that are read outside it: its output alone (the usual case, a tensor), or a
tuple when nodes outside also read values inside it (a side branch), its output first.
A dense layer computes its own input join (the concatenation of the features before it),
as torchvision's dense layers do: it takes those features, not their concatenation.

**Modes.** A container's forward computes everything the train graph needs of it, in
both modes, so that hooks and wrappers on it (FSDP2 gathering its parameters) work in eval
as in training. Where a node only a training-only output reads lies inside a container
that eval also needs, eval computes that node too (a model optimised for inference does
not). Only where eval does not compute a value the container reads from outside (it
reads a training-only node) does the model's eval forward run that container's nodes
itself; :func:`archspec.shard` refuses such a container.

Every container that computes something runs as one call. What a container reads from
outside is what its own ``from`` names (siblings, ``input``, or a node nested in a sibling
container written before it, ``backbone.layer3``; outputs feed nothing), so a value leaves a
container and comes back into it only where two containers each read a value computed
inside the other (``a`` reads ``b``, ``b`` reads ``a.z``, which ``a`` computes from its
other input): *infer* refuses that with the reads named, and *resolve* a dotted path into a
container written later. Calling one that computes nothing the network uses is an error
that says so.

**Checkpointing.** A container marked ``checkpoint`` runs its body under
``torch.utils.checkpoint`` (non-reentrant) in train mode with gradients on, and restores
its batch norms' running statistics after the recomputation, so that a checkpointed
network's statistics equal the plain network's (torchvision's ``memory_efficient``
DenseNet updates them twice).
"""

from __future__ import annotations

import heapq
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import fx

from . import ops
from ._ir import INPUT, Graph, Node

__all__ = ["Scope", "scopes", "emit", "container_source", "container_sources"]


@dataclass
class Scope:
    """A container's generated forward: what it computes, reads and returns."""

    path: str
    nodes: list[str]  # the train graph's nodes inside it, in order
    inputs: list[str]  # values read from outside, in the order first read
    exports: list[str]  # values read outside it (or network outputs), its output first
    eval_calls: bool  # eval computes everything it reads from outside (so eval calls it too)
    checkpoint: bool


def _chains(graph: Graph, paths: list[str]) -> dict[str, tuple[str, ...]]:
    """Each node's enclosing containers (as :meth:`Graph.owner` places it), innermost first."""
    up: dict[str | None, tuple[str, ...]] = {None: ()}

    def ancestors(c: str | None) -> tuple[str, ...]:
        if c not in up:
            up[c] = (c,) + ancestors(graph.containers[c].parent)
        return up[c]

    return {p: ancestors(graph.owner(p)) for p in paths}


def scopes(graph: Graph, train: list[str], eval_: list[str]) -> tuple[dict[str, Scope], dict[str, tuple[str, ...]]]:
    """The scope of every container the train graph computes something in, and each
    node's container chain (for :func:`emit`)."""
    chains = _chains(graph, train)
    readers: dict[str, list[str]] = {p: [] for p in train}
    for p in train:
        for s in graph.nodes[p].sources:
            if s != INPUT:
                readers[s].append(p)
    outputs = {o.node for o in graph.outputs}
    inside: dict[str, list[str]] = {}
    for p in train:
        for c in chains[p]:
            inside.setdefault(c, []).append(p)
    eval_set = set(eval_)
    found: dict[str, Scope] = {}
    for c, members in inside.items():
        mset = set(members)
        inputs: dict[str, None] = {}
        for s in graph.containers[c].sources:  # a block's declared inputs, in order, where its nodes read them
            if any(s in graph.nodes[p].sources for p in members):
                inputs.setdefault(s)
        for p in members:
            for s in graph.nodes[p].sources:
                if s not in mset:
                    inputs.setdefault(s)
        exports = [p for p in members if p in outputs or any(r not in mset for r in readers[p])]
        value = graph.containers[c].value
        if value in exports:
            exports.remove(value)
            exports.insert(0, value)
        found[c] = Scope(c, members, list(inputs), exports, all(s == INPUT or s in eval_set for s in inputs),
                         graph.containers[c].checkpoint)
    return found, chains


def _fx_name(node: Node, prefix: str) -> str:
    if node.implicit and node.display + "." == prefix:  # the container's join (add, concat, dense; a dense layer's input: in)
        return node.path.rpartition("#")[2] or "join"  # named as its path is spelt
    rel = node.display[len(prefix):] if node.display.startswith(prefix) else node.display
    return re.sub(r"\W", "_", rel.replace(".", "_")) or "join"


def emit(graph: Graph, paths: list[str], *, scope: Scope | None, found: dict[str, Scope],
         chains: dict[str, tuple[str, ...]], called: Callable[[str], bool], plan: dict[str, int | None],
         skip: dict[str, str] | None = None, extra: dict[str, str] | None = None) -> tuple[fx.Graph, dict[str, fx.Node]]:
    """The fx graph computing ``paths`` (the nodes of one mode inside ``scope``, or the
    whole network's when None): containers below ``scope`` for which ``called`` holds are
    one call each, the rest of the nodes are computed here. A node in ``skip`` computes
    nothing, its value being another's (an optimised model's folded batch norms); a module
    node in ``extra`` is called with that node's value as a second argument (an optimised
    model's conv that adds the residual itself), and waits for it.
    Returns the graph without its output, and the values by node path."""
    g = fx.Graph()
    skip = skip or {}
    extra = extra or {}
    prefix = scope.path + "." if scope else ""
    inputs = scope.inputs if scope else [INPUT]
    values: dict[str, fx.Node] = {s: g.placeholder("x" if i == 0 else f"x{i}") for i, s in enumerate(inputs)}

    def unit(p: str) -> str:
        chain = chains[p]
        below = chain[:chain.index(scope.path)] if scope else chain
        for c in reversed(below):  # the outermost container that is one call
            if called(c):
                return c
        return p

    items: dict[str, list[str]] = {}  # unit -> its nodes (a node alone, or a called container's)
    for p in paths:
        items.setdefault(unit(p), []).append(p)
    calls = {u for u, members in items.items() if members[0] != u}
    owner = {p: u for u, members in items.items() for p in members}
    first = {u: i for i, u in enumerate(items)}
    deps: dict[str, set[str]] = {}
    for u in items:
        reads = found[u].inputs if u in calls else [*graph.nodes[u].sources, *([extra[u]] if u in extra else [])]
        deps[u] = {owner[s] for s in reads if s in owner and owner[s] != u}
    waiting = {u: len(d) for u, d in deps.items()}
    after: dict[str, list[str]] = {u: [] for u in items}
    for u, d in deps.items():
        for v in d:
            after[v].append(u)
    ready = [(first[u], u) for u, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    while ready:  # in document order, each unit once what it reads is there
        _, u = heapq.heappop(ready)
        if u in calls:
            _call(g, found[u], prefix, values)
        else:
            _node(g, graph, u, prefix, values, plan, skip, extra)
        for v in after[u]:
            waiting[v] -= 1
            if waiting[v] == 0:
                heapq.heappush(ready, (first[v], v))
    if any(waiting.values()):  # a value left a container and came back: the language has no way to write it
        raise AssertionError(f"archspec cannot order the calls in {scope.path if scope else 'the network'}")
    return g, values


def _call(g: fx.Graph, sc: Scope, prefix: str, values: dict[str, fx.Node]) -> None:
    rel = sc.path[len(prefix):]
    result = g.call_module(rel, tuple(values[s] for s in sc.inputs))
    if len(sc.exports) == 1:
        values[sc.exports[0]] = result
        return
    for i, e in enumerate(sc.exports):
        values[e] = g.call_function(operator.getitem, (result, i))


def _node(g: fx.Graph, graph: Graph, p: str, prefix: str, values: dict[str, fx.Node], plan: dict[str, int | None],
          skip: dict[str, str], extra: dict[str, str]) -> None:
    node = graph.nodes[p]
    if p in skip:
        values[p] = values[skip[p]]
        return
    op = ops.REGISTRY[node.op]
    args = [values[s] for s in node.sources]
    for s, a in zip(node.sources, args):
        if _learned(graph, s):  # held here, or a call's result or argument: op.emit cannot tell from the fx node
            a.meta[ops.LEARNED] = True
    rel = p[len(prefix):]
    if op.tensor:  # a learnable tensor, held by its container under the node's name
        values[p] = g.get_attr(rel)
    elif op.build is not None:
        values[p] = g.call_module(rel, tuple(args) + ((values[extra[p]],) if p in extra else ()))
    else:
        slot = plan.get(p)
        shapes = list(node.in_shapes)
        if slot:  # put the operand we may overwrite first
            args = [args[slot]] + args[:slot] + args[slot + 1:]
            shapes = [shapes[slot]] + shapes[:slot] + shapes[slot + 1:]
        values[p] = op.emit(g, node.concrete, args, _fx_name(node, prefix), slot is not None, shapes)


def _learned(graph: Graph, source: str) -> bool:
    """Whether ``source`` is a ``param`` node's value (a learnable tensor, no batch dimension)."""
    return source != INPUT and ops.REGISTRY[graph.nodes[source].op].tensor


def _signature(graph: Graph, sc: Scope, found: dict[str, Scope], chains: dict[str, tuple[str, ...]],
               plan: dict[str, int | None]) -> tuple:
    """Everything :func:`container_source` reads of ``sc``, with paths made relative to it
    (values from outside by their position in its inputs): two containers with one
    signature have one source. Modules are called by name, so a conv's channels are not in
    it; a functional op's settings and shapes are, as they are written into the code."""
    prefix = sc.path + "."
    index = {s: i for i, s in enumerate(sc.inputs)}
    members = set(sc.nodes)

    def ref(s: str) -> object:
        if s in index:
            return index[s]
        if s in members or s in found:  # "conv1", "layer2#in", a container below
            return s[len(sc.path):]
        return (s,)

    items: list[tuple] = []
    for p in sc.nodes:
        chain = chains[p]
        below = chain[:chain.index(sc.path)]
        if below:  # inside a container below: that call, what it reads and returns
            outer = found[below[-1]]
            items.append((ref(p), ref(outer.path)) + (
                (tuple(map(ref, outer.inputs)), tuple(map(ref, outer.exports))) if p == outer.nodes[0] else ()))
            continue
        node = graph.nodes[p]
        op = ops.REGISTRY[node.op]
        entry: tuple = (ref(p), node.op, tuple(map(ref, node.sources)))
        if not op.tensor and op.build is None:
            entry += (repr(node.concrete), _shapes_key(graph, node), plan.get(p), _fx_name(node, prefix))
        items.append(entry)
    return (len(sc.inputs), tuple(map(ref, sc.exports)), sc.checkpoint, tuple(items))


def _shapes_key(graph: Graph, node: Node) -> tuple | None:
    """What of a functional op's input shapes its code depends on: all of them (``add``
    writes broadcasting sums differently), except for an op whose code is the same whatever
    the shapes (``OpDef.emit_shapeless``: a ``concat`` of activations, written the same
    whatever their channels; one with a learnable tensor expands it to its shape). Checked
    against generating every source, for every bundled spec, in tests/test_containers.py."""
    if ops.REGISTRY[node.op].emit_shapeless and not any(_learned(graph, s) for s in node.sources):
        return None
    return tuple(node.in_shapes)


def container_sources(graph: Graph, found: dict[str, Scope], chains: dict[str, tuple[str, ...]],
                      plan: dict[str, int | None]) -> dict[str, str]:
    """Every container's source by path (:func:`container_source`), generated once per
    distinct signature: the repeated blocks of a network (58 dense layers, 16 ShuffleNet
    units) share one generation, which is most of *codegen*'s time."""
    done: dict[tuple, str] = {}
    sources: dict[str, str] = {}
    for path, sc in found.items():
        key = _signature(graph, sc, found, chains, plan)
        if key not in done:
            done[key] = container_source(graph, sc, found, chains, plan)
        sources[path] = done[key]
    return sources


def container_source(graph: Graph, sc: Scope, found: dict[str, Scope], chains: dict[str, tuple[str, ...]],
                     plan: dict[str, int | None]) -> str:
    """The Python of a container's forward (see the module docstring). It names no path,
    so the instances of one block with the same structure share their code (and class)."""
    g, values = emit(graph, sc.nodes, scope=sc, found=found, chains=chains, called=lambda c: True,
                     plan=plan)
    outs = [values[e] for e in sc.exports]
    g.output(outs[0] if len(outs) == 1 else tuple(outs))
    g.lint()
    src = g.python_code("self").src.strip("\n")
    if not sc.checkpoint:
        return src + "\n"
    args = ", ".join("x" if i == 0 else f"x{i}" for i in range(len(sc.inputs)))
    head = "\n".join([
        f"def forward(self, {args}):",
        "    if not torch.jit.is_scripting() and self.training:",
        f"        return _checkpoint(self, self._body, {args})",
        f"    return self._body({args})",
    ])
    return head + "\n\n" + src.replace("def forward(self", "def _body(self", 1) + "\n"
