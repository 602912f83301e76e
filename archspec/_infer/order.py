"""Ordering: a topological order of the graph's nodes, or the cycle that prevents one.

What it does: orders the nodes so that each comes after what it reads (references
followed as if every `when` held), keeping document order wherever the dependencies
allow; a cycle is a :class:`SpecReferenceError` that prints it, with a note per edge.

What it deliberately does not do: decide which nodes are switched off (the walk does,
in this order).
"""

from __future__ import annotations

import heapq

from .._errors import SpecReferenceError
from .._ir import INPUT, Graph
from .refs import static

__all__ = ["order"]


def order(g: Graph) -> list[str]:
    """A topological order that follows document order wherever dependencies allow."""
    deps = {path: [d for d in (static(g, r) for r in node.inputs) if d != INPUT] for path, node in g.nodes.items()}
    found = _stable_topo(list(g.nodes), deps)
    if len(found) != len(g.nodes):
        raise _cycle_error(g, deps, set(g.nodes) - set(found))
    return found


def _cycle_error(g: Graph, deps: dict[str, list[str]], stuck: set[str]) -> SpecReferenceError:
    start = min(stuck, key=list(g.nodes).index)
    path = [start]
    seen = {start: 0}
    current = start
    while True:
        current = next(d for d in deps[current] if d in stuck)
        if current in seen:
            cycle = path[seen[current]:] + [current]
            break
        seen[current] = len(path)
        path.append(current)
    names = [g.nodes[p].display for p in cycle]
    first = g.nodes[cycle[0]]
    return SpecReferenceError(
        "the graph has a cycle: " + " -> ".join(reversed(names)),
        first.loc, node=first.display,
        notes=[(g.nodes[p].loc, f"'{g.nodes[p].display}' reads {_what(g, p, q)}'{g.nodes[q].display}'")
               for p, q in reversed(list(zip(cycle, cycle[1:])))],
        hint="a node can only read nodes that do not (directly or indirectly) read it",
    )


def _what(g: Graph, p: str, q: str) -> str:
    """How node ``p`` reads ``q``: for its value, or (``like:``) only for its shape."""
    node = g.nodes[p]
    if any(static(g, r) == q for r in node.data_inputs):
        return ""
    return "the shape of "


def _stable_topo(paths: list[str], deps: dict[str, list[str]]) -> list[str]:
    position = {p: i for i, p in enumerate(paths)}
    indegree = {p: len(deps[p]) for p in paths}
    users: dict[str, list[str]] = {p: [] for p in paths}
    for p in paths:
        for d in deps[p]:
            users[d].append(p)
    heap = [(position[p], p) for p in paths if indegree[p] == 0]
    heapq.heapify(heap)
    out = []
    while heap:
        _, p = heapq.heappop(heap)
        out.append(p)
        for u in users[p]:
            indegree[u] -= 1
            if indegree[u] == 0:
                heapq.heappush(heap, (position[u], u))
    return out
