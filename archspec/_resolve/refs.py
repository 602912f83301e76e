"""``from:``: the names a node reads, and the siblings they name.

What it does: evaluates a ``from:`` (a name, a list of names, or an expression that makes
either, before shapes are known) and resolves each name among the node's siblings,
``input`` and, in a block's own body, the block's declared ``inputs:`` (``skip``), with the
nearest name and the block stack in the message when it is none of them; resolves the
same way an op parameter that names a node (``like: input``, an
:attr:`~archspec.ops.OpDef.refs` parameter), whose message names that key.

What it deliberately does not do: read nested nodes (a body's output is read through its
container), or check how many inputs a node takes (:mod:`.nodes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import Loc, SpecReferenceError, SpecSchemaError, did_you_mean, name_list
from .._expr import is_expression
from .._ir import INPUT, site_notes
from .._values import shown
from .context import Context
from .state import BodySite


def from_refs(ctx: Context, from_: Any, env: Mapping[str, Any], raw: tuple, where: str) -> list[str]:
    """The names a ``from:`` reads; it may be an expression (``"${'skip' if proj else 'input'}"``)
    or a list whose items are, evaluated before shapes are known."""
    items = from_ if isinstance(from_, list) else [from_]
    if not isinstance(from_, list) and is_expression(from_):
        value = ctx.value(from_, env, raw, where, structural=True)
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise SpecSchemaError("'from' is an empty list", ctx.loc(raw), node=where, expected="a node name or a list of them")
        raws = [raw] * len(items)
    else:
        raws = [raw + (i,) if isinstance(from_, list) else raw for i in range(len(items))]
    names = []
    for item, item_raw in zip(items, raws):
        value = ctx.value(item, env, item_raw, where, structural=True) if is_expression(item) else item
        if not isinstance(value, str) or not value:
            raise SpecSchemaError(f"'from' is {shown(value)}", ctx.loc(item_raw), node=where,
                                  expected="a node name (a string) or a list of them")
        names.append(value)
    return names


def ref(ctx: Context, name: str, siblings: Mapping[str, str], at: BodySite, raw: tuple, where: str, key: str = "from") -> str:
    """The path of the node ``name`` reads in the body ``at`` (``siblings``: name to path);
    ``key`` is the key that names it (``from``, or an op parameter such as ``like``)."""
    if name == INPUT:
        return at.input_ref
    if name in at.named:  # a block's declared input: inputs: [input, skip]
        return at.named[name]
    if name in siblings:
        return siblings[name]
    known = [INPUT, *(n for n in at.named if n != INPUT), *(n for n, p in siblings.items() if p != where)]
    scope = at.scope
    inside = f" in block '{scope.sites[-1].block}'" if scope.sites else ""
    hint = did_you_mean(name, known)
    if "." in name:
        hint = f"'{key}' names a sibling (a node of the same body) or 'input'; read a nested node through its container's output"
    raise SpecReferenceError(
        f"'{key}' names '{name}', which is not a node here{inside}", _from_loc(ctx, raw, name), node=where,
        expected="one of: " + name_list(known), hint=hint, notes=site_notes(scope.sites),
    )


def _from_loc(ctx: Context, raw: tuple, name: str) -> Loc | None:
    """The position of ``name`` in a ``from:`` value (the item, when it is a list)."""
    value = ctx.raw(raw)
    if isinstance(value, list) and name in value:
        return ctx.loc(raw + (value.index(name),))
    return ctx.loc(raw)
