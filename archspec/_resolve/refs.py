"""``from:``: the names a node reads, and the nodes they name.

What it does: evaluates a ``from:`` (a name, a list of names, or an expression that makes
either, before shapes are known) and resolves each name among the node's siblings,
``input`` and, in a block's own body, the block's declared ``inputs:`` (``skip``), with the
nearest name and the block stack in the message when it is none of them; resolves the
same way an op parameter that names a node (``like: input``, an
:attr:`~archspec.ops.OpDef.refs` parameter), whose message names that key.
A dotted name (``backbone.layer3``, ``backbone.features.4``) reads a node nested in an
earlier sibling container, part by part; a missing part is named with the children there,
a path into the reader itself is refused (its value would come from inside the container
it feeds), and a part switched off by ``when`` stands for what that node stands for.

What it deliberately does not do: read into a container written after the reader (its
nodes do not exist yet when the reader is wired), check that containers reading values
inside each other can still run as one call each (*infer* does, on the decided graph), or
check how many inputs a node takes (:mod:`.nodes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import Loc, SpecReferenceError, SpecSchemaError, did_you_mean, name_list
from .._expr import is_expression
from .._ir import INPUT, NodeRole, display_path, site_notes
from .._values import shown, with_article
from .context import Context
from .state import BodySite, State


class Siblings(dict):
    """The names a body's children see (name to path, in document order), and the walk's
    :class:`State`, through which a dotted name reaches into a sibling container already
    built. A plain dict works too: then a dotted name is refused."""

    def __init__(self, names: Mapping[str, str], state: State) -> None:
        super().__init__(names)
        self.state = state


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
    first = name.partition(".")[0]
    if "." in name and first in siblings and isinstance(siblings, Siblings):
        return _nested(ctx, name, siblings, raw, where, key)
    known = [INPUT, *(n for n in at.named if n != INPUT), *(n for n, p in siblings.items() if p != where)]
    scope = at.scope
    inside = f" in block '{scope.sites[-1].block}'" if scope.sites else ""
    hint = did_you_mean(name, known)
    if "." in name:
        hint = (f"a dotted name reads into a sibling container (a node of the same body), and '{first}' is none here"
                + (f": {hint}" if (hint := did_you_mean(first, known)) else ""))
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


def _nested(ctx: Context, name: str, siblings: Siblings, raw: tuple, where: str, key: str) -> str:
    """The path of the nested node ``name`` (``backbone.layer3``) names, its first part a
    sibling container built before the reader ``where``."""
    state, loc = siblings.state, _from_loc(ctx, raw, name)
    parts = name.split(".")
    path = siblings[parts[0]]
    if path == where:
        raise SpecReferenceError(
            f"'{key}' names '{name}', inside '{where}' itself", loc, node=where,
            expected="a node outside it", hint=f"'{where}' reads its input before it computes anything; a value computed "
                                               f"inside it cannot be that input: read an earlier node")
    order = list(siblings)
    if where in siblings.values() and order.index(parts[0]) > list(siblings.values()).index(where):
        raise SpecReferenceError(
            f"'{key}' names '{name}', inside '{parts[0]}', which is written after '{where}'", loc, node=where,
            expected=f"a node of a container written before '{where}'",
            hint=f"move '{parts[0]}' before '{where}': a dotted path reads into a container already written")
    if path not in state.containers and path not in state.nodes and path not in state.aliases:
        return ".".join([path, *parts[1:]])  # it failed to build: its error is reported already
    for i, part in enumerate(parts[1:], 1):
        if path in state.aliases:  # switched off: what reads a node inside it reads what it stands for
            return path
        if path not in state.containers:
            op = state.nodes[path].op
            raise SpecReferenceError(
                f"'{key}' names '{name}', but '{display_path(path)}' is {with_article(op)} node, with no nodes inside", loc,
                node=where, expected=f"'{'.'.join(parts[:i])}' or a path into a container")
        child = f"{path}.{part}"
        if child in state.containers or child in state.aliases or (
                child in state.nodes and state.nodes[child].role is NodeRole.OP):
            path = child
            continue
        there = _children(state, path)
        raise SpecReferenceError(
            f"'{key}' names '{name}', but '{display_path(path)}' has no node '{part}'", loc, node=where,
            expected=f"a node of '{display_path(path)}': " + name_list(there), hint=did_you_mean(part, there))
    return path


def _children(state: State, path: str) -> list[str]:
    """The names of the nodes directly inside the container ``path`` (switched off ones too), in order."""
    prefix = path + "."
    found = [p[len(prefix):] for p in [*state.nodes, *state.containers, *state.aliases] if p.startswith(prefix)]
    return list(dict.fromkeys(n for n in found if "." not in n and "#" not in n))
