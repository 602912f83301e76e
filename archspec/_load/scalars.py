"""YAML scalars as the YAML 1.2 core schema reads them, and source marks as positions.

What it does: turns a scalar's text, tag and style into ``None``, a boolean, an integer,
a float or a string (``true``/``false`` are booleans, ``yes``/``no``/``on``/``off`` are
strings, ``1e-5`` is a float), refusing integers longer than :data:`MAX_INT_CHARS`; and
names the tags a spec may use.

What it deliberately does not do: look at anything but one scalar (the builder,
:mod:`.builder`, puts them together).
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from .._errors import Loc

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
# what a "..." escape can put in a string that no terminal, file name or Python name should get
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = {CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq")}


def scalar(value: str, tag: str | None, plain: bool) -> Any:
    if tag == CORE + "str" or (tag is None and not plain):
        return value
    if tag in (None, "!"):
        if not plain:
            return value
        if _NULL.fullmatch(value):
            return None
        if _BOOL.fullmatch(value):
            return value.lower() == "true"
        if _INT.fullmatch(value):
            return _to_int(value)
        if _FLOAT.fullmatch(value):
            return _to_float(value)
        return value
    kind = tag[len(CORE):]
    parse = {"int": (_INT, _to_int), "float": (_FLOAT, _to_float), "bool": (_BOOL, lambda v: v.lower() == "true"),
             "null": (_NULL, lambda v: None)}[kind]
    if parse[0].fullmatch(value) or (kind == "float" and _INT.fullmatch(value)):
        return parse[1](value)
    raise ValueError(f"'{value}' is not a valid !!{kind}")


MAX_INT_CHARS = 40  # far past any shape or count (Limits.max_int is 10**18), short of Python's digit limits


def _to_int(text: str) -> int:
    t = text.replace("_", "")
    if len(t.lstrip("+-")) > MAX_INT_CHARS:
        raise ValueError(f"the integer '{t[:12]}...' has {len(t)} characters; integers in a spec have at most {MAX_INT_CHARS}")
    try:
        return int(t, 0) if t.startswith(("0x", "0o")) else int(t)
    except ValueError:  # '0x_': YAML 1.2 reads it as a string
        raise ValueError(f"'{text}' is not a number: digits must follow 0x/0o") from None


def _to_float(text: str) -> float:
    t = text.replace("_", "").lower()
    if t.endswith(".inf"):
        return -math.inf if t.startswith("-") else math.inf
    if t == ".nan":
        return math.nan
    return float(t)


def mark_loc(file: str, start: yaml.Mark, end: yaml.Mark | None = None) -> Loc:
    if end is None:
        return Loc(file, start.line + 1, start.column + 1)
    return Loc(file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)
