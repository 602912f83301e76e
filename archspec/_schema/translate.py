"""Pydantic's validation errors as located :class:`SpecSchemaError` s: each points at the
offending key or value in the YAML, names the node it lies in, says what was expected
(the keys that would have been right, in the words of the language) and, where it can,
what was probably meant (a close key, PyTorch's name for an argument).

What it deliberately does not do: validate anything itself; a misspelt key's "missing"
twin is dropped, nothing else is.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError

from .. import ops
from .._errors import SpecError, SpecSchemaError, did_you_mean, name_list
from .._expr import is_expression
from .._load import NODE_KIND_KEYS, Document
from .._init_fns import INIT_ARGS, INIT_FIELDS
from .._values import shown, with_article
from .key_types import COMMON_KEYS, CONTAINER_KINDS
from .spec import spec_model


def _translate(exc: ValidationError, doc: Document, prefix: tuple = (), op: str | None = None) -> list[SpecError]:
    seen: set[tuple] = set()
    out: list[SpecError] = []
    errors = [(err, *_raw_path(doc.data, prefix + tuple(err["loc"]))) for err in exc.errors(include_url=False)]
    # a misspelt key reports as "unknown key" *and* "missing key"; keep the first only
    misspelt = set()
    for err, path, _ in errors:
        if err["type"] == "extra_forbidden":
            what, known = _context(doc, path[:-1], op)
            for guess in difflib.get_close_matches(str(path[-1]), known, n=1, cutoff=0.6):
                misspelt.add(path[:-1] + (guess,))
            if _TORCH_NAMES.get(str(path[-1])) in known:
                misspelt.add(path[:-1] + (_TORCH_NAMES[str(path[-1])],))
    for err, path, raw in errors:
        if err["type"] == "missing" and path in misspelt:
            continue
        # a failure inside a nested init function arrives as a ValidationError message; keep it short
        key = (path, err["type"], err["msg"])
        if key in seen:
            continue
        seen.add(key)
        out.append(_one_error(err, path, raw, doc, op))
    return out


def _raw_path(data: Any, loc: tuple) -> tuple[tuple, Any]:
    """The path into the raw data that a pydantic error location names (tags skipped)."""
    path: list = []
    node = data
    for item in loc:
        if isinstance(node, dict) and isinstance(item, str) and item in node:
            path.append(item)
            node = node[item]
        elif isinstance(node, dict) and item == "from_" and "from" in node:
            path.append("from")
            node = node["from"]
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            path.append(item)
            node = node[item]
        elif isinstance(node, dict) and isinstance(item, str) and not item.startswith("<") and item not in node:
            # a key that is not there: 'extra' errors name the key, 'missing' errors too
            path.append(item)
            node = _MISSING
        # union tags and pydantic's own type labels are skipped
    return tuple(path), node


_MISSING = object()


def node_path_of(data: Any, path: tuple) -> str | None:
    """The node path (``features.denseblock1.denselayer2``) that a data path lies in."""
    if not path:
        return None
    head = path[0]
    if head == "init" and len(path) > 1:
        return f"init rule {path[1] + 1 if isinstance(path[1], int) else path[1]}"
    if head == "checkpoint_keys" and len(path) > 1:
        return f"checkpoint_keys rule {path[1] + 1 if isinstance(path[1], int) else path[1]}"
    if head == "outputs" and len(path) > 1:
        return f"output {path[1]}"
    if head == "params" and len(path) > 1:
        return f"param {path[1]}"
    if head == "graph":
        names, rest, node = [], path[1:], data.get("graph") if isinstance(data, dict) else None
        prefix = ""
        in_body = True
    elif head == "blocks" and len(path) > 1:
        blocks = data.get("blocks") if isinstance(data, dict) else None
        node = blocks.get(path[1]) if isinstance(blocks, dict) else None
        names, rest, prefix, in_body = [], path[2:], f"block '{path[1]}'", False
    else:
        return None
    # walk: in a body the next item names a child; in a node it is a key (a container's body or a field)
    for item in rest:
        if in_body:
            names.append(str(item))
            node = node[item] if isinstance(node, (dict, list)) and _has(node, item) else None
            in_body = isinstance(node, list)
            continue
        if isinstance(node, dict) and item in CONTAINER_KINDS:
            node = node.get(item)
            in_body = True
            continue
        break
    inner = ".".join(names)
    if prefix:
        return f"{prefix} at {inner}" if inner else prefix
    return inner or None


def _has(container: Any, item: Any) -> bool:
    if isinstance(container, dict):
        return item in container
    return isinstance(item, int) and 0 <= item < len(container)


def _context(doc: Document, path: tuple, op: str | None = None) -> tuple[str, list[str]]:
    """What kind of mapping ``path`` (a key's parent) is, and the keys it may hold (``op``:
    the op an ``op:`` expression evaluated to, for a node whose op is an expression)."""
    raw: Any = doc.data
    for p in path:
        raw = raw[p] if isinstance(raw, (dict, list)) else None
    if not path:
        return "the spec", list(spec_model(()).model_fields)
    head = path[0]
    if head == "init":
        if len(path) == 2:
            return "an init rule", ["ops", "paths", "weight", "bias"]
        if isinstance(raw, dict) and "fn" in raw and raw["fn"] in INIT_ARGS:
            return f"the initialiser '{raw['fn']}'", ["fn", *INIT_ARGS[raw["fn"]]]
        return "an initialiser", ["fn", *INIT_FIELDS]
    if head == "outputs":
        return "an output", ["node", "training_only", "loss_weight"]
    if head == "checkpoint_keys":
        return "a checkpoint_keys rule", ["match", "replace"]
    is_block = head == "blocks" and len(path) == 2
    extra = ["params", "doc"] if is_block else list(COMMON_KEYS)
    if isinstance(raw, dict):
        name = op if op is not None and is_expression(raw.get("op")) else raw.get("op")
        if isinstance(name, str) and name in ops.REGISTRY:
            fields = ops.REGISTRY[name].params.model_fields
            return f"{with_article(name)} {'block' if is_block else 'node'}", ["op", *fields, *extra]
        for kind in CONTAINER_KINDS:
            if kind in raw:
                return f"a {kind} {'block' if is_block else 'node'}", [kind, *extra, *(["inputs"] if is_block else [])]
    return ("a block" if is_block else "a node"), [*NODE_KIND_KEYS, *extra]


# PyTorch's argument names, which people write from habit
_TORCH_NAMES = {"out_channels": "out", "out_features": "out", "kernel_size": "kernel", "output_size": "size"}
_INFERRED = ("in_channels", "in_features", "num_features")


def _torch_name_hint(key: str, known: list[str]) -> str | None:
    if key in _INFERRED:
        return f"'{key}' is never written: archspec infers it from the node's input shape"
    ours = _TORCH_NAMES.get(key)
    if ours and ours in known:
        return f"archspec calls PyTorch's '{key}' '{ours}'"
    return None


def _one_error(err: dict, path: tuple, raw: Any, doc: Document, op: str | None = None) -> SpecError:
    etype = err["type"]
    node = node_path_of(doc.data, path)
    locs = doc.locs
    if etype == "extra_forbidden":
        key = path[-1]
        what, known = _context(doc, path[:-1], op)
        return SpecSchemaError(
            f"unknown key '{key}' for {what}", locs.key(path), node=node,
            expected="one of: " + name_list(known, 20), hint=_torch_name_hint(str(key), known) or did_you_mean(str(key), known),
        )
    if etype == "missing":
        key = path[-1]
        what, _ = _context(doc, path[:-1], op)
        hint = "a spec starts with 'archspec: 1', the format version" if path == ("archspec",) else None
        return SpecSchemaError(f"missing key '{key}' for {what}", locs.key(path[:-1]) if path[:-1] else locs.value(()), node=node,
                               hint=hint)
    ctx = err.get("ctx") or {}
    if etype in ("archspec_value", "archspec_node", "archspec_unknown_op"):
        loc = locs.value(path)
        if etype == "archspec_unknown_op":
            loc = locs.value(path + ("op",))
        message = err["msg"]
        expected = None
        hint = None
        if etype == "archspec_value" and "expected" in ctx and "found" in ctx:
            message = f"found {ctx['found']}{ctx.get('why', '')}"
            expected = ctx["expected"]
            hint = ctx.get("hint")
            key = path[-1] if path else None
            if "what" in ctx:
                message = f"{ctx['what']} {ctx['found']}"
            elif isinstance(key, str):
                message = f"'{key}': " + message
                if key == "repeat" and not hint and isinstance(raw, (int, float)) and raw <= 0:
                    hint = "to leave a node out, use 'when: false'"
            if not hint and (is_expression(raw) or isinstance(raw, list) and any(is_expression(v) for v in raw)):
                hint = (f"'{key}' cannot be an expression: it is read as it is written, before any parameter is known"
                        if isinstance(key, str) else "this value cannot be an expression: it is read as it is written")
                if path == ("input",):
                    hint += "; give another input with --input C,H,W or compile_spec(..., input_shape=...)"
        elif etype == "archspec_unknown_op":
            message = f"unknown op '{ctx['op']}'"
            expected = ctx["known"]
            hint = ctx["hint"][2:] if ctx["hint"] else None
        elif "expected" in ctx:
            expected = ctx["expected"]
        return SpecSchemaError(message, loc, node=node, expected=expected, hint=hint)
    if etype in ("dict_type", "model_type", "model_attributes_type"):
        return SpecSchemaError(f"found {shown(raw)}", locs.value(path), node=node, expected=_expected_container(path))
    if etype in ("list_type",):
        return SpecSchemaError(f"found {shown(raw)}", locs.value(path), node=node, expected="a list")
    if etype in ("string_type",):
        return SpecSchemaError(f"'{path[-1]}': found {shown(raw)}", locs.value(path), node=node, expected="a string")
    if etype == "value_error" or etype.startswith("assertion"):
        return SpecSchemaError(err["msg"].removeprefix("Value error, "), locs.value(path), node=node)
    return SpecSchemaError(f"{err['msg']} (found {shown(raw) if raw is not _MISSING else 'nothing'})", locs.value(path), node=node)


def _expected_container(path: tuple) -> str:
    if not path:
        return "a mapping"
    last = path[-1]
    return {
        "params": "a mapping of parameter names to values",
        "blocks": "a mapping of block names to block definitions",
        "graph": "a mapping of node names to nodes",
        "outputs": "a mapping of output names to node paths",
        "init": "a list of init rules",
        "checkpoint_keys": "a list of {match, replace} rules",
    }.get(str(last), "a mapping")
