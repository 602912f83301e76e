"""The walk's state: the graph as it is built, and the typed sites its steps pass on.

What it does: :class:`State` holds what the walk has built so far (nodes, containers,
the aliases of switched-off nodes, the errors collected) and counts nodes, connections
and nesting against the limits; :class:`Site` says where a node is being built and
:class:`BodySite` where a body is being walked, so that each step takes one of them
instead of a row of positional arguments; :class:`Entry` is one child of a body after
expansion, and :class:`Scope` the block stack a body sees.

What it deliberately does not do: decide anything about the spec; every rule lives in
the module that applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any

from .._errors import ErrorList, Loc, SpecLimitError, raise_collected
from .._ir import Container, Deferred, Node, Renumbered, UseSite
from .._limits import Limits
from .._schema import MAX_ERRORS


@dataclass
class Entry:
    """One child of a body after repeat/when/inline expansion."""

    name: str | None  # None until a list body numbers it
    model: Any
    env: dict[str, Any]
    raw: tuple  # data path of the node
    when: bool | Deferred
    loc: Loc | None
    copy: int = 0  # the repeat index (later copies read the copy before them, not `from`)


class Scope:
    """What a body's children can see: the block stack, for messages and recursion checks."""

    def __init__(self, sites: tuple[UseSite, ...] = ()) -> None:
        self.sites = sites


@dataclass(frozen=True)
class BodySite:
    """Where a body is walked: its data path, the container it fills (``None`` for the
    graph), the ref its children read, the names they see, its kind and its scope; for a
    block's own body, the refs its declared ``inputs:`` stand for (``skip``), by name."""

    raw: tuple
    parent: str | None
    input_ref: str
    env: dict[str, Any]
    kind: str  # seq, concat, add, dense
    scope: Scope
    named: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        """What its children's paths start with."""
        return f"{self.parent}." if self.parent else ""


@dataclass(frozen=True)
class Site:
    """Where a node is built: its path, its data path, its container, what it reads, the
    names it sees, its ``when``, its position and its scope; and, for an op parameter that
    names a node (``like:``), its siblings (name to path) and the body it is in."""

    path: str
    raw: tuple
    parent: str | None
    inputs: list[str]
    env: dict[str, Any]
    when: bool | Deferred
    loc: Loc | None
    scope: Scope
    siblings: Mapping[str, str] = field(default_factory=dict)
    body: BodySite | None = None


@dataclass
class State:
    """The graph as the walk builds it, and the counts the limits bound."""

    limits: Limits
    nodes: dict[str, Node] = field(default_factory=dict)
    containers: dict[str, Container] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    alias_locs: dict[str, Loc] = field(default_factory=dict)
    off_joins: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    renumbered: list[Renumbered] = field(default_factory=list)
    errors: ErrorList = field(default_factory=ErrorList)  # counts distinct mistakes: one in many copies is one
    count: int = 0
    edges: int = 0
    depth: int = 0

    def count_node(self, loc: Loc | None, where: str) -> None:
        """One more node; over ``Limits.max_nodes`` is an error."""
        self.count += 1
        if self.count > self.limits.max_nodes:
            raise SpecLimitError(f"the graph has more than {self.limits.max_nodes:,} nodes (Limits.max_nodes)", loc,
                                 node=where)

    def add_node(self, node: Node) -> None:
        self.edges += len(node.inputs)
        if self.edges > self.limits.max_edges:
            raise SpecLimitError(f"the graph has more than {self.limits.max_edges:,} connections (Limits.max_edges)", node.loc,
                                 node=node.display, hint="a dense body of n children makes about n*n/2 of them")
        if node.implicit:
            self.count_node(node.loc, node.display)
        self.nodes[node.path] = node

    def raise_errors(self) -> None:
        raise_collected(self.errors, MAX_ERRORS)
