"""Whole-graph checks, once every node is inferred.

What it does: resolves the outputs to the nodes that produce them (refusing one that is
switched off where outputs were asked for by path, and a learnable tensor returned as an
output), refuses networks over ``Limits.max_parameters``, ``Limits.max_weight_bytes``
(parameters and buffers, each at its dtype) and ``Limits.max_activation_bytes`` (the peak
of an eval forward, per sample: :func:`archspec._ir.activation_peak`), before anything is
allocated, and initialisers that do not fit their tensors, warns where a switched-off add or mul
passes a first input smaller than what it would have made, where a list item switched off
by ``when: false`` moves the checkpoint keys of a later item that holds weights, and where
a node feeds nothing (a :class:`SpecWarning`), and containers that each read a value computed
inside the other (they could not run as one call each).

What it deliberately does not do: change a node's shape or costs (the walk made them).
"""

from __future__ import annotations

import math
import warnings

from .. import ops
from .._errors import SpecError, SpecLimitError, SpecReferenceError, SpecSchemaError, SpecShapeError, SpecWarning
from .._ir import ABSENT, INPUT, activation_peak, readers
from .._init_fns import init_fits_float32, missing_fans
from ..ops import fmt_bytes, fmt_shape
from ..ops._common import broadcast
from .refs import live
from .state import State

__all__ = ["resolve_outputs", "check_calls", "check_limits", "check_activations", "check_init", "warn_off_joins", "warn_renumbered",
           "mark_usage"]


def warn_off_joins(state: State) -> None:
    """A switched-off add or mul passes its first input: warn where that input is smaller
    than what the join would have made (a gate written first is an easy trap)."""
    g = state.g
    joins = dict(g.off_joins)
    joins.update({p: (n.op, n.data_inputs) for p, n in g.nodes.items()
                  if not n.enabled and not n.implicit and ops.REGISTRY[n.op].broadcast})
    for path, (op, inputs) in joins.items():
        try:
            sources = [live(state, r, absent_ok=True) for r in inputs]
        except SpecError:
            continue
        shapes = [state.shape_of(s) for s in sources if s != ABSENT and (s == INPUT or g.nodes[s].enabled)]
        if len(shapes) < 2 or any(s is None for s in shapes) or sources[0] == ABSENT:
            continue
        full = broadcast(shapes)
        if full is not None and shapes[0] != full:
            name = path.split("#", 1)[0]
            loc = g.alias_locs.get(path) or (g.nodes[path].loc if path in g.nodes else None)
            warnings.warn(SpecWarning(
                f"'{name}' is switched off, so it passes its first input ({fmt_shape(shapes[0])}), not the "
                f"{fmt_shape(full)} its {op} would make: write the main path first in 'from'", loc, name), stacklevel=3)


def warn_renumbered(state: State) -> None:
    """A list numbers only its items that are on: warn where an item switched off by
    ``when: false`` makes a later item that holds weights (parameters or buffers) take a
    lower number, since its checkpoint keys move with it (``downsample.1.weight``, not
    ``downsample.2.weight``). One warning per list, naming the first such item."""
    g = state.g
    if not g.renumbered:
        return
    holding = set()  # every path that holds weights or has a node below it that does: one pass over the nodes
    for p, n in g.nodes.items():
        if n.enabled and n.tensors:
            parts = p.split(".")
            holding.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    for shift in g.renumbered:
        for path, place in shift.moved:
            if path in holding:
                warnings.warn(SpecWarning(
                    f"this list item is switched off ({shift.why}) and takes no number, so the items after it "
                    f"are numbered lower: '{place}', which holds weights, is '{path}' (its checkpoint keys move with it)",
                    shift.loc, shift.off,
                    hint="a list numbers only the items that are on; to keep each item's key whatever is on, "
                         "name the items (a mapping body)"), stacklevel=3)
                break


