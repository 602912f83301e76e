"""``extends: {spec: ..., nest: ...}``: a base spec made one node of its variant's graph.

What it does: :func:`nest_base` turns a loaded base into what its variant merges over when
the variant nests it: with ``nest: backbone`` the base's whole graph becomes the node
``backbone`` (a ``seq`` of the base's top-level nodes, so ``backbone.layer3.0.conv1``);
with ``nest: {backbone: features}`` the base's node ``features`` alone becomes the node
``backbone`` (its children keyed ``backbone.0``, ...). The base's ``params``, ``blocks``,
``input`` and ``requires`` come along; its ``description`` (it describes another network),
its ``outputs`` and ``returns`` (the variant's graph has its own end), and its ``checkpoint_keys`` (they rename keys of the base's own
checkpoints, which the nested copy no longer has) are dropped. Its ``init`` rules apply
inside the nested node only: each path gets the node's prefix (``layer*.conv1`` becomes
``backbone.layer*.conv1``; with a selection, ``features.3.*`` becomes ``backbone.3.*``),
every rule gets ``within: backbone`` (it selects nothing outside), and a path outside a selection
(``classifier.1``) is left out, with the rule when it had no other, as is a rule by ``ops``
none of which the selection writes. :func:`with_init` puts them before the variant's own
rules, which come after (the later rule wins); :func:`drop_unused_params` leaves out, after
the merge, the base's parameters that nothing names any more (its classifier's, once the
variant has removed or not taken it), which are not the variant's to warn about.
Every value keeps the :class:`Loc` of the base file it came from.

What it deliberately does not do: read files or merge (:mod:`.chain`, :mod:`.extends`), or
know what the nested nodes are: whatever the base's graph holds moves as data.
"""

from __future__ import annotations

import difflib
from typing import Any

from .._errors import Loc, SpecReferenceError, SpecSchemaError
from .._expr import names_used
from .._limits import Limits
from .locations import Document, Locations

__all__ = ["Nest", "drop_unused_params", "extends_target", "nest_base", "with_init"]

#: the keys of an ``extends:`` mapping
EXTENDS_KEYS = ("spec", "nest")
#: what a nested base loses: its graph's end, and its own checkpoints' renaming
DROPPED = ("description", "outputs", "returns", "checkpoint_keys")
WILDCARDS = "*?["


class Nest:
    """How a variant nests its base: the node it becomes (``name``), the base's node it
    takes (``select``; None: the whole graph) and where ``nest`` is written."""

    def __init__(self, name: str, select: str | None, loc: Loc | None) -> None:
        self.name, self.select, self.loc = name, select, loc


def extends_target(doc: Document) -> tuple[Any, Nest | None]:
    """What ``extends:`` names (the base, as a string still to check) and how it nests it."""
    value = doc.data.get("extends")
    if not isinstance(value, dict):
        return value, None
    locs = doc.locs
    for key in value:
        if key not in EXTENDS_KEYS:
            close = difflib.get_close_matches(str(key), EXTENDS_KEYS, n=1, cutoff=0.6)
            raise SpecSchemaError(f"unknown key '{key}' in 'extends'", locs.key(("extends", key)),
                                  expected="spec (the base) and nest (the node it becomes)",
                                  hint=f"did you mean '{close[0]}'?" if close else None)
    if "spec" not in value:
        raise SpecSchemaError("'extends' names no spec", locs.value(("extends",)),
                              expected="spec: the base, such as 'archspec:resnet/resnet50'")
    nest = value.get("nest")
    loc = locs.value(("extends", "nest"))
    if nest is None:
        return value["spec"], None
    if isinstance(nest, str):
        return value["spec"], Nest(_name(nest, loc), None, loc)
    if isinstance(nest, dict) and len(nest) == 1:
        (name, select), = nest.items()
        if isinstance(select, str) and select:
            return value["spec"], Nest(_name(name, locs.key(("extends", "nest", name))), select,
                                       locs.value(("extends", "nest", name)))
    raise SpecSchemaError(f"'nest' is {nest!r}", loc, expected="a node name (the base's graph becomes that node) or "
                                                             "{name: node} (the base's node becomes that one)")


