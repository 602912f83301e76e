"""Stage 1, load, for one text: YAML to plain data and locations, or a located syntax error.

What it does: :func:`load_text` reads one spec document with libyaml's event parser where
PyYAML has it and the text is one both parsers read alike, and with PyYAML's pure-Python
parser otherwise, or whenever libyaml meets any problem, so that what is reported (and
where) is always the pure-Python parser's word; it translates PyYAML's errors into
:class:`SpecSyntaxError` with a hint for the common ones (tabs, a ':' in a plain value,
indentation, an unclosed flow collection).

What it deliberately does not do: build the data (:mod:`.builder`), read files or follow
``extends:`` (:mod:`.chain`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml import events as ev

from .._errors import Loc, SpecLimitError, SpecSyntaxError
from .._limits import DEFAULT_LIMITS, Limits
from .builder import build
from .locations import Document, Locations
from .scalars import mark_loc

__all__ = ["load_text"]


def load_text(text: str, file: str = "<string>", limits: Limits = DEFAULT_LIMITS) -> Document:
    """Parse one spec document from ``text``; ``file`` is the name used in positions."""
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_file_bytes:
        raise SpecLimitError(
            f"the file is {len(text.encode('utf-8', 'surrogatepass')):,} bytes, over the limit of "
            f"{limits.max_file_bytes:,} (Limits.max_file_bytes)",
            Loc(file, 1, 1),
        )
    if _CParser is not None and not _NON_PRINTABLE.search(text) and not _C_DIFFERS.search(text):
        # libyaml's parser, ten times faster, reports the same line and column marks; on any
        # problem at all the pure-Python parser reads the text again, so that what is
        # reported (and where) is exactly its word
        locs = Locations()
        parser = None
        try:
            parser = _CParser(text)
            data = build(_c_events(parser), file, locs, limits)
        except Exception:  # noqa: BLE001 - any failure: the pure-Python parser decides
            pass
        else:
            return Document(data, locs, file, [file])
        finally:
            if parser is not None:
                parser.dispose()
    locs = Locations()
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as e:  # the reader checks the first chunk of text at once
        line, col = _position(text, e.position)
        raise SpecSyntaxError(f"invalid text: {_character(e)} is not allowed in a YAML file", Loc(file, line, col)) from None
    try:
        data = build(_events(loader, file), file, locs, limits)
    finally:
        loader.dispose()
    return Document(data, locs, file, [file])


try:
    from yaml.cyaml import CParser as _CParser
except ImportError:  # PyYAML built without libyaml
    _CParser = None
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE  # what the pure-Python reader refuses
# where libyaml and the pure-Python parser part ways (libyaml takes tabs that PyYAML refuses,
# reads a byte order mark inside the text and explicit '? ' keys its own way): such texts,
# rare in a spec, go to the pure-Python parser directly
_C_DIFFERS = re.compile("[\t\ufeff]|\\?(?:[ \r\n\x85\u2028\u2029]|$)")


def _c_events(parser: Any) -> Iterator[ev.Event]:
    while parser.check_event():
        event = parser.get_event()
        if isinstance(event, ev.ScalarEvent) and not event.value and not event.style:  # plain: libyaml says ""
            # an empty value (`kernel: ,`): libyaml places it elsewhere than PyYAML does
            raise ValueError("an empty plain scalar: read with the pure-Python parser")
        yield event


def _events(loader: yaml.SafeLoader, file: str) -> Iterator[ev.Event]:
    try:
        while loader.check_event():
            yield loader.get_event()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "invalid YAML"
        hint = None
        notes = []
        if e.context and e.context_mark and e.problem_mark and e.context_mark.line != e.problem_mark.line:
            notes.append((mark_loc(file, e.context_mark), f"{e.context}, which starts here"))
        long_key = _long_key(loader, mark) if mark else None
        if long_key:
            line, col, length = long_key
            raise SpecSyntaxError(f"this mapping key is {length:,} characters long; YAML reads a key of at most "
                                  f"{_MAX_KEY_CHARS:,}", Loc(file, line, col, line, col + length),
                                  hint="node names and keys are short names; shorten this one") from None
        if "'\\t'" in problem or "\t" in problem:
            problem = "a tab character where YAML expects spaces"
            hint = "YAML indentation and separation must use spaces, not tabs"
        elif "mapping values are not allowed" in problem:
            hint = "a ':' inside a plain value starts a mapping; quote the value or put a space after the key's ':'"
        elif "could not find expected ':'" in problem:
            hint = "every entry of a mapping needs 'key: value'; check the indentation of the lines above"
        elif "expected <block end>" in problem:
            problem = "this line's indentation does not fit the lines above it"
            hint = "entries of one mapping start in the same column; a flow mapping {...} cannot have indented children"
        elif "expected ',' or '}'" in problem or "expected ',' or ']'" in problem:
            closer = "}" if "'}'" in problem else "]"
            problem = f"expected ',' or '{closer}' here"
            hint = f"a '{'{' if closer == '}' else '['}' above is not closed on its line"
        raise SpecSyntaxError(f"invalid YAML: {problem}", mark_loc(file, mark) if mark else Loc(file, 1, 1), hint=hint,
                              notes=notes) from None
    except yaml.reader.ReaderError as e:
        text = loader.buffer if isinstance(loader.buffer, str) else ""
        line, col = _position(text, e.position)
        raise SpecSyntaxError(f"invalid text: {_character(e)} is not allowed in a YAML file", Loc(file, line, col)) from None
    except yaml.YAMLError as e:  # pragma: no cover - other PyYAML errors carry no mark
        raise SpecSyntaxError(f"invalid YAML: {e}", Loc(file, 1, 1)) from None


#: the longest key a YAML parser reads: PyYAML and libyaml look back at most this far for a key's ':'
_MAX_KEY_CHARS = 1024
#: where a key starts on its line: after the indentation and any '- ', '? ', '{', '[' or ','
_KEY_START = re.compile(r"(?:^[ ]*(?:[-?][ ]+)*|[{\[,][ ]*)(?=[^{\[,]*$)")


def _long_key(loader: yaml.SafeLoader, mark: yaml.Mark) -> tuple[int, int, int] | None:
    """The line, column and length of the over-long key just before ``mark`` (a ':' that
    the parser could not pair with its key: it says "mapping values are not allowed here"
    or "could not find expected ':'"), or None."""
    text = loader.buffer if isinstance(loader.buffer, str) else ""
    lines = text.split("\n")
    if mark.line >= len(lines):
        return None
    before = lines[mark.line][: mark.column].rstrip(" ")
    start = _KEY_START.search(before)
    if start is None or len(before) - start.end() <= _MAX_KEY_CHARS:
        return None
    return mark.line + 1, start.end() + 1, len(before) - start.end()


def _position(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def _character(e: yaml.reader.ReaderError) -> str:
    return f"the character U+{e.character:04X}" if isinstance(e.character, int) else "a byte"
