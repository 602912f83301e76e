"""Rendering errors and warnings the way a compiler does: the location, the message, the
source line with a caret under the column, then notes and the hint::

    specs/x.yaml:10:16: error: in block 'conv' at bn: unknown op 'batchnorm' (expected one of: ...)
       10 |       bn: {op: batchnorm, eps: 0.001}
          |                ^^^^^^^^^
      hint: did you mean 'batchnorm2d'?
"""

from __future__ import annotations

from ._errors import Loc, SpecError, SpecErrors, SpecWarning
from ._files import read_bytes

__all__ = ["render", "render_warning", "source_excerpt"]

_cache: dict[str, list[str] | None] = {}
_MAX_WIDTH = 100
_MAX_QUOTED_FILE = 64 << 20  # far past any spec's size limit; a file grown past it is not quoted


def _lines(file: str) -> list[str] | None:
    """The lines of a spec file, to quote: read as every file is (a regular file only,
    bounded); ``None`` when it cannot be read now."""
    if file not in _cache:
        try:
            raw = read_bytes(file, _MAX_QUOTED_FILE)
            _cache[file] = raw.decode("utf-8-sig").splitlines() if len(raw) <= _MAX_QUOTED_FILE else None
        except (OSError, UnicodeDecodeError):
            _cache[file] = None
    return _cache[file]


def source_excerpt(loc: Loc | None) -> list[str]:
    """The source line of ``loc`` and a caret line under the span (empty if unreadable)."""
    if loc is None:
        return []
    lines = _lines(loc.file)
    if not lines or not 1 <= loc.line <= len(lines):
        return []
    text = lines[loc.line - 1].replace("\t", " ")
    col = loc.col
    width = 1
    if loc.end_line == loc.line and loc.end_col and loc.end_col > loc.col:
        width = loc.end_col - loc.col
    if len(text) > _MAX_WIDTH:  # show a window around the column
        start = max(0, col - 1 - _MAX_WIDTH // 2)
        end = start + _MAX_WIDTH
        text = ("..." if start else "") + text[start:end] + ("..." if end < len(text) else "")
        col = col - start + (3 if start else 0)
        width = min(width, 40)
    width = max(1, min(width, len(text) - col + 1))
    gutter = f"{loc.line:>5}"
    return [f"{gutter} | {text}", f"{' ' * len(gutter)} | {' ' * (col - 1)}{'^' * width}"]


def _one(err: SpecError) -> list[str]:
    out = [err.headline()]
    if err.quote:
        out.extend(source_excerpt(err.loc))
    for loc, text in err.notes:
        out.append(f"  {loc}: note: {text}" if loc else f"  note: {text}")
    if err.hint:
        out.append(f"  hint: {err.hint}")
    return out


def render(err: SpecError) -> str:
    """An error (or each error of a :class:`SpecErrors`) with source excerpts."""
    if isinstance(err, SpecErrors):
        parts: list[str] = []
        for e in err.errors:
            parts.extend(_one(e))
        count = len(err.errors) + err.omitted
        parts.append(f"{count} errors" + (f" ({err.omitted} more not shown)" if err.omitted else ""))
        return "\n".join(parts)
    return "\n".join(_one(err))


def render_warning(w: SpecWarning) -> str:
    hint = getattr(w, "hint", None)
    return "\n".join([str(w), *source_excerpt(w.loc), *([f"  hint: {hint}"] if hint else [])])