def _name(name: Any, loc: Loc | None) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise SpecSchemaError(f"'nest' names {name!r}", loc, expected="a node name: letters, digits and '_'")
    return name


def nest_base(base: Document, nest: Nest, base_shown: str) -> Document:
    """``base`` as its variant sees it when it nests it (see the module docstring)."""
    graph = base.data.get("graph")
    if not isinstance(graph, dict) or not graph:
        raise SpecReferenceError(f"'nest' makes the graph of '{base_shown}' a node, but it has no graph", nest.loc,
                                 expected="a base spec with a graph")
    data = {k: v for k, v in base.data.items() if k not in DROPPED}
    locs = base.locs.copy()
    for key in DROPPED:
        locs.drop_subtree((key,))
    locs.drop_subtree(("graph",))
    if nest.select is None:
        data["graph"] = {nest.name: {"seq": graph}}
        locs.copy_subtree(base.locs, ("graph",), ("graph", nest.name, "seq"))
        locs.set_value(("graph", nest.name), base.locs.value(("graph",)) or nest.loc)
    else:
        if nest.select not in graph:
            close = difflib.get_close_matches(nest.select, [str(k) for k in graph], n=1, cutoff=0.6)
            raise SpecReferenceError(f"'nest' takes the node '{nest.select}' of '{base_shown}', which has no such node",
                                     nest.loc, expected="a top-level node of the base: " + ", ".join(map(str, list(graph)[:12])),
                                     hint=f"did you mean '{close[0]}'?" if close else None)
        data["graph"] = {nest.name: graph[nest.select]}
        locs.copy_subtree(base.locs, ("graph", nest.select), ("graph", nest.name))
    locs.set_value(("graph",), base.locs.value(("graph",)) or nest.loc)
    if nest.loc is not None:
        locs.set_key(("graph", nest.name), nest.loc)
    data["init"], init_locs = _init(base, nest, base_shown)
    locs.drop_subtree(("init",))
    locs.copy_subtree(init_locs, ("init",))
    if not data["init"]:
        del data["init"]
    return Document(data, locs, base.path, base.files)


def _init(base: Document, nest: Nest, base_shown: str) -> tuple[list, Locations]:
    """The base's ``init`` rules restricted to the nested node, and their positions."""
    rules = base.data.get("init")
    ops = _ops_written(base.data["graph"].get(nest.select), base.data.get("blocks")) if nest.select else None
    out: list = []
    locs = Locations()
    if not isinstance(rules, list):
        return out, locs
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):  # the schema will say what is wrong with it, in the base file
            rule_paths = None
        else:
            rule_paths = rule.get("paths")
        j = len(out)
        if not isinstance(rule, dict) or (rule_paths is not None and not isinstance(rule_paths, list)):
            out.append(rule)
            locs.copy_subtree(base.locs, ("init", i), ("init", j))
            continue
        if rule_paths is None:
            if nest.select is not None and ops is not None and isinstance(rule.get("ops"), list) \
                    and not set(rule["ops"]) & ops:
                continue  # none of its ops is in the node the variant takes (MobileNetV3's linear classifier)
            out.append({**rule, "within": _within(nest, rule.get("within"))})
            locs.copy_subtree(base.locs, ("init", i), ("init", j))
            continue
        kept = [(p, k) for k, old in enumerate(rule_paths)
                if (p := _moved(old, nest, base.locs.value(("init", i, "paths", k)), base_shown)) is not None]
        if not kept:
            continue  # every path lies outside the node the variant takes
        out.append({**rule, "paths": [p for p, _ in kept], "within": _within(nest, rule.get("within"))})
        locs.copy_subtree(base.locs, ("init", i), ("init", j))
        locs.drop_subtree(("init", j, "paths"))
        paths_loc = base.locs.value(("init", i, "paths")) or base.locs.value(("init", i))
        if paths_loc is not None:
            locs.set_value(("init", j, "paths"), paths_loc)
        for n, (_, k) in enumerate(kept):
            loc = base.locs.value(("init", i, "paths", k))
            if loc is not None:
                locs.set_value(("init", j, "paths", n), loc)
    return out, locs


