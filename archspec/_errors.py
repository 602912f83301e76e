"""The one exception family of archspec.

Every mistake in a spec surfaces as a :class:`SpecError` that says *where* (file, line,
column and the node path), *what* was found and *what was expected*, with a hint when one
exists (a "did you mean" from the known names, most often)::

    SpecError                   a mistake in a spec, its overrides or its input shape
     ├── SpecSyntaxError        not YAML, not a mapping, duplicate keys, refused tags
     ├── SpecSchemaError        unknown keys, wrong value types, missing keys
     ├── SpecReferenceError     unknown names (nodes, blocks, ops, params), duplicates,
     │                          cycles, `extends` chains that loop or miss a file
     ├── SpecExpressionError    an expression that does not parse or evaluate
     ├── SpecShapeError         the static shape algebra fails (channels, sizes, kernels)
     ├── SpecLimitError         a resource limit was reached (file size, nesting, repeats,
     │                          parameter count); limits can be raised, see ``Limits``
     └── SpecErrors             several independent errors of one file, reported together

    SpecWarning (UserWarning)   something that builds but is probably not meant
                                (a node that feeds nothing, an init rule matching nothing)

Nothing else escapes the pipeline for a spec mistake: a bare ``KeyError`` or a torch
``RuntimeError`` caused by a spec is a bug in archspec.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn

__all__ = [
    "Loc",
    "SpecError",
    "SpecErrors",
    "SpecExpressionError",
    "SpecLimitError",
    "SpecReferenceError",
    "SpecSchemaError",
    "SpecShapeError",
    "SpecSyntaxError",
    "SpecWarning",
    "WeightsError",
    "ErrorList",
    "camel_case",
    "raise_collected",
    "did_you_mean",
]


@dataclass(frozen=True)
class Loc:
    """A position in a spec file: 1-based line and column, with the end of the span."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def shifted(self, cols: int, width: int | None = None) -> Loc:
        """The position ``cols`` columns to the right on the same line (for a part of a value)."""
        end = self.col + cols + width if width is not None else None
        return Loc(self.file, self.line, self.col + cols, self.line if end else None, end)


