"""The ``extends`` merge: a variant's data laid over its base's, each value keeping its place.

What it does: :func:`merge` merges mappings key by key (a key the variant adds standing
where the variant writes it), replaces lists and scalars (``requires:`` lists add up),
removes a key the variant sets to ``null`` (naming one the base lacks is an error), and
replaces a node whole when the variant changes its kind or its op; every merged value
keeps the :class:`Loc` of the file it came from.

What it deliberately does not do: read files or follow the chain (:mod:`.chain`).
"""

from __future__ import annotations

import difflib
from typing import Any

from .._errors import SpecReferenceError
from .locations import Locations, PathT

__all__ = ["NODE_KIND_KEYS", "is_node_path", "merge"]

NODE_KIND_KEYS = ("op", "use", "seq", "concat", "add", "dense")


def merge(base: dict, base_locs: Locations, child: dict, child_locs: Locations) -> tuple[dict, Locations]:
    """Merge a variant over its base, keeping each value's source position.

    The rules, applied recursively: mappings merge key by key, in the base's order, a key
    the variant adds standing where the variant writes it among the base's keys (before
    the next base key it names, or after the last; at the end otherwise); lists and
    scalars replace (but ``requires:`` lists add up: the base's packages, then the
    variant's others); a ``null`` value removes the key from the base
    (naming a key the base does not have is an error: it is a typo); a node that changes
    its kind (``op``, ``use``, ``seq``, ...) or names another op or block replaces the base
    node whole instead of merging into it.
    """
    out = base_locs.copy()
    data = _merge(base, child, (), out, child_locs)
    root = child_locs.own_value(())
    if root is not None:
        out.set_value((), root)
    return data, out


def is_node_path(path: PathT) -> bool:
    """Whether ``path`` is where a node stands: ``graph.<name>``, ``blocks.<name>``, or a
    child of a node's body (``graph.features.seq.conv0``)."""
    if len(path) < 2 or path[0] not in ("graph", "blocks"):
        return False
    at_node = True  # path[1] names a node (or a block)
    i = 2
    while i < len(path):
        if at_node:
            if path[i] not in ("seq", "concat", "add", "dense"):
                return False
            i += 1
            at_node = False
        else:
            i += 1
            at_node = True
    return at_node


def _merge(base: Any, child: Any, path: PathT, out: Locations, child_locs: Locations) -> Any:
    if isinstance(base, dict) and isinstance(child, dict) and not (is_node_path(path) and _replaces(base, child)):
        result = dict(base)
        for key, value in child.items():
            sub = path + (key,)
            if value is None:
                if key not in base:
                    close = difflib.get_close_matches(str(key), [str(k) for k in base], n=1, cutoff=0.6)
                    raise SpecReferenceError(
                        f"'{key}: null' removes nothing: the base spec has no '{key}' here",
                        child_locs.key(sub), expected="the name of a key of the base: " + ", ".join(map(str, list(base)[:12])),
                        hint=f"did you mean '{close[0]}'?" if close else None,
                    )
                result.pop(key, None)
                out.drop_subtree(sub)
                continue
            if sub == ("requires",) and isinstance(base[key] if key in base else None, list) and isinstance(value, list):
                result[key] = _union(base[key], value, out, child_locs)
            elif key in base:
                result[key] = _merge(base[key], value, sub, out, child_locs)
            else:
                result[key] = value
                out.copy_subtree(child_locs, sub)
            key_loc = child_locs.own_key(sub)
            if key_loc is not None:
                out.set_key(sub, key_loc)
        own = child_locs.own_value(path)
        if own is not None:
            out.set_value(path, own)
        return _ordered(result, base, child)
    key_loc = out.own_key(path)
    out.drop_subtree(path)
    out.copy_subtree(child_locs, path)
    if key_loc is not None and out.own_key(path) is None:
        out.set_key(path, key_loc)
    return child


def _union(base: list, child: list, out: Locations, child_locs: Locations) -> list:
    """``requires:`` of a variant and its base: the base's packages, then the variant's
    others (a variant uses its base's ops too), each item located in its own file."""
    result = list(base)
    for i, item in enumerate(child):
        if item not in result:
            out.copy_subtree(child_locs, ("requires", i), ("requires", len(result)))
            result.append(item)
    return result


def _ordered(result: dict, base: dict, child: dict) -> dict:
    """``result`` with each key the variant adds placed where the variant writes it: right
    before the next key of the base that the variant names after it, or else right after
    the last one it names before it (at the end if it names none). Order matters in a
    body: a squeeze-and-excitation inserted between a block's ``bn3`` and its ``sum`` is
    written as ``se: {...}`` followed by ``sum: {...}`` in the variant."""
    added = [k for k in child if k not in base and k in result]
    if not added:
        return result
    order = [k for k in base if k in result]
    written = list(child)
    for key in added:
        at = written.index(key)
        after = next((k for k in written[at + 1:] if k in base and k in order), None)
        before = next((k for k in reversed(written[:at]) if k in order), None)
        if after is not None:
            order.insert(order.index(after), key)
        elif before is not None:
            order.insert(order.index(before) + 1, key)
        else:
            order.append(key)
    return {k: result[k] for k in order}


def _replaces(base: dict, child: dict) -> bool:
    """Whether ``child`` is a node of another kind than ``base`` (so it replaces it)."""
    base_kind = next((k for k in NODE_KIND_KEYS if k in base), None)
    child_kind = next((k for k in NODE_KIND_KEYS if k in child), None)
    if base_kind is None or child_kind is None:
        return False
    if base_kind != child_kind:
        return True
    return base_kind in ("op", "use") and base[base_kind] != child[child_kind]
