"""Op nodes: the op chosen, its inputs counted, its parameters evaluated; ``checkpoint``.

What it does: checks a node whose ``op`` is an expression against the op it names once
evaluated; builds an op's :class:`Node` (its arity against what it reads, its parameters
evaluated or deferred, their positions; a parameter that names a node, ``like:``, resolved
and wired as an input read for its shape); applies ``checkpoint`` to the container a node
built.

What it deliberately does not do: walk bodies or bind block arguments (:mod:`.bodies`,
:mod:`.blocks`), or check parameter values against shapes (infer does).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .. import ops
from .._errors import Loc, SpecError, SpecErrors, SpecReferenceError, SpecSchemaError, did_you_mean
from .._expr import is_expression
from .._ir import Node, site_notes
from .._schema import validate_op_node
from .._values import shown
from .context import Context
from .refs import ref
from .state import Entry, Scope, Site, State


def chosen_op(ctx: Context, model: Any, site: Site, block: bool) -> Any:
    """A node whose ``op`` is an expression (``op: $activation``), checked against the op
    it names once evaluated; other nodes as they are."""
    if not is_expression(model.op):
        return model
    raw, path = site.raw, site.path
    name = ctx.value(model.op, site.env, raw + ("op",), path, structural=True)
    if isinstance(name, str) and name not in ops.REGISTRY:
        ops.ensure_ops([name])  # an op of an installed package, loaded on first use
    if not isinstance(name, str) or name not in ops.REGISTRY:
        hint = did_you_mean(name, ops.names()) if isinstance(name, str) else None
        if isinstance(name, str) and name in ctx.spec.blocks:
            hint = f"'{name}' is a block: write 'use: {model.op}'"
        raise SpecSchemaError(f"'op' is {shown(name)}, from '{model.op}'", ctx.loc(raw + ("op",)), node=path,
                              expected=ops.known(), hint=hint, notes=site_notes(site.scope.sites))
    try:
        return validate_op_node(ctx.doc, raw, name, block=block)
    except SpecError as e:
        for err in e.errors if isinstance(e, SpecErrors) else [e]:
            err.notes.append((ctx.loc(raw + ("op",)), f"'op' is '{name}' here, from '{model.op}'"))
        raise


def op_node(ctx: Context, state: State, model: Any, site: Site) -> None:
    """Add the node of the op ``model`` at ``site``."""
    op = ops.REGISTRY[model.op]
    path, raw, inputs = site.path, site.raw, site.inputs
    least, most = op.arity
    if most == 0:  # a learnable tensor: it reads nothing (in a seq, not even the node before it)
        if "from" in ctx.raw_keys(raw):
            raise SpecReferenceError(f"{op.name} reads no input, but it has 'from'", ctx.loc(raw + ("from",)), node=path,
                                     hint="leave 'from' out; nodes that use it name it in their own 'from'",
                                     notes=site_notes(site.scope.sites))
        inputs = []
    if least > 1 and op.one_input_with and any(k in ctx.raw_keys(raw) for k in op.one_input_with):
        least = 1  # a constant stands for the second input: {op: mul, constant: 0.5}
    if len(inputs) < least or (most is not None and len(inputs) > most):
        wanted = str(least) if least == most else (f"at least {least}" if most is None else f"{least} to {most}")
        raise SpecReferenceError(
            f"{op.name} takes {wanted} input{'s' if least != 1 or most != 1 else ''}, but it reads {len(inputs)}",
            ctx.loc(raw + ("from",)) if "from" in ctx.raw_keys(raw) else site.loc, node=path,
            hint="give 'from: [a, b]' to name its inputs" if least > 1 else "give 'from' one node",
            notes=site_notes(site.scope.sites),
        )
    params: dict[str, Any] = {}
    param_locs: dict[str, Loc] = {}
    for field_name in op.params.model_fields:
        value = getattr(model, field_name)
        field_raw = raw + (field_name,)
        param_locs[field_name] = ctx.loc(field_raw) or site.loc
        params[field_name] = ctx.value(value, site.env, field_raw, path, structural=field_name in op.refs)
    reads = [shape_ref(ctx, site, name, params[name]) for name in op.refs if params[name] is not None]
    state.add_node(Node(path, op.name, params, [*inputs, *reads], site.loc, param_locs=param_locs, env=site.env,
                        when=site.when, parent=site.parent, sites=site.scope.sites, doc=model.doc, shape_only=len(reads)))


def shape_ref(ctx: Context, site: Site, key: str, name: Any) -> str:
    """The path of the node that the op parameter ``key`` (one of the op's
    :attr:`~archspec.ops.OpDef.refs`, such as ``like``) names for its shape, found as a
    ``from:`` name is: a sibling or ``input``."""
    raw = site.raw + (key,)
    if not isinstance(name, str) or not name:
        raise SpecSchemaError(f"'{key}' is {shown(name)}", ctx.loc(raw), node=site.path,
                              expected="the name of a node (a string), or 'input'", notes=site_notes(site.scope.sites))
    if site.body is None:  # pragma: no cover - every site the walk builds an op at has its body
        raise AssertionError(f"no body to resolve '{key}' in at {site.path}")
    return ref(ctx, name, site.siblings, site.body, raw, site.path, key=key)


def checkpoint(ctx: Context, state: State, entry: Entry, path: str, scope: Scope) -> None:
    """Mark the container built for ``entry`` at ``path`` for checkpointing, if it asks."""
    wanted = getattr(entry.model, "checkpoint", False) if isinstance(entry.model, BaseModel) else False
    if wanted is False:
        return
    raw = entry.raw + ("checkpoint",)
    if is_expression(wanted):
        value = ctx.value(wanted, entry.env, raw, path, structural=True)
        if not isinstance(value, bool):
            raise SpecSchemaError(f"'checkpoint' is {shown(value)}, from '{wanted}'", ctx.loc(raw), node=path,
                                  expected="true or false", notes=site_notes(scope.sites))
        wanted = value
    if not wanted:
        return
    if path not in state.containers:
        raise SpecSchemaError("'checkpoint' is for a block instance or a seq, concat, add or dense body, not one op",
                              ctx.key_loc(raw), node=path, expected="checkpoint on the block or body around it",
                              notes=site_notes(scope.sites))
    state.containers[path].checkpoint = True
