"""Stage 1, load: YAML text to plain data plus the source position of every key and value.

What it does: reads one spec file with PyYAML's *event* parser (no object construction,
so no tag can run code), builds plain ``dict``/``list``/scalar data iteratively (no
recursion, so no nesting can overflow the stack), and records a :class:`Loc` for every
value and every key in a :class:`Locations` table addressed by path
(``("graph", "conv1", "out")``). It follows ``extends:`` chains and merges a variant over
its base (see :func:`merge`), so that every merged value keeps the position in the file
it came from.

Scalars follow the YAML 1.2 core schema: ``true``/``false`` are booleans, ``yes``/``no``/
``on``/``off`` are strings, ``1e-5`` is a float. Map keys are always strings.

What it refuses: duplicate keys, tags other than the core ones (``!!python/...`` among
them), a top level that is not a mapping, several documents, files over the size limit,
aliases that expand past the value limit and nesting past the depth limit.

What it deliberately does not do: check keys or types (that is :mod:`._schema`), or
evaluate anything.
"""

from __future__ import annotations

import difflib
import errno
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml import events as ev

from . import _bundled as bundled
from ._bundled import spec_path
from ._errors import Loc, SpecLimitError, SpecReferenceError, SpecSyntaxError
from ._files import FileProblem, open_regular, shown as short_name, why
from ._limits import DEFAULT_LIMITS, Limits

__all__ = ["Document", "Locations", "load_document", "load_text", "merge", "display_path"]

PathT = tuple[str | int, ...]

NODE_KIND_KEYS = ("op", "use", "seq", "concat", "add", "dense")


class Locations:
    """Source positions by data path: the value at ``path`` and the key that introduced it.

    Paths are indexed by their parent, so that copying or dropping a subtree (an alias, a
    merge) costs the size of the subtree, not of the whole table.
    """

    def __init__(self) -> None:
        self._values: dict[PathT, Loc] = {}
        self._keys: dict[PathT, Loc] = {}
        self._children: dict[PathT, set[PathT]] = {}

    @classmethod
    def single(cls, loc: Loc) -> Locations:
        out = cls()
        out.set_value((), loc)
        return out

    def copy(self) -> Locations:
        out = Locations()
        out._values = dict(self._values)
        out._keys = dict(self._keys)
        out._children = {p: set(c) for p, c in self._children.items()}
        return out

    def _link(self, path: PathT) -> None:
        while path:
            parent = path[:-1]
            kids = self._children.setdefault(parent, set())
            if path in kids:
                return
            kids.add(path)
            path = parent

    def set_value(self, path: PathT, loc: Loc) -> None:
        self._values[path] = loc
        self._link(path)

    def set_key(self, path: PathT, loc: Loc) -> None:
        self._keys[path] = loc
        self._link(path)

    def own_key(self, path: PathT) -> Loc | None:
        return self._keys.get(path)

    def own_value(self, path: PathT) -> Loc | None:
        return self._values.get(path)

    def value(self, path: PathT) -> Loc | None:
        """The position of the value at ``path``, or of its nearest located ancestor."""
        path = tuple(path)
        while True:
            loc = self._values.get(path)
            if loc is not None or not path:
                return loc
            path = path[:-1]

    def key(self, path: PathT) -> Loc | None:
        """The position of the key that introduced ``path`` (falls back to the value)."""
        return self._keys.get(tuple(path)) or self.value(path)

    def subtree(self, prefix: PathT) -> list[PathT]:
        """``prefix`` and every path below it."""
        out, stack = [], [prefix]
        while stack:
            p = stack.pop()
            out.append(p)
            stack.extend(self._children.get(p, ()))
        return out

    def copy_subtree(self, other: Locations, prefix: PathT, to: PathT | None = None, with_key: bool = True) -> None:
        """Copy ``other``'s entries at and below ``prefix`` into this table (at ``to``)."""
        to = prefix if to is None else to
        n = len(prefix)
        for p in other.subtree(prefix):
            target = to + p[n:]
            if p in other._values:
                self.set_value(target, other._values[p])
            if p in other._keys and (with_key or p != prefix):
                self.set_key(target, other._keys[p])

    def drop_subtree(self, prefix: PathT) -> None:
        for p in self.subtree(prefix):
            self._values.pop(p, None)
            self._keys.pop(p, None)
            self._children.pop(p, None)
        if prefix:
            self._children.get(prefix[:-1], set()).discard(prefix)


