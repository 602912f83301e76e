"""Spec parameters: overrides applied and checked, and parameters that nothing uses.

What it does: applies overrides (``compile_spec(path, num_classes=10)``, ``--set``,
``block_config.2=36`` reaching into a list) to the spec's declared parameters, refusing
unknown names, wrong types and parameters that are themselves expressions; warns about a
spec parameter that no expression names (usually a misspelt one).

What it deliberately does not do: evaluate expressions (that is :mod:`.context`) or
check block parameters (:mod:`.blocks`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from .._errors import Loc, SpecReferenceError, SpecSchemaError, SpecWarning, did_you_mean
from .._expr import SHAPE_NAMES, is_expression, names_used
from .._limits import Limits
from .._load import Document
from .._values import shown


def apply_overrides(doc: Document, spec: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's parameters with ``overrides`` applied; unknown names and wrong types are errors.

    A dotted name reaches into a list or mapping parameter: ``block_config.2=36``.
    """
    params = dict(spec.params)
    for name in params:
        if not name.isascii() or not name.isidentifier():
            raise SpecSchemaError(f"'{name}' cannot be a spec parameter name", doc.locs.key(("params", name)),
                                  expected="an ASCII identifier: letters, digits and '_', not starting with a digit")
        if name in SHAPE_NAMES:
            raise SpecSchemaError(f"'{name}' cannot be a spec parameter: it names the input shape in expressions",
                                  doc.locs.key(("params", name)), expected="another name")
        values = params[name] if isinstance(params[name], list) else [params[name]]
        if any(is_expression(v) for v in values):
            raise SpecSchemaError(f"the spec parameter '{name}' is the expression {shown(params[name])}",
                                  doc.locs.value(("params", name)), node=f"param {name}", expected="a plain value",
                                  hint="spec parameters are values that users override; compute derived values where "
                                       "they are used (out: '${2 * width}'), or write '$$' for a literal '$'")
    for raw_name, value in overrides.items():
        name, _, rest = str(raw_name).partition(".")
        if name not in params:
            known = sorted(params)
            raise SpecReferenceError(
                f"unknown parameter '{name}' (set to {shown(value)})",
                None,
                expected="one of: " + (", ".join(known) if known else "(this spec declares no params)"),
                hint=did_you_mean(name, known),
            )
        default = params[name]
        loc = doc.locs.value(("params", name))
        if rest:
            params[name] = _set_dotted(name, default, rest.split("."), value, loc)
            continue
        problem = _type_mismatch(default, value)
        if problem:
            raise SpecSchemaError(
                f"parameter '{name}' set to {shown(value)}", None, expected=problem,
                notes=[(loc, f"'{name}' is declared here with the default {shown(default)}")],
            )
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise SpecSchemaError(f"parameter '{name}' set to {value}", None, expected="a number of float range") from None
        params[name] = value
    return params


def _set_dotted(name: str, container: Any, keys: list[str], value: Any, loc: Loc | None, at: str = "") -> Any:
    """``container`` with the entry at ``keys`` set to ``value`` (``at``: the dotted path so
    far, for messages: ``setting.1``)."""
    at = at or name
    key = keys[0]
    here = f"{at}.{key}"
    declared = [(loc, f"'{name}' is declared here")]
    if isinstance(container, list):
        try:
            index = int(key)
        except ValueError:
            index = None
        if index is None or not -len(container) <= index < len(container):
            raise SpecReferenceError(f"'{at}' has {len(container)} entries; there is no entry '{key}'", None,
                                     expected=f"an index from 0 to {len(container) - 1}", notes=declared)
        out = list(container)
        out[index] = _set_dotted(name, out[index], keys[1:], value, loc, here) if len(keys) > 1 else value
        if len(keys) == 1 and _type_mismatch(container[index], value):
            raise SpecSchemaError(f"'{here}' set to {shown(value)}", None, expected=_type_mismatch(container[index], value),
                                  notes=[(loc, f"'{name}' is declared here; '{here}' is {shown(container[index])}")])
        return out
    if isinstance(container, dict):
        out = dict(container)
        out[key] = _set_dotted(name, out.get(key), keys[1:], value, loc, here) if len(keys) > 1 else value
        return out
    raise SpecReferenceError(f"'{at}' is {shown(container)}, which has no entries to set", None, notes=declared)


def _type_mismatch(default: Any, value: Any) -> str | None:
    """What ``value`` should have been, given the type of ``default``; ``None`` if it fits."""
    if default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, list):
        return None if isinstance(value, list) else "a list"
    return None


def warn_unused_params(doc: Document, params: Mapping[str, Any], limits: Limits) -> None:
    """A spec parameter that no expression of the spec (or of its bases) names is usually a
    misspelt one, such as a variant's ``patch_sise: 8`` that leaves ``patch_size`` as it
    was: warn, with the nearest name that is used."""
    used = names_used(doc.data, limits)
    for name in params:
        if name not in used:
            hint = did_you_mean(name, sorted(used & set(params)))
            warnings.warn(SpecWarning(f"the parameter '{name}' is never used: no expression names it"
                                      + (f"; {hint}" if hint else ""),
                                      doc.locs.key(("params", name)), f"params.{name}"), stacklevel=4)