def resolve_outputs(state: State) -> None:
    g = state.g
    kept = []
    for output in g.outputs:
        if state.switched_off(output.ref) and not output.implicit:  # the graph's last node stands for its input
            if g.taps:
                raise SpecReferenceError(f"the node '{output.ref}' is switched off ('when' is false), so it has no value",
                                         None)
            continue  # its node was left out: so is the output
        output.node = live(state, output.ref)
        if output.node != INPUT and not g.nodes[output.node].batched:
            node = g.nodes[output.node]
            raise SpecShapeError(
                f"the network returns the learnable tensor '{node.display}' (output '{output.name}'), which has no "
                "batch dimension", node.loc, node=node.display, expected="outputs computed from the network input",
                hint="combine it with what the input computes (add, mul) before it is returned")
        kept.append(output)
    if not any(not o.training_only for o in kept):
        raise SpecReferenceError("every output that eval mode returns is switched off ('when' is false)",
                                 g.outputs[0].loc if g.outputs else None)
    g.outputs = kept


def check_init(state: State) -> None:
    """Every initialiser fits its tensor, statically: those that need a fan (kaiming_*,
    xavier_*) only tensors of 2 or more dimensions, and no initialiser may make values
    float32 cannot hold (nothing is scanned after filling)."""
    g = state.g
    for rule in g.init:
        for tensor, spec in rule.tensors.items():
            for p, name in ((p, t) for p in g.order for t in rule.targets(g.nodes[p], tensor)):  # weight: also qkv.weight
                node = g.nodes[p]
                shape = node.tensors.get(name)
                if shape is None or not rule.selects(node) or ops.REGISTRY[node.op].tensor:
                    continue
                where = dict(node=f"init rule {rule.index + 1}")
                fn = missing_fans(spec, shape)
                if fn is not None:
                    raise SpecSchemaError(
                        f"{fn} cannot initialise '{node.display}.{name}' ({fmt_shape(shape)}): it needs a tensor "
                        "of 2 or more dimensions", rule.loc, **where,
                        hint="select conv2d and linear nodes with 'ops' for fan-based initialisers")
                if not init_fits_float32(spec, shape):
                    raise SpecSchemaError(
                        f"the rule makes '{node.display}.{name}' hold values beyond float32 (inf or nan)", rule.loc,
                        **where, expected="arguments whose values float32 can hold")
    for p in g.order:
        node = g.nodes[p]
        if ops.REGISTRY[node.op].tensor and not init_fits_float32(node.concrete.init, node.tensors[""]):
            raise SpecSchemaError(f"'init' makes '{node.display}' hold values beyond float32 (inf or nan)",
                                  node.loc, node=node.display, expected="arguments whose values float32 can hold")


def check_limits(state: State) -> None:
    total = sum(state.g.nodes[p].n_params for p in state.g.order)
    if total > state.limits.max_parameters:
        biggest = max(state.g.order, key=lambda p: state.g.nodes[p].n_params)
        node = state.g.nodes[biggest]
        raise SpecLimitError(
            f"the network would have {total:,} parameters ({fmt_bytes(total * 4)} in float32), over the limit of "
            f"{state.limits.max_parameters:,} (Limits.max_parameters)",
            node.loc, node=node.display,
            notes=[(node.loc, f"the largest node, '{node.display}', has {node.n_params:,}")],
        )
    total = sum(state.g.nodes[p].weight_bytes for p in state.g.order)
    if total > state.limits.max_weight_bytes:
        biggest = max(state.g.order, key=lambda p: state.g.nodes[p].weight_bytes)
        node = state.g.nodes[biggest]
        held = ", ".join(f"{name or node.display} {fmt_shape(shape)} {node.dtypes.get(name, ops.DEFAULT_DTYPE)}"
                         for name, shape in sorted(node.tensors.items(), key=lambda t: -math.prod(t[1]))[:3])
        raise SpecLimitError(
            f"the network's parameters and buffers would take {fmt_bytes(total)} ({total:,} bytes), over the limit of "
            f"{state.limits.max_weight_bytes:,} (Limits.max_weight_bytes)",
            node.loc, node=node.display,
            notes=[(node.loc, f"the largest node, '{node.display}', holds {fmt_bytes(node.weight_bytes)}: {held}")],
        )


