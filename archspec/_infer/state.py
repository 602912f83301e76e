"""What the walk of *infer* shares: the graph, the limits, and what has been decided so far.

What it does: holds, in one typed object, the state that reference chasing, deferred
values, the shape walk and the whole-graph checks read and fill in (the containers
switched off by a shape-dependent `when`, the values of lazy block arguments, the errors
collected, the nodes that failed), and answers the small questions about a source they all
ask (its shape, whether it has a batch dimension, its layout, whether it is switched off).

What it deliberately does not do: follow references (:mod:`.refs`) or evaluate anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import ErrorList
from .._ir import INPUT, Graph
from .._limits import Limits

__all__ = ["State"]


@dataclass
class State:
    """The state of one run of *infer* over ``g``."""

    g: Graph
    limits: Limits
    disabled_containers: set[str] = field(default_factory=set)  # switched off by a shape-dependent `when`
    decided: set[str] = field(default_factory=set)  # containers whose deferred `when` is evaluated
    lazy_values: dict[int, Any] = field(default_factory=dict)  # id(Lazy) -> its value
    errors: ErrorList = field(default_factory=ErrorList)  # counts distinct mistakes: one in many copies is one
    failed: set[str] = field(default_factory=set)  # nodes whose inference failed (their readers are skipped)

    def shape_of(self, source: str) -> tuple[int, ...] | None:
        return self.g.input_shape if source == INPUT else self.g.nodes[source].shape

    def is_image(self, source: str) -> bool:
        if source == INPUT:
            return len(self.g.input_shape) == 3
        return self.g.nodes[source].image

    def is_channels_last(self, source: str) -> bool:
        return source != INPUT and self.g.nodes[source].channels_last

    def batched(self, source: str) -> bool:
        return source == INPUT or self.g.nodes[source].batched

    def label(self, source: str) -> str:
        return "the input" if source == INPUT else f"'{self.g.nodes[source].display}'"

    def container_enabled(self, path: str) -> bool:
        c = self.g.containers[path]
        while c is not None:
            if c.path in self.disabled_containers or c.when is False:
                return False
            c = self.g.containers.get(c.parent) if c.parent else None
        return True

    def switched_off(self, ref: str) -> bool:
        """Whether ``ref`` (a node or container path) was left out by a shape-dependent `when`."""
        g = self.g
        if ref in g.nodes and not g.nodes[ref].enabled:
            return True
        parent = g.nodes[ref].parent if ref in g.nodes else ref
        return parent is not None and parent in g.containers and not self.container_enabled(parent)
