"""Joins: the implicit nodes of concat, add and dense bodies, and nodes switched off.

What it does: adds the ``#in`` concat that feeds each dense layer its input and the
layers before it; records a node switched off by ``when`` as an alias of what it read
(a join left out passes its first input through; a parameter node stands for nothing);
adds the join that closes a concat, add or dense body (``#concat``, ``#add``, ``#dense``).

What it deliberately does not do: wire a seq (the body does, :mod:`.bodies`), or check
that joined shapes agree (infer does).
"""

from __future__ import annotations

from typing import Any

from .. import ops
from .._errors import SpecSchemaError
from .._ir import Node, NodeRole
from .._values import with_article
from .context import Context
from .state import BodySite, Entry, State


def dense_input(state: State, entry: Entry, path: str, at: BodySite, branch_outputs: list[str]) -> str:
    """The ``#in`` concat a dense layer at ``path`` reads: the body's input and the layers before it."""
    join = f"{path}#in"
    state.add_node(Node(join, *ops.join_for(at.kind), [at.input_ref, *branch_outputs], entry.loc, parent=at.parent,
                        role=NodeRole.DENSE_INPUT, sites=at.scope.sites, env=entry.env))
    return join


def switch_off(state: State, entry: Entry, alias: str, inputs: list[str]) -> None:
    """Record ``entry``, left out, as the alias ``alias``: whatever reads it reads what its
    op says it stands for (:meth:`~archspec.ops.OpDef.stands_for_when_off`: its input, the
    first input of a join, nothing for a param), or its input (a container, a block);
    the next node in a seq, too."""
    model: Any = entry.model
    op = ops.REGISTRY.get(getattr(model, "op", None)) if isinstance(getattr(model, "op", None), str) else None
    state.aliases[alias] = op.stands_for_when_off(inputs) if op is not None else inputs
    if op is not None and op.broadcast:
        state.off_joins[alias] = (op.name, list(inputs))
    state.alias_locs[alias] = entry.loc


def close(ctx: Context, state: State, at: BodySite, entries: list[Entry], branch_outputs: list[str]) -> str:
    """Add the join that ends the concat, add or dense body ``at``; its path."""
    kind, parent, raw = at.kind, at.parent, at.raw
    join_path = f"{parent}#{kind}"
    join_inputs = [at.input_ref, *branch_outputs] if kind == "dense" else branch_outputs
    op, params = ops.join_for(kind)
    if kind == "add" and len(entries) < 2:
        raise SpecSchemaError(f"an add needs at least 2 branches, found {len(entries)}", ctx.loc(raw), node=parent,
                              hint="a branch switched off by 'when' drops out of the sum; an add of one branch is that branch")
    if not join_inputs:
        what = f"every branch of this {kind} is switched off ('when' is false)" if entries else f"{with_article(kind)} needs at least one branch"
        raise SpecSchemaError(what, ctx.loc(raw), node=parent, expected="at least one branch")
    container = state.containers.get(parent) if parent else None
    state.add_node(Node(join_path, op, params, join_inputs,
                        container.loc if container else ctx.loc(raw), parent=parent, role=NodeRole.JOIN, sites=at.scope.sites,
                        env=at.env))
    return join_path