class SpecError(Exception):
    """A mistake in a spec, located in the YAML.

    Attributes: ``message`` (what is wrong, with what was found), ``loc`` (a :class:`Loc`
    or ``None`` when the mistake has no place in a file, such as an override given on the
    command line), ``node`` (the dotted node path, e.g. ``inception4b.branch2.1``),
    ``expected`` (what would have been right), ``hint`` (a suggestion) and ``notes``
    (other places involved, as ``(Loc, text)`` pairs).
    """

    kind = "error"
    #: whether a message shows the source line at ``loc`` (not for a file that is no spec at all)
    quote = True

    def __init__(
        self,
        message: str,
        loc: Loc | None = None,
        *,
        node: str | None = None,
        expected: str | None = None,
        hint: str | None = None,
        notes: Sequence[tuple[Loc | None, str]] = (),
    ) -> None:
        self.message = message
        self.loc = loc
        self.node = node
        self.expected = expected
        self.hint = hint
        self.notes = list(notes)
        super().__init__(self.format())

    def headline(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        node = f"in {self.node}: " if self.node else ""
        expected = f" (expected {self.expected})" if self.expected else ""
        return f"{where}{self.kind}: {node}{self.message}{expected}"

    def format(self) -> str:
        lines = [self.headline()]
        for loc, text in self.notes:
            lines.append(f"  {loc}: note: {text}" if loc else f"  note: {text}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def at_node(self, node: str | None) -> SpecError:
        """This error, with ``node`` filled in when it had none."""
        if self.node is not None or node is None:
            return self
        return type(self)(self.message, self.loc, node=node, expected=self.expected, hint=self.hint, notes=self.notes)

    def __reduce__(self):  # keep errors picklable (multiprocessing, pytest-xdist)
        return (_rebuild_error, (type(self), self.message, self.loc, self.node, self.expected, self.hint, self.notes))


def _rebuild_error(cls, message, loc, node, expected, hint, notes):
    return cls(message, loc, node=node, expected=expected, hint=hint, notes=notes)


class SpecSyntaxError(SpecError):
    """The text is not a valid spec document: YAML syntax, duplicate keys, refused tags."""


class SpecSchemaError(SpecError):
    """A key or value does not fit the spec language: unknown key, wrong type, missing key."""


class SpecReferenceError(SpecError):
    """A name does not resolve (node, block, op, parameter, file) or is defined twice."""


class SpecExpressionError(SpecError):
    """An expression (``$name`` or ``${...}``) that does not parse or cannot be evaluated."""


class SpecShapeError(SpecError):
    """The static shape algebra fails: channel or size mismatches, impossible kernels."""


class SpecLimitError(SpecError):
    """A resource limit was reached; see :class:`archspec.Limits` to raise it."""


class SpecErrors(SpecError):
    """Several independent errors found in one pass; ``errors`` holds each of them."""

    def __init__(self, errors: Iterable[SpecError], *, omitted: int = 0) -> None:
        self.errors = list(errors)
        self.omitted = omitted
        first = self.errors[0]
        super().__init__(first.message, first.loc, node=first.node, expected=first.expected, hint=first.hint)

    def format(self) -> str:
        parts = [e.format() for e in self.errors]
        count = len(self.errors) + self.omitted
        tail = f"{count} errors" + (f" ({self.omitted} more not shown)" if self.omitted else "")
        return "\n".join(parts + [tail])

    def __reduce__(self):
        return (SpecErrors, (self.errors,), {"omitted": self.omitted})

    def __setstate__(self, state):
        self.omitted = state["omitted"]


class WeightsError(ValueError):
    """A checkpoint that cannot be read, or does not fit the compiled network (not a spec
    mistake, so not a :class:`SpecError`)."""


class WeightsWarning(UserWarning):
    """A checkpoint that loads but holds values a trained network should not: NaN or
    infinite entries (named by key in the warning and in ``model.load_report``)."""


class SpecWarning(UserWarning):
    """A spec that builds but probably does not say what its author meant."""

    def __init__(self, message: str, loc: Loc | None = None, node: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.loc = loc
        self.node = node
        self.hint = hint  # what to do about it, shown under the source line
        where = f"{loc}: " if loc else ""
        where_node = f"in {node}: " if node else ""
        super().__init__(f"{where}warning: {where_node}{message}")


_COPIES = "the same mistake in"


def _fold_key(e: SpecError) -> tuple | None:
    """What makes two errors the same mistake in different copies (``None``: never folded)."""
    return (type(e), e.loc, e.message, e.expected, e.hint) if e.loc is not None else None


class ErrorList(list):
    """The errors a stage collects, counting as it goes how many :func:`raise_collected`
    will report (``distinct``): the same mistake in many copies counts once, so that a cap
    on the errors shown stops the work only after that many *different* mistakes, and the
    note on a folded error counts every copy."""

    def __init__(self) -> None:
        super().__init__()
        self.distinct = 0
        self._keys: set[tuple] = set()
        self._ids: set[int] = set()

    def append(self, e: SpecError) -> None:
        super().append(e)
        if id(e) in self._ids:  # collected again on its way out of a nested body
            return
        self._ids.add(id(e))
        key = _fold_key(e)
        if key is None or key not in self._keys:
            self.distinct += 1
            if key is not None:
                self._keys.add(key)

    def extend(self, errors: Iterable[SpecError]) -> None:
        for e in errors:
            self.append(e)


def raise_collected(errors: Sequence[SpecError], limit: int = 20) -> NoReturn:
    """Raise the one error, or a :class:`SpecErrors` of the first ``limit`` of several.

    The same mistake met in several copies of a node (a repeat, a block used many times)
    is one error, with a note naming the other copies.
    """
    first: dict[tuple, SpecError] = {}
    copies: dict[tuple, list[str]] = {}
    seen: set[int] = set()
    for e in errors:
        if id(e) in seen:  # an error collected again on its way out of a nested body
            continue
        seen.add(id(e))
        key = _fold_key(e) or (id(e),)
        if key in first:
            copies[key].append(e.node or "?")
        else:
            first.setdefault(key, e)
            copies.setdefault(key, [])
    folded = []
    for key, e in first.items():
        others = copies[key]
        if others:
            listed = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            e.notes = [n for n in e.notes if not n[1].startswith(_COPIES)]  # folded before, on an inner level
            e.notes.append((None, f"{_COPIES} {len(others)} more cop{'ies' if len(others) > 1 else 'y'}: {listed}"))
        folded.append(e)
    if len(folded) == 1:
        raise folded[0]
    raise SpecErrors(folded[:limit], omitted=max(0, len(folded) - limit))


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """A "did you mean ..." hint for a misspelt ``name`` among ``known``, or ``None``."""
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in known}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    if not close:
        return None
    if len(close) == 1:
        return f"did you mean '{close[0]}'?"
    return "did you mean " + ", ".join(f"'{c}'" for c in close[:-1]) + f" or '{close[-1]}'?"


def camel_case(name: str, prefix: str = "Net") -> str:
    """``inception_v3`` -> ``InceptionV3``: a Python class name made from a spec name."""
    text = "".join(part[:1].upper() + part[1:] for part in re.split(r"[\W_]+", name) if part)
    return text if text[:1].isalpha() else prefix + text


def name_list(names: Iterable[str], limit: int = 12) -> str:
    """``a, b, c`` (with ``... and N more`` past ``limit``) for an expected-names clause."""
    names = list(names)
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f", ... and {len(names) - limit} more"
    return shown or "(none)"