def check_activations(state: State) -> None:
    """The activation memory of an eval forward, per sample, at the declared input (after
    the in-place plan, whose ops share their input's memory), located where it peaks."""
    peak = state.g.activations = activation_peak(state.g)
    if peak.bytes <= state.limits.max_activation_bytes or peak.at is None:
        return
    node = state.g.nodes[peak.at]
    notes = []
    for source, n in peak.live[:3]:
        if source == INPUT:
            notes.append((None, f"the input {fmt_shape(state.g.input_shape)} takes {fmt_bytes(n)}"))
        else:
            held = state.g.nodes[source]
            notes.append((held.loc, f"'{held.display}' makes {fmt_shape(held.shape)}, {fmt_bytes(n)}"))
    raise SpecLimitError(
        f"a forward would hold {fmt_bytes(peak.bytes)} of activations per sample here ({peak.bytes:,} bytes in float32, "
        f"for an input of {fmt_shape(state.g.input_shape)}), over the limit of {state.limits.max_activation_bytes:,} "
        "(Limits.max_activation_bytes)", node.loc, node=node.display, notes=notes,
        hint=("the input alone is over the limit: declare a smaller one ('input:', or --input C,H,W)"
              if dict(peak.live).get(INPUT, 0) > state.limits.max_activation_bytes else None))


def mark_usage(state: State) -> None:
    g = state.g
    consumers = readers(g, g.order)
    for p in g.order:
        node = g.nodes[p]
        if consumers[p] == 0 and not node.implicit:
            warnings.warn(SpecWarning("this node feeds nothing: no node reads it and it is not an output",
                                      node.loc, node.display), stacklevel=2)



def check_calls(state: State) -> None:
    """Every container runs as one call (see :mod:`archspec._codegen`), so within each body
    the calls must have an order: refuse containers that each read a value computed inside
    the other (``a`` reads ``b``'s output while ``b`` reads ``a.z``, which ``a`` computes
    from its other input), naming the reads; the nodes themselves make no cycle."""
    g = state.g
    up: dict[str | None, tuple[str, ...]] = {None: ()}

    def chain(c: str | None) -> tuple[str, ...]:  # a container and those around it, innermost first
        if c not in up:
            up[c] = (c,) + chain(g.containers[c].parent)
        return up[c]

    edges: dict[str | None, dict[str, dict[str, tuple[str, str]]]] = {}  # body -> unit -> units it reads, by one read
    for r in g.order:
        cr = chain(g.owner(r))
        for s in g.nodes[r].sources:
            if s == INPUT:
                continue
            cs = chain(g.owner(s))
            common = next((c for c in cr if c in cs), None)
            ur, us = _unit(cr, common, r), _unit(cs, common, s)
            if ur != us:
                edges.setdefault(common, {}).setdefault(ur, {}).setdefault(us, (r, s))
    for body, reads in edges.items():
        cycle = _unit_cycle(reads)
        if cycle is not None:
            pairs = [reads[a][b] for a, b in zip(cycle, cycle[1:])]
            first = g.nodes[pairs[0][0]]
            names = " and ".join(f"'{u}'" for u in cycle[:-1]) if len(cycle) == 3 else ", ".join(f"'{u}'" for u in cycle[:-1])
            raise SpecReferenceError(
                f"{names} each read a value computed inside the other, so neither can run before the other",
                first.loc, node=first.display,
                notes=[(g.nodes[r].loc, f"'{g.nodes[r].display}' reads '{g.nodes[s].display}'") for r, s in pairs],
                hint="a container runs as one call: read the value from a node outside both, or move the reading node "
                     "into the container it reads")


def _unit(chain: tuple[str, ...], common: str | None, node: str) -> str:
    """What runs ``node`` as one step of the body ``common``: the container of its ``chain``
    right inside ``common``, or the node itself where ``common`` computes it."""
    k = chain.index(common) if common is not None else len(chain)
    return chain[k - 1] if k > 0 else node


def _unit_cycle(reads: dict[str, dict[str, tuple[str, str]]]) -> list[str] | None:
    """A cycle of steps each reading the next (first repeated at the end), or None."""
    done: set[str] = set()
    for start in reads:
        if start in done:
            continue
        path, stack = [start], [iter(reads[start])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                done.add(path.pop())
                stack.pop()
            elif nxt in path:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in done:
                path.append(nxt)
                stack.append(iter(reads.get(nxt, {})))
    return None
