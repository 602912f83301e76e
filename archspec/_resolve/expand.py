"""Expansion: a body's items to its entries, with repeat, when and inline applied.

What it does: unrolls ``repeat`` (each copy sees its index, ``i`` unless ``index:`` names
it, in its name and values), evaluates ``when`` (in a list, and in a dense body, before
shapes are known; in a mapping it may stay :class:`Deferred`), names each copy from its
template, and splices the children of an ``inline`` seq into the enclosing body.

What it deliberately does not do: number a list's entries, check that names are unique
or wire inputs (the body does, :mod:`.bodies`), or build nodes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel

from .._errors import SpecExpressionError, SpecLimitError, SpecSchemaError
from .._expr import SHAPE_NAMES, is_expression
from .._ir import Deferred
from .._values import shown, with_article
from .context import Context
from .names import node_name
from .state import BodySite, Entry, State


def expand(ctx: Context, state: State, body: Any, at: BodySite) -> list[Entry]:
    """Unroll repeats, evaluate static `when`, splice inline seqs: the body's entries."""
    items = list(body.items()) if isinstance(body, dict) else list(enumerate(body))
    entries: list[Entry] = []
    for key, model in items:
        item_raw = at.raw + (key,)
        entries.extend(expand_item(ctx, state, key if isinstance(body, dict) else None, model, item_raw, at))
    return entries


def expand_item(ctx: Context, state: State, name: str | None, model: Any, raw: tuple, at: BodySite) -> list[Entry]:
    """The entries of one item of a body (``name``: its key in a mapping body, else ``None``)."""
    env, kind, where = at.env, at.kind, at.parent
    here = ctx.key_loc(raw) if name is not None else ctx.loc(raw)
    label = f"{where}.{name}" if where and name else (name or where or "graph")
    common = model if isinstance(model, BaseModel) else None
    count, index = 1, "i"
    repeated = False
    if common is not None and common.repeat is not None:
        count = ctx.value(common.repeat, env, raw + ("repeat",), label, structural=True)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            leave_out = isinstance(count, (int, float)) and not isinstance(count, bool) and count <= 0
            raise SpecSchemaError(f"'repeat' is {shown(count)}", ctx.loc(raw + ("repeat",)), node=label,
                                  expected="a positive integer", hint="to leave a node out, use 'when: false'" if leave_out else None)
        if count > ctx.limits.max_repeat:
            raise SpecLimitError(f"'repeat' is {count:,}, over the limit of {ctx.limits.max_repeat:,} (Limits.max_repeat)",
                                 ctx.loc(raw + ("repeat",)), node=label)
        index = common.index
        repeated = True
    if repeated and index in SHAPE_NAMES:
        raise SpecSchemaError(f"'{index}' names the input shape; the repeat index needs another name",
                              ctx.loc(raw + ("index",)), node=label)
    out: list[Entry] = []
    for copy in range(count):
        state.count_node(here, label)
        sub_env = dict(env, **{index: copy}) if repeated else env
        when: bool | Deferred = True
        if common is not None and common.when is not True:
            in_list = name is None or kind == "dense"  # a list numbers its items; a dense layer's input follows its siblings
            when = ctx.value(common.when, sub_env, raw + ("when",), label, structural=in_list)
            if not isinstance(when, (bool, Deferred)):  # a number is refused as a literal is: write a comparison
                raise SpecSchemaError(f"'when' is {shown(when)}, from '{common.when}'", ctx.loc(raw + ("when",)),
                                      node=label, expected="true or false",
                                      hint="compare it: when: \"${stride > 1}\"" if isinstance(when, (int, float)) else None)
        entry_name = None
        if name is not None:
            entry_name = node_name(ctx, name, sub_env, raw, label)
        inline = common.inline if common is not None else False
        if is_expression(inline):
            inline = ctx.value(inline, sub_env, raw + ("inline",), label, structural=True)
            if not isinstance(inline, bool):
                raise SpecSchemaError(f"'inline' is {shown(inline)}", ctx.loc(raw + ("inline",)), node=label,
                                      expected="true or false")
        if inline:
            if not hasattr(model, "seq"):
                raise SpecSchemaError("'inline: true' is only for a seq node", ctx.loc(raw + ("inline",)), node=label,
                                      expected="a node with 'seq:' whose children join the enclosing body")
            if kind != "seq":
                raise SpecSchemaError(f"an inline seq cannot stand in the branches of {with_article(kind)}", ctx.loc(raw + ("inline",)),
                                      node=label, hint="inline splices layers into a sequence; give each branch its own name")
            if name is not None and isinstance(model.seq, list):
                raise SpecSchemaError("an inline seq in a mapping needs named children", ctx.key_loc(raw + ("seq",)),
                                      node=label, expected="its body written as a mapping of names to nodes",
                                      hint="its children join this mapping, so each needs a name (use {i} with repeat)")
            if common.from_ is not None:
                raise SpecSchemaError("an inline seq cannot have 'from'", ctx.key_loc(raw + ("from",)), node=label,
                                      hint="put 'from' on its first child")
            if when is False:
                continue
            if isinstance(when, Deferred):
                raise SpecExpressionError("the 'when' of an inline seq cannot use the input shape", ctx.loc(raw + ("when",)), node=label)
            out.extend(expand(ctx, state, model.seq, replace(at, raw=raw + ("seq",), env=dict(sub_env))))
            continue
        out.append(Entry(entry_name, model, sub_env, raw, when, here, copy))
    return out
