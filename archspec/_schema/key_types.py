"""The value types of the spec's own keys (beside the op parameters' types of
:mod:`archspec._values`), and the language's word lists.

Each type checks one kind of value as it is written (a network name, a ``from:``, a block
parameter's declaration, a ``requires:`` item, the input shape, ...), says what it expected
in the words of a spec author, and carries its JSON Schema.

What it deliberately does not do: know where a value sits (the models do) or evaluate an
expression (*resolve* does; ``_OpExpression`` only lets one through).
"""

from __future__ import annotations

import keyword
import re
from typing import Annotated, Any

from pydantic_core import PydanticCustomError

from .. import ops
from .._errors import did_you_mean
from .._expr import is_expression
from .._values import EXPRESSION_SCHEMA, Text, shown

MAX_ERRORS = 20

COMMON_KEYS = ("from", "when", "repeat", "index", "inline", "checkpoint", "doc")
CONTAINER_KINDS = ("seq", "concat", "add", "dense")
PARAM_TYPES = ("int", "float", "number", "bool", "str", "size", "list", "any")

NAME_RE = re.compile(r"[A-Za-z0-9_]+")  # use with fullmatch: "$" would let a final newline through
#: node names may also hold '-' after the first character (RegNet's ``block1-0``)
NODE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")


def _spec_name(value: str) -> str | None:
    """Why ``value`` cannot name a network, or ``None``."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}", value):
        return f"invalid network name {shown(value)}: use letters, digits, '_', '-' and '.' (at most 100)"
    return None


class _Refs(Text):
    """``from:``: one name or a list of names."""

    expected = "a node name or a list of node names"
    json = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}

    def check(self, value: Any) -> Any:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return value
        raise self.fail(value)


class _Identifier(Text):
    def __init__(self, what: str) -> None:
        super().__init__()
        self.expected = what

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value.isidentifier() or not value.isascii() or keyword.iskeyword(value):
            raise self.fail(value)
        return value


class _Literal(Text):
    def __init__(self, *choices: Any) -> None:
        super().__init__()
        self.choices = choices
        shown_choices = [shown(c) for c in choices]
        self.expected = " or ".join(shown_choices) if len(choices) <= 2 else "one of: " + ", ".join(shown_choices)
        self.json = {"enum": list(choices)}

    def check(self, value: Any) -> Any:
        if value not in self.choices or isinstance(value, bool) != isinstance(self.choices[0], bool):
            hint = did_you_mean(value, [str(c) for c in self.choices]) if isinstance(value, str) else None
            raise PydanticCustomError("archspec_value", "expected {expected}, found {found}",
                                      {"expected": self.expected, "found": shown(value), "hint": hint, "why": ""})
        return value


class _Version(_Literal):
    def check(self, value: Any) -> Any:
        if value != 1 or not isinstance(value, int) or isinstance(value, bool):  # not 1.0: a version is a whole number
            raise PydanticCustomError("archspec_value", "unsupported spec format version {found}",
                                      {"expected": "archspec: 1, the format this version of archspec reads",
                                       "found": shown(value), "what": "unsupported spec format version", "why": ""})
        return value


class _InputShape(Text):
    """The input shape: 1 to 4 entries, each a positive integer or an expression of the
    spec's parameters (``[3, $image_size, $image_size]``), evaluated by *resolve*."""

    expected = ("a shape of 1 to 4 positive integers (or expressions of the parameters): [channels, height, width], "
                "[tokens, features] or [features]")
    json = {"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": 1}, EXPRESSION_SCHEMA]},
            "minItems": 1, "maxItems": 4}

    def check(self, value: Any) -> Any:
        if (isinstance(value, list) and 1 <= len(value) <= 4
                and all((isinstance(v, int) and not isinstance(v, bool) and v > 0) or is_expression(v) for v in value)):
            return tuple(value)
        raise self.fail(value)


