"""Where an op may overwrite its input: the in-place plan (part of *infer*; no torch).

The in-place activations (``relu``, ``relu6``, ``silu``, ... with ``inplace: auto``) and
``add`` may reuse an input's memory. They may only where nothing else reads that tensor:
no other node, no network output, not the same node twice, and not through a view
(identity, flatten, permute, chunk, dropout and a join of one input return their input
itself or a view of it); never a part of a ``chunk`` or ``split`` (autograd forbids it);
never the network input (the caller's tensor) nor a learnable
tensor (a ``param`` node); never a value from outside a checkpointed container inside it
(its recomputation reads its inputs again); never a tensor whose producer's backward needs it (``relu``,
``sigmoid``, ``lrn``, ...); and an ``add`` only into an input that already has the sum's
shape (broadcasting makes the others smaller). ``inplace: true`` where that does not hold
is an error; ``inplace: false`` never overwrites.

One more rule only ``inplace: auto`` follows: what a container returns (its output, or a
network output) is not computed by overwriting a view (a ``linear`` over tokens returns a
view of its result, as do ``permute`` and ``reshape``), since the container would then
return a view, which FSDP2 warns about for every sharded block; there the sum is a new
tensor, as torchvision's ``x + y`` at the end of a ViT block.
"""

from __future__ import annotations

from . import ops
from ._errors import SpecShapeError
from ._ir import INPUT, Graph

__all__ = ["inplace_plan"]


def _consumers(graph: Graph) -> dict[str, list[str]]:
    """Who reads each value: node paths, and ``"output <name>"`` for the network's outputs."""
    readers: dict[str, list[str]] = {p: [] for p in graph.order}
    readers[INPUT] = []
    for p in graph.order:
        for s in graph.nodes[p].sources:
            readers[s].append(p)
    for o in graph.outputs:
        readers[o.node].append(f"output {o.name}")
    return readers


def _overwritable(graph: Graph, source: str, readers: dict[str, list[str]], reader: str) -> str | None:
    """Why ``reader`` may not overwrite ``source``, or ``None`` if it may."""
    current, previous = source, reader
    while True:
        if current == INPUT:
            return "its input is (a view of) the network input"
        others = list(readers[current])
        others.remove(previous)  # one read is the overwriting one; any other (even by the same node) forbids it
        if others:
            other = others[0] if others[0].startswith("output ") else f"'{graph.nodes[others[0]].display}'"
            if other == f"'{graph.nodes[previous].display}'" if previous in graph.nodes else False:
                return f"'{graph.nodes[current].display}' is read twice by {other}"
            return f"'{graph.nodes[current].display}' is also read by {other}"
        node = graph.nodes[current]
        op = ops.REGISTRY[node.op]
        if op.tensor:
            return f"'{node.display}' is a learnable tensor"
        if op.multi_view:
            return f"'{node.display}' is one of the views {node.op} makes together, which autograd does not let be overwritten"
        if op.returns_input(len(node.sources), node.concrete):  # a view, or a join of one input (that input)
            current, previous = node.sources[0], current
            continue
        if op.saves_output and op.origin is not None:
            return f"'{node.display}' is a user op ({node.op}), whose output archspec never overwrites"
        if op.saves_output:
            return f"autograd needs the output of '{node.display}' ({node.op})"
        return None


def _checkpointed(graph: Graph) -> dict[str, str]:
    """Each node inside a checkpointed container: the innermost such container."""
    found: dict[str, str] = {}
    if not any(c.checkpoint for c in graph.containers.values()):
        return found
    for p in graph.order:
        c = graph.owner(p)
        while c is not None and not graph.containers[c].checkpoint:
            c = graph.containers[c].parent
        if c is not None:
            found[p] = c
    return found


def _memory(graph: Graph, source: str) -> str:
    """The node whose output ``source`` is, or is a view of."""
    while source != INPUT:
        node = graph.nodes[source]
        op = ops.REGISTRY[node.op]
        if not op.returns_input(len(node.sources), node.concrete):
            break
        source = node.sources[0]
    return source


def _a_view(graph: Graph, source: str) -> bool:
    """Whether ``source`` may be a view of another tensor when the forward runs."""
    while source != INPUT:
        node = graph.nodes[source]
        op = ops.REGISTRY[node.op]
        if op.returns_view is not None:  # its own output, but a view of another tensor (a linear over tokens)
            return op.returns_view(node.in_shapes)
        if op.passthrough_eval or (op.returns_input(len(node.sources), node.concrete) and not op.alias):
            source = node.sources[0]  # the tensor itself (dropout in eval or with p = 0)
            continue
        return bool(op.alias)
    return True


def inplace_plan(graph: Graph) -> dict[str, int | None]:
    """For each in-place-capable node: the index of the input it may overwrite, or ``None``."""
    readers = _consumers(graph)
    checkpointed = _checkpointed(graph)
    returned = {c.value for c in graph.containers.values() if c.enabled} | {o.node for o in graph.outputs}
    plan: dict[str, int | None] = {}
    for p in graph.order:
        node = graph.nodes[p]
        op = ops.REGISTRY[node.op]
        if not op.inplace:
            continue
        wanted = getattr(node.concrete, "inplace", "auto")
        if wanted is False:
            plan[p] = None
            continue
        choice = None
        reasons = []
        refused = op.inplace_refused(node.concrete) if op.inplace_refused is not None else None
        if refused:
            reasons.append(refused)
        for i, s in enumerate([] if refused else node.sources):
            if node.in_shapes[i] != node.shape:
                reasons.append(f"its input {i + 1} is smaller than the result (it is broadcast)")
                continue
            reason = _overwritable(graph, s, readers, p)
            if reason is None and p in checkpointed and checkpointed.get(_memory(graph, s)) != checkpointed[p]:
                # the recomputation in the backward pass reads the block's inputs again
                reason = f"'{graph.nodes[s].display}' is an input of '{checkpointed[p]}', which is checkpointed"
            if reason is None and wanted == "auto" and p in returned and _a_view(graph, s):
                reason = f"'{graph.nodes[s].display}' may be a view, and a container returns the result"
            if reason is None:
                choice = i
                break
            reasons.append(reason)
        if wanted is True and choice is None:
            raise SpecShapeError(
                f"this {node.op} cannot run in place: {reasons[0]}", node.param_locs.get("inplace", node.loc),
                node=node.display, expected="inplace: auto (in place only where safe) or false",
            )
        plan[p] = choice
    return plan
