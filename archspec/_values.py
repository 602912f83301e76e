"""Value types of the spec language: a literal of the right kind, or an expression.

Each is used as ``Annotated[Any, Int(ge=1)]`` in a pydantic model. At the *validate*
stage an expression string (``$name``, ``${...}``) passes through unchanged; once the
expressions are evaluated the same model is validated again with the context
``{"concrete": True}``, and then only a literal of the right kind passes. The messages
are written for spec authors ("expected a positive integer, found 'x'"), and each type
carries its own JSON Schema so that the generated schema describes what editors should
accept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from ._expr import is_expression
from ._init_fns import INIT_ARGS, INIT_WORDS, POSITIVE_INIT_ARGS, fits_float32, init_args_error, initialiser_json

__all__ = ["Int", "Float", "Bool", "Size", "Scale", "IntSeq", "Text", "Str", "NodeName", "Choice", "IntList", "InitValue", "EXPRESSION_SCHEMA", "shown", "with_article"]

EXPRESSION_SCHEMA = {
    "type": "string",
    "pattern": r"^\$(\{.*\}|[A-Za-z_][A-Za-z0-9_]*)$",
    "description": "an expression: $name or ${...}",
}


def with_article(word: str) -> str:
    """``word`` with its indefinite article, as a message says it: ``a concat``, ``an add``."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def shown(value: Any) -> str:
    """A found value as a message shows it."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 80 else repr(value[:77]) + "... (" + f"{len(value):,} characters)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        more = f", ... ({len(value):,} items)" if len(value) > 12 else ""
        return "[" + ", ".join(shown(v) for v in value[:12]) + more + "]"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, int) and value.bit_length() > 200:  # str() of a huge int is slow, and fails past 4300 digits
        return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"
    return str(value)


class _ValueType:
    expected: str = "a value"
    json: dict[str, Any] = {}

    def check(self, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _validate(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        concrete = bool(info.context and info.context.get("concrete"))
        if not concrete and is_expression(value):
            return value
        if isinstance(value, str) and value.startswith("$$"):
            value = value[1:]
        return self.check(value)

    def fail(self, value: Any, why: str = "") -> PydanticCustomError:
        found = shown(value)
        return PydanticCustomError("archspec_value", "expected {expected}, found {found}{why}",
                                   {"expected": self.expected, "found": found, "why": why})

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(self._validate)

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        return {"anyOf": [dict(self.json), EXPRESSION_SCHEMA]}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.expected})"


class _Bounded(_ValueType):
    """A number within optional bounds (``ge``, ``gt``, ``le``), or null where ``nullable``."""

    kind = "number"
    json_type = "number"

    def __init__(self, ge: float | None = None, gt: float | None = None, le: float | None = None,
                 nullable: bool = False) -> None:
        self.ge, self.gt, self.le, self.nullable = ge, gt, le, nullable
        self.expected = self.describe()
        self.json = {"type": self.json_type}
        for key, bound in (("minimum", ge), ("exclusiveMinimum", gt), ("maximum", le)):
            if bound is not None:
                self.json[key] = bound
        if nullable:
            self.json = {"anyOf": [self.json, {"type": "null"}]}

    def describe(self) -> str:
        parts = [f"{op} {bound:g}" for op, bound in (("> ", self.gt), (">= ", self.ge), ("<= ", self.le))
                 if bound is not None]
        return self.kind + (" " + " and ".join(p.replace("  ", " ") for p in parts) if parts else "")

    def in_bounds(self, value: float) -> bool:
        return not ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
                    or (self.le is not None and value > self.le))


class Int(_Bounded):
    kind = "an integer"
    json_type = "integer"

    def describe(self) -> str:  # null stands for "not given": messages do not offer it
        if self.ge == 1 or self.gt == 0:
            return "a positive integer"
        if self.ge == 0 and self.le is None:
            return "an integer >= 0"
        return super().describe()

    def check(self, value: Any) -> int | None:
        if value is None and self.nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                raise self.fail(value, " (write it without a decimal point)")
            raise self.fail(value)
        if not self.in_bounds(value):
            raise self.fail(value)
        return value


class Float(_Bounded):
    kind = "a number"

    def describe(self) -> str:
        return super().describe() + (" or null" if self.nullable else "")

    def check(self, value: Any) -> float | None:
        if value is None and self.nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(value)
        try:
            number = float(value)
        except OverflowError:
            raise self.fail(value, " (too large)") from None
        if not math.isfinite(number) or not self.in_bounds(number):
            raise self.fail(value)
        return number


class Bool(_ValueType):
    expected = "true or false"
    json = {"type": "boolean"}

    def __init__(self, nullable: bool = False) -> None:
        self.nullable = nullable
        if nullable:  # null: not given (torch's None, which some settings tell from false)
            self.expected = "true, false or null"
            self.json = {"type": ["boolean", "null"]}

    def check(self, value: Any) -> bool | None:
        if value is None and self.nullable:
            return None
        if not isinstance(value, bool):
            hint = " (YAML 1.2: write true or false)" if isinstance(value, str) and value.lower() in ("yes", "no", "on", "off") else ""
            raise self.fail(value, hint)
        return value


class _Pair(_ValueType):
    """One value for both, or a pair ``[height, width]`` (each may be an expression), null
    where ``nullable``, one of ``words`` where it has them; concrete, a pair. A subclass
    checks one entry (``_one``) and says what it is (``noun``)."""

    noun = "a pair"
    nullable = False
    words: tuple[str, ...] = ()

    def _validate(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        concrete = bool(info.context and info.context.get("concrete"))
        if not concrete and isinstance(value, list) and len(value) == 2:
            return [v if is_expression(v) else self._one(v, value) for v in value]
        return super()._validate(value, info)

    def _one(self, v: Any, whole: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, value: Any) -> Any:
        if value is None and self.nullable:
            return None
        if isinstance(value, str) and value in self.words:
            return value
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise self.fail(value, f" (a list of {len(value)}; {self.noun} has 2 entries)")
            return (self._one(value[0], value), self._one(value[1], value))
        v = self._one(value, value)
        return (v, v)


class Size(_Pair):
    """An integer or a pair ``[height, width]`` (each may be an expression)."""

    noun = "a size"

    def __init__(self, ge: int = 1, nullable: bool = False, words: tuple[str, ...] = ()) -> None:
        self.ge = ge
        self.nullable = nullable
        self.words = words
        what = "a positive integer" if ge == 1 else "an integer >= 0"
        self.expected = f"{what} or a pair [height, width] of them" + "".join(f" or '{w}'" for w in words) + (
            " or null" if nullable else "")
        item = {"anyOf": [{"type": "integer", "minimum": ge}, EXPRESSION_SCHEMA]}
        options: list[dict] = [{"type": "integer", "minimum": ge}, {"type": "array", "items": item, "minItems": 2, "maxItems": 2}]
        if words:
            options.append({"enum": list(words)})
        if nullable:
            options.append({"type": "null"})
        self.json = {"anyOf": options}

    def _one(self, v: Any, whole: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < self.ge:
            raise self.fail(whole)
        return v


class Scale(_Pair):
    """A positive number or a pair ``[height, width]`` of them (a scale factor), or null
    where ``nullable``; each may be an expression. Concrete, it is a pair of floats."""

    noun = "a scale"

    def __init__(self, nullable: bool = False) -> None:
        self.nullable = nullable
        self.expected = "a number > 0 or a pair [height, width] of them" + (" or null" if nullable else "")
        item = {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, EXPRESSION_SCHEMA]}
        options: list[dict] = [{"type": "number", "exclusiveMinimum": 0},
                               {"type": "array", "items": item, "minItems": 2, "maxItems": 2}]
        if nullable:
            options.append({"type": "null"})
        self.json = {"anyOf": options}

    def _one(self, v: Any, whole: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise self.fail(whole)
        return float(v)


class IntSeq(_ValueType):
    """An integer for every entry, or a list of exactly ``len(parts)`` integers (``parts``
    name them, as messages say: ``("left", "right", "top", "bottom")``); each may be an
    expression. Concrete, it is a tuple of ``len(parts)`` integers."""

    def __init__(self, parts: tuple[str, ...], nullable: bool = False) -> None:
        self.parts = parts
        self.nullable = nullable
        self.expected = f"an integer or a list [{', '.join(parts)}] of {len(parts)} integers" + (" or null" if nullable else "")
        item = {"anyOf": [{"type": "integer"}, EXPRESSION_SCHEMA]}
        options: list[dict] = [{"type": "integer"}, {"type": "array", "items": item, "minItems": len(parts), "maxItems": len(parts)}]
        if nullable:
            options.append({"type": "null"})
        self.json = {"anyOf": options}

    def _validate(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        concrete = bool(info.context and info.context.get("concrete"))
        if not concrete and isinstance(value, list):
            self._length(value)
            return [v if is_expression(v) else self._one(v, value) for v in value]
        return super()._validate(value, info)

    def _length(self, value: list) -> None:
        if len(value) != len(self.parts):
            raise self.fail(value, f" (a list of {len(value)})")

    def _one(self, v: Any, whole: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(whole)
        return v

    def check(self, value: Any) -> tuple[int, ...] | None:
        if value is None and self.nullable:
            return None
        if isinstance(value, (list, tuple)):
            self._length(list(value))
            return tuple(self._one(v, value) for v in value)
        return (self._one(value, value),) * len(self.parts)


class Text(_ValueType):
    """Any string (no expression)."""

    expected = "a string"
    json = {"type": "string"}

    def __init__(self, check: Callable[[str], str | None] | None = None) -> None:
        self._extra = check

    def _validate(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        return self.check(value)

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(value)
        if self._extra is not None:
            problem = self._extra(value)
            if problem:
                raise PydanticCustomError("archspec_value", problem)
        return value

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        return dict(self.json)


class Str(_ValueType):
    """A string, or an expression giving one (a user op's ``str`` parameter); null too where
    ``nullable``. A literal starting with ``$`` is written ``$$``."""

    def __init__(self, nullable: bool = False) -> None:
        self.nullable = nullable
        self.expected = "a string" + (" or null" if nullable else "")
        self.json = {"type": ["string", "null"]} if nullable else {"type": "string"}

    def check(self, value: Any) -> str | None:
        if value is None and self.nullable:
            return None
        if not isinstance(value, str):
            raise self.fail(value)
        return value


class NodeName(Str):
    """The name of another node, as ``from:`` names one (a sibling or ``input``), or null:
    an op parameter listed in :attr:`archspec.ops.OpDef.refs` (``like:``)."""

    def __init__(self) -> None:
        super().__init__(nullable=True)
        self.expected = "the name of a node (a sibling, or 'input') or null"


class Choice(_ValueType):
    """One of a few words (an expression may choose one)."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.expected = " or ".join(repr(c) for c in choices) if len(choices) <= 2 else "one of: " + ", ".join(
            repr(c) for c in choices)
        self.json = {"enum": list(choices)}

    def check(self, value: Any) -> str:
        if value not in self.choices or not isinstance(value, str):
            raise self.fail(value)
        return value