def _within(nest: Nest, within: Any) -> Any:
    """A rule's ``within`` inside the nested node: the node itself, or the rule's own one moved."""
    if within is None:
        return nest.name
    return _moved(within, nest, None, "") if isinstance(within, str) else within


def _ops_written(*parts: Any) -> set[str] | None:
    """The op names written in ``parts`` (a node and the blocks), or None where one is an
    expression (``op: $act``) and so could be any."""
    ops: set[str] = set()
    stack = list(parts)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            op = item.get("op")
            if isinstance(op, str):
                if op.startswith("$"):
                    return None
                ops.add(op)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return ops


def drop_unused_params(data: dict, locs: Locations, child: dict, limits: Limits) -> None:
    """Leave out, in place, the base's parameters that nothing of the merged spec names and
    the variant does not write: once the variant has removed the base's classifier, or taken
    only its features, the classifier's settings (ResNet's ``num_classes``, MobileNetV3's
    ``dropout``, ``last_channel``) are not the variant's to warn about."""
    params = data.get("params")
    if not isinstance(params, dict):
        return
    own = child.get("params") if isinstance(child.get("params"), dict) else {}
    used = names_used({k: v for k, v in data.items() if k != "params"}, limits)
    for name in [n for n in params if n not in used and n not in own]:
        del params[name]
        locs.drop_subtree(("params", name))


def _moved(pattern: Any, nest: Nest, loc: Loc | None, base_shown: str) -> str | None:
    """A base rule's path pattern as it reads inside the nested node; None where it selects
    nothing there (a path outside a selection)."""
    if not isinstance(pattern, str):
        return pattern  # the schema refuses it, pointing into the base
    if nest.select is None:
        return f"{nest.name}.{pattern}"
    head = nest.select + "."
    if pattern == nest.select:
        return nest.name
    if pattern.startswith(head):
        return nest.name + "." + pattern[len(head):]
    literal = pattern[:min((pattern.index(c) for c in WILDCARDS if c in pattern), default=len(pattern))]
    if len(literal) < len(pattern) and (head.startswith(literal) or literal == nest.select):
        # a wildcard comes before the node's name is spelt out: it may select inside it or not
        raise SpecSchemaError(
            f"init path '{pattern}' of '{base_shown}' cannot be carried into 'nest', which takes its node '{nest.select}'",
            loc, expected=f"a path that starts with '{head}' (or one outside it, which is left out)",
            hint="write the rule for the nested node in the variant's own 'init'")
    return None


def with_init(data: dict, locs: Locations, base_init: list, base_init_locs: Locations) -> None:
    """Put the nested base's ``init`` rules before the variant's own, in place: with
    ``nest`` the two lists add up, as each applies to its own part of the graph."""
    own = data.get("init")
    if not base_init or not isinstance(own, list):
        return
    moved = Locations()
    moved.copy_subtree(base_init_locs, ("init",))
    for j in range(len(own)):
        moved.copy_subtree(locs, ("init", j), ("init", len(base_init) + j))
    own_value = locs.own_value(("init",))
    key = locs.own_key(("init",))
    locs.drop_subtree(("init",))
    locs.copy_subtree(moved, ("init",))
    if own_value is not None:
        locs.set_value(("init",), own_value)
    if key is not None:
        locs.set_key(("init",), key)
    data["init"] = [*base_init, *own]
