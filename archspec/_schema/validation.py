"""Validation of a loaded document: the packages of ``requires:`` looked up, the ops it
names found among the installed packages, the spec model applied, and every problem raised
as a located error (at most ``MAX_ERRORS``, in file order).

What it deliberately does not do: word the errors (that is :mod:`._translate`), or import a
package a spec requires (only its metadata is read).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .. import ops
from .._errors import SpecError, SpecReferenceError, raise_collected
from .._expr import is_expression
from .._load import Document
from .key_types import MAX_ERRORS
from .nodes import op_model
from .spec import spec_model
from .translate import _translate


def validate(doc: Document) -> Any:
    """Validate a loaded document; raise located :class:`SpecError` s for every problem.

    First the packages of ``requires:`` are looked up (metadata only), and ops the spec
    names that are not registered are looked for among the installed packages' entry
    points (:func:`archspec.ops.ensure_ops`): a spec of built-in ops loads none."""
    missing, installed = _requirements(doc)
    named = _ops_named(doc.data)
    unknown = sorted(n for n in named if n not in ops.REGISTRY and not is_expression(n))
    if unknown:
        ops.ensure_ops(unknown, installed)
    model = spec_model(named)
    try:
        spec = model.model_validate(doc.data)
        errors: list[SpecError] = []
    except ValidationError as e:
        errors = _translate(e, doc)
    if missing:
        packages = " ".join(dist for _, dist in missing)
        for err in errors:
            if err.message.startswith("unknown op"):
                named_too = f"; or {err.hint}" if err.hint and err.hint.startswith("did you mean") else ""
                err.hint = (f"it may come from a package this spec requires that is not installed: pip install {packages}"
                            + named_too)
        errors = [err for err, _ in missing] + errors
    if not errors:
        return spec
    errors.sort(key=lambda err: (err.loc.file, err.loc.line, err.loc.col) if err.loc else ("", 0, 0))
    raise_collected(errors, MAX_ERRORS)


def _requirements(doc: Document) -> tuple[list[tuple[SpecError, str]], list[str]]:
    """The packages of ``requires:`` that are missing (an error at each, with the name) and
    those installed. Reads their metadata only: nothing is imported. Items that are not
    package names are left to the schema."""
    data = doc.data.get("requires") if isinstance(doc.data, dict) else None
    missing: list[tuple[SpecError, str]] = []
    installed: list[str] = []
    for i, item in enumerate(data if isinstance(data, list) else []):
        parsed = ops.parse_requirement(item) if isinstance(item, str) else None
        if parsed is None:
            continue
        dist, least = parsed
        version = ops.installed_version(dist)
        loc = doc.locs.value(("requires", i))
        if version is None:
            missing.append((SpecReferenceError(f"this spec needs the package '{dist}', which is not installed", loc,
                                               hint=f"install it: pip install {dist}"), dist))
        elif least is not None and not ops.version_at_least(version, least):
            missing.append((SpecReferenceError(f"this spec needs {dist}>={least}, but {dist} {version} is installed", loc,
                                               hint=f"upgrade it: pip install -U '{dist}>={least}'"), f"'{dist}>={least}'"))
        else:
            installed.append(dist)
    return missing, installed


def validate_op_node(doc: Document, raw: tuple, op: str, block: bool = False) -> Any:
    """Check the node at ``raw`` (whose ``op`` is an expression that evaluated to ``op``)
    against that op's model; raise located :class:`SpecError` s as :func:`validate` does."""
    model = op_model(op, block)
    data: Any = doc.data
    for key in raw:
        data = data[key]
    try:
        return model.model_validate({**data, "op": op})
    except ValidationError as e:
        errors = _translate(e, doc, prefix=raw, op=op)
    raise_collected(errors, MAX_ERRORS)


def _ops_named(data: Any) -> set[str]:
    """Every string under an ``op`` key anywhere in ``data`` (the ops a spec may name), and
    the ops its init rules name."""
    found: set[str] = set()
    rules = data.get("init") if isinstance(data, dict) else None
    for rule in rules if isinstance(rules, list) else ():
        names = rule.get("ops") if isinstance(rule, dict) else None
        if isinstance(names, list):
            found.update(n for n in names if isinstance(n, str))
    stack = [data]
    while stack:  # no recursion: the YAML depth limit bounds it anyway
        item = stack.pop()
        if isinstance(item, dict):
            op = item.get("op")
            if isinstance(op, str):
                found.add(op)
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))
    return found