@dataclass
class Document:
    """A loaded spec: its data, where each value came from, and the files read."""

    data: dict[str, Any]
    locs: Locations
    path: str
    files: list[str] = field(default_factory=list)


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a user would type it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return str(p)


# ---------------------------------------------------------------------------------------
# Scalars: the YAML 1.2 core schema

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
# what a "..." escape can put in a string that no terminal, file name or Python name should get
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq")}


def _scalar(value: str, tag: str | None, plain: bool) -> Any:
    if tag == _CORE + "str" or (tag is None and not plain):
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
    kind = tag[len(_CORE):]
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


def _loc(file: str, start: yaml.Mark, end: yaml.Mark | None = None) -> Loc:
    if end is None:
        return Loc(file, start.line + 1, start.column + 1)
    return Loc(file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


# ---------------------------------------------------------------------------------------
# The event-driven builder


class _Frame:
    __slots__ = ("kind", "value", "path", "loc", "anchor", "pending_key", "key_loc", "size", "explicit", "depth")

    def __init__(self, kind: str, path: PathT, loc: Loc, anchor: str | None) -> None:
        self.kind = kind
        self.value: Any = {} if kind == "map" else []
        self.path = path
        self.loc = loc
        self.anchor = anchor
        self.pending_key: Any = _NO_KEY
        self.key_loc: Loc | None = None
        self.size = 1
        self.explicit: set[str] = set()
        self.depth = 0  # how deeply the value nests below this frame


_NO_KEY = object()


@dataclass
class _Anchored:
    value: Any
    path: PathT
    size: int  # values, once expanded
    locs: Locations
    depth: int  # nesting levels of the value


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
            data = _build(_c_events(parser), file, locs, limits)
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
        data = _build(_events(loader, file), file, locs, limits)
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
            notes.append((_loc(file, e.context_mark), f"{e.context}, which starts here"))
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
        raise SpecSyntaxError(f"invalid YAML: {problem}", _loc(file, mark) if mark else Loc(file, 1, 1), hint=hint,
                              notes=notes) from None
    except yaml.reader.ReaderError as e:
        text = loader.buffer if isinstance(loader.buffer, str) else ""
        line, col = _position(text, e.position)
        raise SpecSyntaxError(f"invalid text: {_character(e)} is not allowed in a YAML file", Loc(file, line, col)) from None
    except yaml.YAMLError as e:  # pragma: no cover - other PyYAML errors carry no mark
        raise SpecSyntaxError(f"invalid YAML: {e}", Loc(file, 1, 1)) from None


def _position(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def _character(e: yaml.reader.ReaderError) -> str:
    return f"the character U+{e.character:04X}" if isinstance(e.character, int) else "a byte"


def _build(events: Iterator[ev.Event], file: str, locs: Locations, limits: Limits) -> dict[str, Any]:
    stack: list[_Frame] = []
    anchors: dict[str, _Anchored] = {}
    total = 0
    root: Any = _NO_KEY
    root_loc = Loc(file, 1, 1)
    documents = 0

    def add(value: Any, loc: Loc, size: int, sub_locs: Locations | None = None, src: PathT = ()) -> None:
        """Attach a finished value to the frame on top of the stack (or make it the root)."""
        nonlocal root, root_loc
        if not stack:
            root, root_loc = value, loc
            locs.set_value((), loc)
            return
        top = stack[-1]
        if top.kind == "seq":
            path = top.path + (len(top.value),)
            top.value.append(value)
            _record(path, loc, sub_locs, src)
            top.size += size
            return
        if top.pending_key is _NO_KEY:  # this value is a key
            if isinstance(value, (dict, list)):
                raise SpecSyntaxError("a mapping key must be a plain name, not a list or mapping", loc)
            top.pending_key = value
            top.key_loc = loc
            return
        key, key_loc = top.pending_key, top.key_loc
        top.pending_key = _NO_KEY
        if key is _MERGE:
            _merge_key(top, value, loc, sub_locs, src)
            return
        path = top.path + (key,)
        if key in top.explicit:
            raise SpecSyntaxError(
                f"duplicate key '{key}' in this mapping",
                key_loc,
                notes=[(locs.own_key(path), f"'{key}' was first defined here")],
                hint="YAML would silently keep only the last one; remove or rename one of them",
            )
        top.explicit.add(key)
        if key in top.value:  # merged in by '<<' earlier: the explicit key wins
            locs.drop_subtree(path)
        top.value[key] = value
        locs.set_key(path, key_loc)
        _record(path, loc, sub_locs, src)
        top.size += size

    def _record(path: PathT, loc: Loc, sub_locs: Locations | None, src: PathT) -> None:
        if sub_locs is None:
            locs.set_value(path, loc)
            return
        locs.copy_subtree(sub_locs, src, to=path, with_key=False)

    def _merge_key(top: _Frame, value: Any, loc: Loc, sub_locs: Locations | None, src: PathT) -> None:
        sources = value if isinstance(value, list) else [value]
        table, prefix = (locs, top.path + ("<<",)) if sub_locs is None else (sub_locs, src)
        for i, source in enumerate(sources):
            if not isinstance(source, dict):
                raise SpecSyntaxError("'<<' merges mappings only; its value must be a mapping or a list of mappings", loc)
            s_path = prefix + ((i,) if isinstance(value, list) else ())
            for k, v in source.items():
                if k in top.value:  # explicit keys and earlier merges win
                    continue
                top.value[k] = v
                locs.copy_subtree(table, s_path + (k,), to=top.path + (k,))
        locs.drop_subtree(top.path + ("<<",))

    def anchor(name: str | None, value: Any, path: PathT, size: int, depth: int) -> None:
        if name is None:
            return
        sub = Locations()
        sub.copy_subtree(locs, path)
        anchors[name] = _Anchored(value, path, size, sub, depth)

    for event in events:
        if isinstance(event, (ev.StreamStartEvent, ev.StreamEndEvent, ev.DocumentEndEvent)):
            continue
        if isinstance(event, ev.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise SpecSyntaxError("a spec file holds exactly one YAML document; found a second '---'", _loc(file, event.start_mark))
            continue
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in _ALLOWED_TAGS:
            shown = "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
            raise SpecSyntaxError(
                f"the YAML tag '{shown}' is not allowed",
                _loc(file, event.start_mark, event.end_mark),
                expected="plain maps, lists, strings, numbers and booleans (tags !!str, !!int, !!float, !!bool, !!null)",
                hint="archspec specs are data: nothing in a spec can construct Python objects or run code",
            )
        here = _loc(file, event.start_mark, event.end_mark)
        if tag is not None and tag != "!":
            fits = {"map": ev.MappingStartEvent, "seq": ev.SequenceStartEvent}.get(tag[len(_CORE):], ev.ScalarEvent)
            if not isinstance(event, fits):
                what = {ev.MappingStartEvent: "a mapping", ev.SequenceStartEvent: "a list"}.get(type(event), "a plain value")
                raise SpecSyntaxError(f"the tag '!!{tag[len(_CORE):]}' does not fit {what}", here)
        if isinstance(event, ev.ScalarEvent) and event.style in ("'", '"') and here.end_col and here.line == here.end_line:
            here = Loc(file, here.line, here.col + 1, here.end_line, here.end_col - 1)  # point at the text
        top = stack[-1] if stack else None
        if isinstance(event, ev.ScalarEvent):
            total += 1
            if total > limits.max_yaml_values:
                raise _too_many(limits, here)
            bad = _CONTROL.search(event.value)
            if bad:
                raise SpecSyntaxError(f"a string holds the character U+{ord(bad.group()):04X}, which a spec may not contain",
                                      here, expected="printable text (control characters and unpaired surrogates "
                                                     "come only from escapes such as \\x1b or \\ud800)")
            if top is not None and top.kind == "map" and top.pending_key is _NO_KEY:
                # a key: always its text, so that `on:` or `1:` name things rather than convert
                if event.tag is None and event.implicit[0] and event.value == "<<":
                    top.pending_key = _MERGE
                    top.key_loc = here
                    continue
                if event.anchor:
                    anchors[event.anchor] = _Anchored(event.value, (), 1, Locations.single(here), 0)
                add(event.value, here, 1)
                continue
            try:
                value = _scalar(event.value, event.tag, event.implicit[0])
            except ValueError as e:
                raise SpecSyntaxError(str(e), here) from None
            add(value, here, 1)
            if event.anchor:
                anchors[event.anchor] = _Anchored(value, (), 1, Locations.single(here), 0)
            continue
        if isinstance(event, (ev.MappingStartEvent, ev.SequenceStartEvent)):
            if top is not None and top.kind == "map" and top.pending_key is _NO_KEY:
                raise SpecSyntaxError("a mapping key must be a plain name, not a list or mapping", here)
            if len(stack) >= limits.max_yaml_depth:
                raise SpecLimitError(
                    f"the YAML nests deeper than {limits.max_yaml_depth} levels (Limits.max_yaml_depth)", here
                )
            total += 1
            if total > limits.max_yaml_values:
                raise _too_many(limits, here)
            kind = "map" if isinstance(event, ev.MappingStartEvent) else "seq"
            stack.append(_Frame(kind, _child_path(top), _loc(file, event.start_mark), event.anchor))
            continue
        if isinstance(event, (ev.MappingEndEvent, ev.SequenceEndEvent)):
            frame = stack.pop()
            add(frame.value, frame.loc, frame.size)
            if stack:
                stack[-1].depth = max(stack[-1].depth, frame.depth + 1)
            anchor(frame.anchor, frame.value, frame.path, frame.size, frame.depth + 1)
            continue
        if isinstance(event, ev.AliasEvent):
            if top is not None and top.kind == "map" and top.pending_key is _NO_KEY:
                raise SpecSyntaxError(f"the alias '*{event.anchor}' is used as a mapping key", here,
                                      expected="a key written out (node and parameter names are text)")
            target = anchors.get(event.anchor)
            if target is None:
                if any(f.anchor == event.anchor for f in stack):
                    raise SpecSyntaxError(f"the alias '*{event.anchor}' refers to a mapping or list that contains it", here)
                raise SpecSyntaxError(f"unknown alias '*{event.anchor}'", here, expected="an anchor '&name' defined above")
            total += target.size
            if total > limits.max_yaml_values:
                raise _too_many(limits, here)
            if len(stack) + target.depth > limits.max_yaml_depth:
                raise SpecLimitError(
                    f"the alias '*{event.anchor}' makes the YAML nest deeper than {limits.max_yaml_depth} levels "
                    "(Limits.max_yaml_depth)", here)
            if stack:
                stack[-1].depth = max(stack[-1].depth, target.depth)
            if top is not None and top.kind == "map" and top.pending_key is _NO_KEY:
                if isinstance(target.value, (dict, list)):
                    raise SpecSyntaxError("a mapping key must be a plain name, not a list or mapping", here)
                add(target.value, here, 1)
                continue
            add(_copy(target.value), here, target.size, target.locs, target.path)
    if documents == 0 or root is _NO_KEY or root is None:
        raise SpecSyntaxError("the file is empty", Loc(file, 1, 1), expected="a spec: a mapping with 'archspec: 1', 'input' and 'graph'")
    if not isinstance(root, dict):
        if isinstance(root, list):
            found = "a list"
        elif isinstance(root, str):  # a file that is not a spec at all: its text is neither echoed nor quoted
            found = f"plain text ({len(root):,} characters)"
        else:
            found = f"the value {root!r}"
        error = SpecSyntaxError(
            f"the top level of a spec must be a mapping; found {found}", root_loc,
            expected="keys such as 'archspec: 1', 'name', 'input' and 'graph'",
        )
        error.quote = not isinstance(root, str)
        raise error
    return root


_MERGE = object()


def _child_path(top: _Frame | None) -> PathT:
    if top is None:
        return ()
    if top.kind == "seq":
        return top.path + (len(top.value),)
    if top.pending_key is _MERGE:
        return top.path + ("<<",)
    return top.path + (top.pending_key,) if top.pending_key is not _NO_KEY else top.path


def _copy(value: Any) -> Any:
    """A deep copy of plain data (nesting is bounded by Limits.max_yaml_depth)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _too_many(limits: Limits, loc: Loc) -> SpecLimitError:
    return SpecLimitError(
        f"the document expands to more than {limits.max_yaml_values:,} values (Limits.max_yaml_values)",
        loc,
        hint="YAML aliases ('*name') copy what their anchor holds; nested aliases multiply",
    )


# ---------------------------------------------------------------------------------------
# Files and `extends`


def read_spec_text(path: str | os.PathLike[str], limits: Limits, loc: Loc | None = None) -> str:
    """Read a spec file as UTF-8 text, refusing oversized files before reading them.

    Only a regular file is read (:func:`archspec._files.open_regular`); a missing file, a
    folder, a FIFO, a device or a symlink loop is a :class:`SpecReferenceError` at ``loc``
    (the ``extends:`` that names the file, or none for the file given by the user)."""
    shown = display_path(path)
    try:
        with open_regular(path, "spec file") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limits.max_file_bytes:
                raise SpecLimitError(
                    f"'{shown}' is {size:,} bytes, over the limit of {limits.max_file_bytes:,} (Limits.max_file_bytes)",
                    loc or Loc(shown, 1, 1),
                )
            raw = f.read(limits.max_file_bytes + 1)  # bounded even if the file grows meanwhile
    except OSError as e:  # a FileProblem from open_regular names the file already
        message = e.strerror if isinstance(e, FileProblem) else f"cannot read '{shown}': {why(e)}"
        raise SpecReferenceError(message, loc, expected="a spec file" if e.errno == errno.EINVAL else None) from None
    if len(raw) > limits.max_file_bytes:
        raise SpecLimitError(f"'{shown}' is over the limit of {limits.max_file_bytes:,} bytes (Limits.max_file_bytes)",
                             loc or Loc(shown, 1, 1))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = raw[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise SpecSyntaxError("the file is not UTF-8 text", Loc(shown, line, col)) from None


def load_document(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Document:
    """Load ``path`` and, through ``extends:``, every base it builds on, merged.

    ``path`` may also name a bundled spec (``"densenet121"``, ``"archspec:densenet121"``):
    see :mod:`archspec._bundled` for how a name is told from a path."""
    if not os.fspath(path):  # Path("") would be the current folder
        raise SpecReferenceError("the spec path is empty", None,
                                 expected="a spec file such as specs/googlenet.yaml, or a bundled spec's name such as googlenet")
    return _load_chain(spec_path(path), limits, [], None)


def _real(path: Path) -> Path:
    """Where ``path`` leads (to tell that an ``extends`` chain comes back to a file); a
    symlink loop, which leads nowhere, is itself (reading it then says what it is)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return Path(os.path.abspath(path))


def _load_chain(path: Path, limits: Limits, chain: list[Path], loc: Loc | None) -> Document:
    real = _real(path)
    shown = display_path(path)
    if real in chain:
        cycle = " -> ".join(display_path(p) for p in chain[chain.index(real):] + [real])
        raise SpecReferenceError(f"'extends' chain loops: {cycle}", loc, hint="a spec cannot extend itself, directly or through its bases")
    if len(chain) >= limits.max_extends_depth:
        raise SpecLimitError(f"'extends' chain is longer than {limits.max_extends_depth} files (Limits.max_extends_depth)", loc)
    doc = load_text(read_spec_text(path, limits, loc), shown, limits)
    base_name = doc.data.get("extends")
    if base_name is None:
        return doc
    ext_loc = doc.locs.value(("extends",))
    if not isinstance(base_name, str) or not base_name:
        raise SpecReferenceError(
            f"'extends' must name a spec file, found {base_name!r}", ext_loc,
            expected="a path relative to this file, such as 'densenet121.yaml', or a bundled spec, such as 'archspec:densenet121'"
        )
    if base_name.startswith(bundled.PREFIX):  # a bundled spec, by name, wherever archspec is installed
        base_path = bundled.find(base_name[len(bundled.PREFIX):], ext_loc, prefixed=True)
    else:
        base_path = path.parent / base_name
        if base_path.suffix.lower() not in bundled.SUFFIXES:
            raise SpecReferenceError(f"'extends' names '{short_name(base_name)}', which is not a spec file", ext_loc,
                                     expected="a .yaml or .yml file, relative to this file, or 'archspec:' and a bundled spec's name",
                                     hint=bundled.bundled_hint(base_name))
        _check_base(base_name, base_path, path, shown, ext_loc)
    base = _load_chain(base_path, limits, chain + [real], ext_loc)
    child = dict(doc.data)
    del child["extends"]
    child_locs = doc.locs.copy()
    child_locs.drop_subtree(("extends",))
    data, locs = merge(base.data, base.locs, child, child_locs)
    return Document(data, locs, shown, base.files + [shown])


def _check_base(base_name: str, base_path: Path, path: Path, shown: str, ext_loc: Loc | None) -> None:
    """Refuse, at the ``extends:`` line, a base that cannot be read: missing (with a "did
    you mean"), a dangling symlink, a symlink loop, a name too long for the file system.
    Everything else is refused by :func:`read_spec_text`, at the same place."""
    name = short_name(base_name)
    try:
        os.stat(base_path)
        return
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise SpecReferenceError(f"'extends' names '{name}', which cannot be read: {why(e)}", ext_loc,
                                     expected="a spec file path relative to the extending file") from None
    if os.path.islink(base_path):
        raise SpecReferenceError(f"'extends' names '{name}', a symlink to '{short_name(os.readlink(base_path))}', "
                                 "which does not exist", ext_loc, expected="a spec file path relative to the extending file")
    try:
        siblings = {p.stem: p.name for p in path.parent.glob("*.y*ml")} if path.parent.is_dir() else {}
    except OSError:
        siblings = {}
    close = difflib.get_close_matches(Path(base_name).stem, list(siblings), n=1, cutoff=0.8)
    raise SpecReferenceError(
        f"'extends' names '{name}', but there is no such file next to {shown}",
        ext_loc,
        expected="a spec file path relative to the extending file",
        hint=f"did you mean '{siblings[close[0]]}'?" if close else bundled.bundled_hint(base_name),
    )


def merge(base: dict, base_locs: Locations, child: dict, child_locs: Locations) -> tuple[dict, Locations]:
    """Merge a variant over its base, keeping each value's source position.

    The rules, applied recursively: mappings merge key by key, in the base's order, a key
    the variant adds standing where the variant writes it among the base's keys (before
    the next base key it names, or after the last; at the end otherwise); lists and
    scalars replace (but ``requires:`` lists add up: the base's packages, then the
    variant's others); a ``null`` value removes the key from the base
    (naming a key the base does not have is an error: it is a typo); a node that changes
    its kind (``op``, ``use``, ``seq``, ...) or names another op or block replaces the base
    node whole instead of merging into it.
    """
    out = base_locs.copy()
    data = _merge(base, child, (), out, child_locs)
    root = child_locs.own_value(())
    if root is not None:
        out.set_value((), root)
    return data, out


def is_node_path(path: PathT) -> bool:
    """Whether ``path`` is where a node stands: ``graph.<name>``, ``blocks.<name>``, or a
    child of a node's body (``graph.features.seq.conv0``)."""
    if len(path) < 2 or path[0] not in ("graph", "blocks"):
        return False
    at_node = True  # path[1] names a node (or a block)
    i = 2
    while i < len(path):
        if at_node:
            if path[i] not in ("seq", "concat", "add", "dense"):
                return False
            i += 1
            at_node = False
        else:
            i += 1
            at_node = True
    return at_node


def _merge(base: Any, child: Any, path: PathT, out: Locations, child_locs: Locations) -> Any:
    if isinstance(base, dict) and isinstance(child, dict) and not (is_node_path(path) and _replaces(base, child)):
        result = dict(base)
        for key, value in child.items():
            sub = path + (key,)
            if value is None:
                if key not in base:
                    close = difflib.get_close_matches(str(key), [str(k) for k in base], n=1, cutoff=0.6)
                    raise SpecReferenceError(
                        f"'{key}: null' removes nothing: the base spec has no '{key}' here",
                        child_locs.key(sub), expected="the name of a key of the base: " + ", ".join(map(str, list(base)[:12])),
                        hint=f"did you mean '{close[0]}'?" if close else None,
                    )
                result.pop(key, None)
                out.drop_subtree(sub)
                continue
            if sub == ("requires",) and isinstance(base[key] if key in base else None, list) and isinstance(value, list):
                result[key] = _union(base[key], value, out, child_locs)
            elif key in base:
                result[key] = _merge(base[key], value, sub, out, child_locs)
            else:
                result[key] = value
                out.copy_subtree(child_locs, sub)
            key_loc = child_locs.own_key(sub)
            if key_loc is not None:
                out.set_key(sub, key_loc)
        own = child_locs.own_value(path)
        if own is not None:
            out.set_value(path, own)
        return _ordered(result, base, child)
    key_loc = out.own_key(path)
    out.drop_subtree(path)
    out.copy_subtree(child_locs, path)
    if key_loc is not None and out.own_key(path) is None:
        out.set_key(path, key_loc)
    return child


def _union(base: list, child: list, out: Locations, child_locs: Locations) -> list:
    """``requires:`` of a variant and its base: the base's packages, then the variant's
    others (a variant uses its base's ops too), each item located in its own file."""
    result = list(base)
    for i, item in enumerate(child):
        if item not in result:
            out.copy_subtree(child_locs, ("requires", i), ("requires", len(result)))
            result.append(item)
    return result


def _ordered(result: dict, base: dict, child: dict) -> dict:
    """``result`` with each key the variant adds placed where the variant writes it: right
    before the next key of the base that the variant names after it, or else right after
    the last one it names before it (at the end if it names none). Order matters in a
    body: a squeeze-and-excitation inserted between a block's ``bn3`` and its ``sum`` is
    written as ``se: {...}`` followed by ``sum: {...}`` in the variant."""
    added = [k for k in child if k not in base and k in result]
    if not added:
        return result
    order = [k for k in base if k in result]
    written = list(child)
    for key in added:
        at = written.index(key)
        after = next((k for k in written[at + 1:] if k in base and k in order), None)
        before = next((k for k in reversed(written[:at]) if k in order), None)
        if after is not None:
            order.insert(order.index(after), key)
        elif before is not None:
            order.insert(order.index(before) + 1, key)
        else:
            order.append(key)
    return {k: result[k] for k in order}


def _replaces(base: dict, child: dict) -> bool:
    """Whether ``child`` is a node of another kind than ``base`` (so it replaces it)."""
    base_kind = next((k for k in NODE_KIND_KEYS if k in base), None)
    child_kind = next((k for k in NODE_KIND_KEYS if k in child), None)
    if base_kind is None or child_kind is None:
        return False
    if base_kind != child_kind:
        return True
    return base_kind in ("op", "use") and base[base_kind] != child[child_kind]
