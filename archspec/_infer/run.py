"""The run of *infer*: the parts in order over one graph.

What it does: walks the nodes in topological order (:mod:`.order`, :mod:`.walk`),
collecting independent errors up to ``MAX_ERRORS`` (a node whose input failed is skipped),
then settles the containers (switched off, or standing for the node that makes their
output), runs the whole-graph checks (:mod:`.checks`) and plans in-place operations.

What it deliberately does not do: know any op or any rule; the parts do.
"""

from __future__ import annotations

from .._errors import SpecError, SpecErrors, raise_collected
from .._inplace import inplace_plan
from .._ir import Graph
from .._limits import DEFAULT_LIMITS, Limits
from .._schema import MAX_ERRORS
from .checks import check_activations, check_calls, check_init, check_limits, mark_usage, resolve_outputs, warn_off_joins, warn_renumbered
from .order import order
from .refs import live
from .state import State
from .walk import walk_node

__all__ = ["Inference", "infer"]


class Inference:
    """One run of *infer* over ``graph``: its :class:`State` and the parts in order."""

    def __init__(self, graph: Graph, limits: Limits) -> None:
        self.state = State(graph, limits)

    def run(self) -> Graph:
        state = self.state
        g = state.g
        g.order = []
        for path in order(g):
            node = g.nodes[path]
            try:
                walk_node(state, node)
            except SpecErrors as e:
                state.errors.extend(e.errors)
                state.failed.add(path)
            except SpecError as e:
                state.errors.append(e)
                state.failed.add(path)
            if state.errors.distinct >= MAX_ERRORS:
                break
            if node.enabled and path not in state.failed:
                g.order.append(path)
        if state.errors:
            raise_collected(state.errors, MAX_ERRORS)
        for path, c in g.containers.items():
            if path in state.disabled_containers or not state.container_enabled(path):
                c.enabled = False
                continue
            c.value = live(state, path)
            c.shape = state.shape_of(c.value)
            c.sources = [live(state, r, absent_ok=True) for r in c.inputs]
        resolve_outputs(state)
        check_calls(state)
        check_limits(state)
        check_init(state)
        g.inplace = inplace_plan(g)
        check_activations(state)
        warn_off_joins(state)
        warn_renumbered(state)
        if not g.taps:  # a feature extractor leaves the head unused on purpose
            mark_usage(state)
        return g


def infer(graph: Graph, limits: Limits = DEFAULT_LIMITS) -> Graph:
    """Infer shapes and costs in place and return the graph (see the package docstring)."""
    return Inference(graph, limits).run()
