"""A user op's parameters, read from its constructor's signature or from ``params=``.

What it does: turns each keyword argument of the factory, by its annotation (or its
default's type), into a spec value type of :mod:`archspec._values` (:func:`value_type`);
sets apart the arguments filled from the input (:data:`FROM_INPUT`), ``inplace`` (always
``False``), ``device``/``dtype`` (kept at their defaults) and those with no spec form
(kept at their defaults; without one, registration fails); reads ``params=`` (a mapping
of names to types, or an :class:`OpParams` model) instead where given; and refuses
parameters a node could not pass: named like a node key, positional only, or not taken
by the factory, and arguments that nothing would give.

What it deliberately does not do: make the pydantic model or build the module (both
:mod:`._user`, which calls this once per registration).
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic_core import PydanticCustomError

from .._values import Bool, Choice, Float, Int, IntList, Str, _ValueType
from ._registry import OpParams, Shape

__all__ = ["FROM_INPUT", "ParamFields", "read_params", "value_type"]

#: constructor arguments filled from the node's input shape (per sample), never spec parameters
FROM_INPUT: dict[str, Callable[[Shape], Any]] = {
    "in_shape": tuple,
    "in_channels": lambda s: s[0],
    "num_features": lambda s: s[0],
    "num_channels": lambda s: s[0],
    "in_features": lambda s: s[-1],
}
#: the keys every node uses for itself: no op parameter may be called so
_NODE_KEYS = ("op", "use", "params", "from", "when", "repeat", "index", "inline", "doc", "seq", "concat", "add", "dense")
_PLACEMENT = ("device", "dtype")
_EMPTY = inspect.Parameter.empty


def value_type(tp: Any, default: Any) -> _ValueType | None:
    """The spec value type of a parameter annotated ``tp`` (``None``: no spec form)."""
    if tp is _EMPTY or tp is Any:
        if default is _EMPTY or type(default) not in (bool, int, float, str):
            return None
        tp = type(default)
    if isinstance(tp, _ValueType):
        return tp
    if get_origin(tp) is Annotated:
        found = next((m for m in get_args(tp)[1:] if isinstance(m, _ValueType)), None)
        return found if found is not None else value_type(get_args(tp)[0], default)
    nullable = False
    if get_origin(tp) in (Union, types.UnionType):
        args = get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            return None
        tp, nullable = rest[0], True
    if tp is bool:
        return None if nullable else Bool()
    if tp is int:
        return Int(nullable=nullable)
    if tp is float:
        return Float(nullable=nullable)
    if tp is str:
        return Str(nullable=nullable)
    if nullable:
        return None
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        return Choice(*choices) if choices and all(isinstance(c, str) for c in choices) else None
    if origin in (list, tuple, collections.abc.Sequence) and get_args(tp) in ((int,), (int, Ellipsis)):
        return IntList()
    return None


_SUPPORTED = ("int, float, bool, str, a Literal of strings, list[int], X | None for numbers and strings, "
              "or Annotated[..., <an archspec.ops value type>]")


def _signature(factory: Any, name: str, qualname: str) -> tuple[inspect.Signature | None, dict[str, Any]]:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to read
        return None, {}
    target = factory.__init__ if isinstance(factory, type) else factory
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # an annotation naming something undefined: the parameters' own (strings) are read
        hints = {}
    return sig, hints


def _check_default(name: str, pname: str, vt: _ValueType, default: Any) -> None:
    if default is _EMPTY:
        return
    try:
        vt.check(default)
    except PydanticCustomError:
        raise TypeError(f"op '{name}': the default of '{pname}', {default!r}, is not {vt.expected}") from None


@dataclass
class ParamFields:
    """What a factory's signature and ``params=`` give: the model's fields (``None``: the
    :class:`OpParams` model given as ``params=``, used as it is) and the arguments that
    are not spec parameters."""

    fields: dict[str, Any] | None = None
    inputs: list[str] = field(default_factory=list)  # filled from the input shape
    fixed: list[str] = field(default_factory=list)  # no spec can set them (they keep their defaults)
    inplace: bool = False  # the factory takes `inplace` (always given False)


def read_params(name: str, factory: Callable[..., Any], qualname: str, params: Any) -> ParamFields:
    """The parameters of the user op ``name``, or a ``TypeError`` saying why it cannot have them."""
    sig, hints = _signature(factory, name, qualname)
    arguments = sig.parameters if sig is not None else {}
    found = ParamFields()
    signature_fields = _from_signature(name, qualname, arguments, hints, params, found)
    if params is None:
        found.fields = signature_fields
    elif isinstance(params, type) and issubclass(params, OpParams):
        found.fields = None
    elif isinstance(params, collections.abc.Mapping):
        found.fields = _from_mapping(name, params)
    else:
        raise TypeError(f"op '{name}': params must be None, a mapping of names to types, or an OpParams model")
    names = list(params.model_fields) if found.fields is None else list(found.fields)
    _check_names(name, qualname, sig, arguments, names, found.inputs)
    return found


def _from_signature(name: str, qualname: str, arguments: Mapping[str, inspect.Parameter], hints: dict[str, Any],
                    params: Any, found: ParamFields) -> dict[str, Any]:
    """The fields the signature gives (read only without ``params=``); the arguments
    that come from the input, ``inplace`` and the fixed ones are noted in ``found``."""
    fields: dict[str, Any] = {}
    for pname, p in arguments.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if pname in FROM_INPUT:
            found.inputs.append(pname)
        elif pname == "inplace":
            found.inplace = True
        elif pname in _PLACEMENT and p.default is not _EMPTY:
            continue
        elif params is None:
            if p.kind is p.POSITIONAL_ONLY:
                if p.default is _EMPTY:
                    raise TypeError(f"op '{name}': {qualname} takes '{pname}' by position only; archspec passes "
                                    "parameters by keyword")
                continue
            annotation = hints.get(pname, p.annotation)
            vt = value_type(annotation, p.default)
            if vt is None:
                if p.default is _EMPTY:
                    what = (f"its annotation {annotation!r} names something undefined" if isinstance(annotation, str)
                            else "it has no spec form")
                    raise TypeError(f"op '{name}': parameter '{pname}' of {qualname} has no default and {what} "
                                    f"(annotate it {_SUPPORTED})")
                found.fixed.append(pname)
                continue
            _check_default(name, pname, vt, p.default)
            fields[pname] = (Annotated[Any, vt], ... if p.default is _EMPTY else p.default)
    return fields


def _from_mapping(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The fields ``params={"p": float, "k": (int, 3)}`` gives."""
    model_fields = {}
    for pname, given in params.items():
        tp, default = given if isinstance(given, tuple) else (given, _EMPTY)
        vt = value_type(tp, default)
        if vt is None:
            raise TypeError(f"op '{name}': parameter '{pname}' is given as {given!r}; give a type ({_SUPPORTED}), "
                            "or a pair (type, default)")
        _check_default(name, pname, vt, default)
        model_fields[pname] = (Annotated[Any, vt], ... if default is _EMPTY else default)
    return model_fields


def _check_names(name: str, qualname: str, sig: inspect.Signature | None, arguments: Mapping[str, inspect.Parameter],
                 names: list[str], inputs: list[str]) -> None:
    """Refuse parameter names a node could not pass to the factory, and factory arguments
    that no parameter and no input gives."""
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in arguments.values())
    for pname in names:
        if pname in _NODE_KEYS:
            raise TypeError(f"op '{name}': a parameter named '{pname}' would mean two things in a node (every node "
                            f"uses '{pname}' for itself); rename it")
        if pname in FROM_INPUT or pname == "inplace":
            raise TypeError(f"op '{name}': '{pname}' is filled from the input, or fixed, by archspec: it cannot be a "
                            "parameter")
        keyword = pname in arguments and arguments[pname].kind is not inspect.Parameter.POSITIONAL_ONLY
        if sig is not None and not open_kwargs and not keyword:
            raise TypeError(f"op '{name}': {qualname} takes no keyword argument '{pname}'")
    if sig is not None:
        given = set(names) | set(inputs) | {"inplace"}
        for pname, p in arguments.items():
            if p.default is _EMPTY and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and pname not in given:
                raise TypeError(f"op '{name}': {qualname} needs '{pname}', which no parameter and no input gives")
