"""Reference chasing: the node that really produces what a reference names.

What it does: follows a reference through containers (a container stands for its output,
or its input when it is switched off), aliases and nodes switched off (a node switched off
stands for its input; a join switched off for its first input), for ordering
(:func:`static`: as if every `when` held) and for the walk (:func:`live`: with the `when`s
decided). A loop through nodes switched off, and a node switched off that nothing can
stand in for, are :class:`SpecReferenceError` s.

What it deliberately does not do: decide a `when` (the walk does, before it asks).
"""

from __future__ import annotations

from .. import ops
from .._errors import SpecReferenceError
from .._ir import ABSENT, INPUT, Graph, Node, NodeRole, display_path
from .state import State

__all__ = ["static", "live"]


def static(g: Graph, ref: str) -> str:
    """The node that produces ``ref`` when every `when` holds (for ordering)."""
    seen: list[str] = []
    while not (ref == INPUT or ref in g.nodes):
        if ref in seen:
            raise _loop_error(g, seen[seen.index(ref):])
        seen.append(ref)
        if ref in g.containers:
            ref = g.containers[ref].output
        else:
            targets = g.aliases[ref]
            ref = targets[0] if targets else INPUT
    return ref


def live(state: State, ref: str, reader: Node | None = None, absent_ok: bool = False) -> str:
    """The node that really produces ``ref``, now that `when`s are decided: a container
    stands for its output (or its input, when switched off), a node switched off for its
    input. A node switched off that reads nothing (a ``param``) stands for nothing: a
    join drops it (``absent_ok`` gives :data:`ABSENT`), anything else is an error."""
    g = state.g
    seen: list[str] = []
    while ref != INPUT:
        if ref in seen:
            raise _loop_error(g, seen[seen.index(ref):])
        seen.append(ref)
        if ref in g.containers:
            c = g.containers[ref]
            ref = c.input if ref in state.disabled_containers else c.output
            continue
        if ref in g.aliases:
            inputs, loc = g.aliases[ref], g.alias_locs.get(ref)
        else:
            node = g.nodes[ref]
            if node.enabled:
                return ref
            inputs, loc = node.data_inputs, node.loc
            if node.role is NodeRole.OP:  # as resolve records a node switched off (a join passes its first input through)
                inputs = ops.REGISTRY[node.op].stands_for_when_off(inputs)
        if not inputs and absent_ok:
            return ABSENT
        if len(inputs) != 1:
            name = display_path(ref)
            if not inputs:
                raise SpecReferenceError(
                    f"'{name}' is switched off ('when' is false) and reads no input, so nothing can stand in for it",
                    reader.loc if reader else loc, node=reader.display if reader else name,
                    notes=[(loc, f"'{name}' is defined here")] if loc and reader else [],
                    hint="a join (add, mul, concat) reading it leaves it out; switch its other readers off too, "
                         "or give them 'from'")
            raise SpecReferenceError(
                f"'{name}' is switched off ('when' is false) and reads {len(inputs)} inputs, so nothing can stand in "
                "for it", reader.loc if reader else loc, node=reader.display if reader else name,
                notes=[(loc, f"'{name}' is defined here")] if loc and reader else [],
                hint="switch its readers off too, or give them 'from' naming what they should read "
                     "(a join such as add or concat switched off passes its first input through)",
            )
        ref = inputs[0]
    return INPUT


def _loop_error(g: Graph, refs: list[str]) -> SpecReferenceError:
    names = [display_path(r) for r in refs]
    loc = next((g.alias_locs.get(r) or (g.nodes[r].loc if r in g.nodes else None) for r in refs), None)
    return SpecReferenceError(
        "the graph has a cycle through nodes that are switched off: " + " -> ".join(names + names[:1]),
        loc, node=names[0], hint="a node can only read nodes that do not (directly or indirectly) read it")