class _Plain(Text):
    """A spec parameter value: a number, string, boolean, null or a list of them (lists may
    nest: a table of a family's stages is a list of rows)."""

    expected = "a number, string, boolean, null or a list of them"
    json = {"anyOf": [{"type": ["number", "string", "boolean", "null"]},
                      {"type": "array", "items": {"anyOf": [{"type": ["number", "string", "boolean", "null"]},
                                                            {"type": "array"}]}}]}

    def check(self, value: Any) -> Any:
        scalar = (int, float, str, bool, type(None))
        stack = [value]
        while stack:  # no recursion: the YAML depth limit bounds it anyway
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif not isinstance(item, scalar):
                raise self.fail(value)
        return value


class _ParamDecl(Text):
    """A block parameter: a type name (required), a default value, or {type, default,
    choices, doc}."""

    expected = ("a type name (" + ", ".join(PARAM_TYPES) + ") for a required parameter, a default value, "
                "or {type: ..., default: ..., choices: [...], doc: ...}")
    json = {"anyOf": [
        {"enum": list(PARAM_TYPES)},
        {"type": ["number", "boolean", "null"]},
        {"type": "string"},
        {"type": "array"},
        {"type": "object", "properties": {"type": {"enum": list(PARAM_TYPES)}, "default": {},
                                          "choices": {"type": "array", "minItems": 1}, "doc": {"type": "string"}},
         "additionalProperties": False},
    ]}

    def check(self, value: Any) -> Any:
        if isinstance(value, dict):
            extra = set(value) - {"type", "default", "choices", "doc"}
            if extra:
                key = sorted(extra)[0]
                raise PydanticCustomError("archspec_value", "unknown key '{key}' in a parameter declaration "
                                          "(expected type, default, choices and doc)", {"key": key})
            if "choices" in value and (not isinstance(value["choices"], list) or not value["choices"]):
                raise PydanticCustomError("archspec_value", "a parameter's choices must be a non-empty list of values")
            if "type" in value and value["type"] not in PARAM_TYPES:
                raise PydanticCustomError("archspec_value", "unknown parameter type {t} (expected one of: {types})",
                                          {"t": shown(value["type"]), "types": ", ".join(PARAM_TYPES)})
            if "doc" in value and not isinstance(value["doc"], str):
                raise PydanticCustomError("archspec_value", "a parameter's doc must be a string")
            return value
        return value


class _Requirement(Text):
    """A ``requires:`` item: a distribution name, optionally with a minimum release."""

    expected = "a package name, optionally with a minimum version: 'archspec-mish' or 'archspec-mish>=1.2'"
    json = {"type": "string", "pattern": r"^\s*[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?\s*(>=\s*[0-9]+(\.[0-9]+)*)?\s*$"}

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or ops.parse_requirement(value) is None:
            raise self.fail(value)
        return value


class _OpExpression(Text):
    """``op:`` given by an expression (``$activation``): any op, chosen when it is evaluated."""

    expected = "an expression naming an op"
    json = dict(EXPRESSION_SCHEMA)


Refs = Annotated[Any, _Refs()]


class _InputNames(Text):
    """A block's ``inputs:``: the names its body reads its inputs by, in the order a ``use:``
    binds them (the names themselves are checked as node names are, by *resolve*)."""

    expected = "a list of distinct names, one per input: [input, skip]"
    json = {"type": "array", "items": {"type": "string", "pattern": "^" + NODE_NAME_RE.pattern + "$"}, "minItems": 1,
            "uniqueItems": True}

    def check(self, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return value
        raise self.fail(value)


InputNames = Annotated[Any, _InputNames()]


class _OpName(Text):
    expected = "the name of an op"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or value not in ops.REGISTRY:
            hint = ops.unknown_hint(value) if isinstance(value, str) else None
            raise PydanticCustomError("archspec_value", "unknown op {found}",
                                      {"found": shown(value), "expected": ops.known(), "hint": hint,
                                       "why": "", "what": "unknown op"})
        return value