class IntList(_ValueType):
    """A list of integers (``[0, 2, 3, 1]``); each item, or the whole list, may be an
    expression. ``ge`` bounds every item; ``least`` is the shortest list accepted."""

    def __init__(self, ge: int | None = None, least: int = 1) -> None:
        self.ge = ge
        self.least = least
        what = "integers" if ge is None else ("positive integers" if ge == 1 else f"integers >= {ge}")
        self.expected = (f"a list of {what}" + f" (at least {least})") if least > 1 else f"a non-empty list of {what}"
        item = {"type": "integer"} if ge is None else {"type": "integer", "minimum": ge}
        self.json = {"type": "array", "items": {"anyOf": [item, EXPRESSION_SCHEMA]}, "minItems": least}

    def _validate(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        concrete = bool(info.context and info.context.get("concrete"))
        if not concrete and isinstance(value, list):
            return [v if is_expression(v) else self._one(v, value) for v in value]
        return super()._validate(value, info)

    def _one(self, v: Any, whole: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or (self.ge is not None and v < self.ge):
            raise self.fail(whole)
        return v

    def check(self, value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or len(value) < self.least:
            raise self.fail(value)
        return tuple(self._one(v, value) for v in value)


class InitValue(_ValueType):
    """How a tensor starts: a number (every element), or an initialiser ``{fn: ..., args}``
    (``{fn: normal, std: 0.02}``); numbers inside it may be expressions."""

    expected = "a number or an initialiser {fn: normal, std: 0.02} (fn: " + ", ".join(INIT_ARGS) + ")"
    json = {"anyOf": [{"type": "number"}, initialiser_json({"anyOf": [{"type": "number"}, EXPRESSION_SCHEMA]})]}

    def _validate(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        concrete = bool(info.context and info.context.get("concrete"))
        if isinstance(value, dict):
            return self._initialiser(value, concrete)
        return super()._validate(value, info)

    def _number(self, value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PydanticCustomError("archspec_value", "expected {expected}, found {found}{why}",
                                      {"expected": "a number", "found": shown(value), "why": f" for '{what}'"})
        number = float(value)
        if not fits_float32(number):
            raise PydanticCustomError("archspec_value", "expected {expected}, found {found}{why}",
                                      {"expected": "a number a float32 tensor can hold", "found": shown(value),
                                       "why": f" for '{what}'"})
        return number

    def _initialiser(self, value: dict, concrete: bool) -> dict:
        fn = value.get("fn")
        if fn not in INIT_ARGS:
            raise PydanticCustomError("archspec_value", "expected {expected}, found {found}{why}",
                                      {"expected": "fn: one of " + ", ".join(INIT_ARGS), "found": shown(fn),
                                       "why": " as the initialiser's fn"})
        out: dict[str, Any] = {"fn": fn}
        for key, v in value.items():
            if key == "fn":
                continue
            if key not in INIT_ARGS[fn]:  # here, in the order written: an earlier argument's bad value comes first
                raise init_args_error(fn, {key: v})
            if key in INIT_WORDS:
                if v not in INIT_WORDS[key]:
                    raise PydanticCustomError("archspec_value", "expected {expected}, found {found}{why}",
                                              {"expected": " or ".join(INIT_WORDS[key]), "found": shown(v), "why": f" for '{key}'"})
                out[key] = v
            elif not concrete and is_expression(v):
                out[key] = v
            else:
                out[key] = self._number(v, key)
        for key in POSITIVE_INIT_ARGS:  # as the init rules' initialisers: positive
            if isinstance(out.get(key), float) and out[key] <= 0:
                raise PydanticCustomError("archspec_value", "expected {expected}, found {found}{why}",
                                          {"expected": "a number > 0", "found": shown(out[key]), "why": f" for '{key}'"})
        error = init_args_error(fn, {k: v for k, v in out.items() if k != "fn"})  # ('constant' takes neither std nor gain)
        if error is not None:
            raise error
        return out

    def check(self, value: Any) -> float:
        return self._number(value, "init")
