"""The YAML event builder: parser events to plain data, with the position of every key and value.

What it does: builds plain ``dict``/``list``/scalar data from PyYAML's (or libyaml's)
*events* iteratively, on an explicit stack (no object construction, so no tag can run
code; no recursion, so no nesting can overflow the stack), and records a :class:`Loc`
for every value and every key in a :class:`Locations` table. It expands aliases (copying
their anchor's locations too), and refuses ``<<`` merge keys (YAML 1.1's, not 1.2 core's),
duplicate keys, tags other than the core ones (``!!python/...`` among them), keys that are
lists or mappings,
a top level that is not a mapping, several documents, aliases that expand past
``Limits.max_yaml_values`` and nesting past ``Limits.max_yaml_depth``.

What it deliberately does not do: read text or translate the parser's own errors
(:mod:`.yaml_text`), or check what any key means.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from yaml import events as ev

from .._errors import Loc, SpecLimitError, SpecSyntaxError
from .._limits import Limits
from .locations import Locations, PathT
from .scalars import ALLOWED_TAGS, CONTROL, CORE, mark_loc, scalar

__all__ = ["build"]

_NO_KEY = object()  # a mapping frame waiting for its next key


class _Frame:
    """A mapping or list being built: what it holds so far, and the key it waits to fill."""

    __slots__ = ("kind", "value", "path", "loc", "anchor", "pending_key", "key_loc", "size", "depth")

    def __init__(self, kind: str, path: PathT, loc: Loc, anchor: str | None) -> None:
        self.kind = kind
        self.value: Any = {} if kind == "map" else []
        self.path = path
        self.loc = loc
        self.anchor = anchor
        self.pending_key: Any = _NO_KEY
        self.key_loc: Loc | None = None
        self.size = 1
        self.depth = 0  # how deeply the value nests below this frame

    def wants_key(self) -> bool:
        return self.kind == "map" and self.pending_key is _NO_KEY


@dataclass
class _Anchored:
    value: Any
    path: PathT
    size: int  # values, once expanded
    locs: Locations
    depth: int  # nesting levels of the value


def build(events: Iterator[ev.Event], file: str, locs: Locations, limits: Limits) -> dict[str, Any]:
    """The document's top-level mapping, its positions recorded in ``locs``."""
    return _Builder(file, locs, limits).build(events)


class _Builder:
    def __init__(self, file: str, locs: Locations, limits: Limits) -> None:
        self.file = file
        self.locs = locs
        self.limits = limits
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchored] = {}
        self.total = 0  # values so far, aliases expanded
        self.root: Any = _NO_KEY
        self.root_loc = Loc(file, 1, 1)
        self.documents = 0

    def build(self, events: Iterator[ev.Event]) -> dict[str, Any]:
        for event in events:
            if isinstance(event, (ev.StreamStartEvent, ev.StreamEndEvent, ev.DocumentEndEvent)):
                continue
            if isinstance(event, ev.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    raise SpecSyntaxError("a spec file holds exactly one YAML document; found a second '---'",
                                          mark_loc(self.file, event.start_mark))
            elif isinstance(event, ev.ScalarEvent):
                self._scalar(event, self._here(event))
            elif isinstance(event, (ev.MappingStartEvent, ev.SequenceStartEvent)):
                self._open(event, self._here(event))
            elif isinstance(event, (ev.MappingEndEvent, ev.SequenceEndEvent)):
                self._close()
            elif isinstance(event, ev.AliasEvent):
                self._alias(event, self._here(event))
        return self._top_level()

    # -- one event each ------------------------------------------------------------------

    def _here(self, event: ev.NodeEvent) -> Loc:
        """Where ``event`` stands (a quoted scalar on one line: its text), once its tag is
        known to be allowed and to fit."""
        file = self.file
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in ALLOWED_TAGS:
            shown = "!!" + tag[len(CORE):] if tag.startswith(CORE) else tag
            raise SpecSyntaxError(
                f"the YAML tag '{shown}' is not allowed",
                mark_loc(file, event.start_mark, event.end_mark),
                expected="plain maps, lists, strings, numbers and booleans (tags !!str, !!int, !!float, !!bool, !!null)",
                hint="archspec specs are data: nothing in a spec can construct Python objects or run code",
            )
        here = mark_loc(file, event.start_mark, event.end_mark)
        if tag is not None and tag != "!":
            fits = {"map": ev.MappingStartEvent, "seq": ev.SequenceStartEvent}.get(tag[len(CORE):], ev.ScalarEvent)
            if not isinstance(event, fits):
                what = {ev.MappingStartEvent: "a mapping", ev.SequenceStartEvent: "a list"}.get(type(event), "a plain value")
                raise SpecSyntaxError(f"the tag '!!{tag[len(CORE):]}' does not fit {what}", here)
        if isinstance(event, ev.ScalarEvent) and event.style in ("'", '"') and here.end_col and here.line == here.end_line:
            here = Loc(file, here.line, here.col + 1, here.end_line, here.end_col - 1)  # point at the text
        return here

    def _scalar(self, event: ev.ScalarEvent, here: Loc) -> None:
        self._count(1, here)
        bad = CONTROL.search(event.value)
        if bad:
            raise SpecSyntaxError(f"a string holds the character U+{ord(bad.group()):04X}, which a spec may not contain",
                                  here, expected="printable text (control characters and unpaired surrogates "
                                                 "come only from escapes such as \\x1b or \\ud800)")
        top = self.stack[-1] if self.stack else None
        if top is not None and top.wants_key():
            # a key: always its text, so that `on:` or `1:` name things rather than convert
            if event.tag is None and event.implicit[0] and event.value == "<<":
                raise SpecSyntaxError("'<<' merge keys are YAML 1.1, not part of the YAML 1.2 core that specs are read as",
                                      here, hint="write the keys out; to share a node, give it an anchor and write its "
                                                 "alias (&name ... *name), or make it a block ('blocks:' and 'use:')")
            if event.anchor:
                self.anchors[event.anchor] = _Anchored(event.value, (), 1, Locations.single(here), 0)
            self._add(event.value, here, 1)
            return
        try:
            value = scalar(event.value, event.tag, event.implicit[0])
        except ValueError as e:
            raise SpecSyntaxError(str(e), here) from None
        self._add(value, here, 1)
        if event.anchor:
            self.anchors[event.anchor] = _Anchored(value, (), 1, Locations.single(here), 0)

    def _open(self, event: ev.CollectionStartEvent, here: Loc) -> None:
        top = self.stack[-1] if self.stack else None
        if top is not None and top.wants_key():
            raise SpecSyntaxError("a mapping key must be a plain name, not a list or mapping", here)
        limit = self.limits.max_yaml_depth
        if len(self.stack) >= limit:
            raise SpecLimitError(f"the YAML nests deeper than {limit} levels (Limits.max_yaml_depth)", here)
        self._count(1, here)
        kind = "map" if isinstance(event, ev.MappingStartEvent) else "seq"
        self.stack.append(_Frame(kind, _child_path(top), mark_loc(self.file, event.start_mark), event.anchor))

    def _close(self) -> None:
        frame = self.stack.pop()
        self._add(frame.value, frame.loc, frame.size)
        if self.stack:
            self.stack[-1].depth = max(self.stack[-1].depth, frame.depth + 1)
        if frame.anchor is not None:
            sub = Locations()
            sub.copy_subtree(self.locs, frame.path)
            self.anchors[frame.anchor] = _Anchored(frame.value, frame.path, frame.size, sub, frame.depth + 1)

    def _alias(self, event: ev.AliasEvent, here: Loc) -> None:
        stack = self.stack
        top = stack[-1] if stack else None
        if top is not None and top.wants_key():
            raise SpecSyntaxError(f"the alias '*{event.anchor}' is used as a mapping key", here,
                                  expected="a key written out (node and parameter names are text)")
        target = self.anchors.get(event.anchor)
        if target is None:
            if any(f.anchor == event.anchor for f in stack):
                raise SpecSyntaxError(f"the alias '*{event.anchor}' refers to a mapping or list that contains it", here)
            raise SpecSyntaxError(f"unknown alias '*{event.anchor}'", here, expected="an anchor '&name' defined above")
        self._count(target.size, here)
        if len(stack) + target.depth > self.limits.max_yaml_depth:
            raise SpecLimitError(
                f"the alias '*{event.anchor}' makes the YAML nest deeper than {self.limits.max_yaml_depth} levels "
                "(Limits.max_yaml_depth)", here)
        if stack:
            stack[-1].depth = max(stack[-1].depth, target.depth)
        if top is not None and top.kind == "map" and top.pending_key is _NO_KEY:
            if isinstance(target.value, (dict, list)):
                raise SpecSyntaxError("a mapping key must be a plain name, not a list or mapping", here)
            self._add(target.value, here, 1)
            return
        self._add(_copy(target.value), here, target.size, target.locs, target.path)

    def _count(self, size: int, here: Loc) -> None:
        self.total += size
        if self.total > self.limits.max_yaml_values:
            raise SpecLimitError(
                f"the document expands to more than {self.limits.max_yaml_values:,} values (Limits.max_yaml_values)",
                here,
                hint="YAML aliases ('*name') copy what their anchor holds; nested aliases multiply",
            )

    # -- attaching a finished value ------------------------------------------------------

    def _add(self, value: Any, loc: Loc, size: int, sub_locs: Locations | None = None, src: PathT = ()) -> None:
        """Attach a finished value to the frame on top of the stack (or make it the root);
        ``sub_locs`` at ``src``: the positions of an alias's copy."""
        if not self.stack:
            self.root, self.root_loc = value, loc
            self.locs.set_value((), loc)
            return
        top = self.stack[-1]
        if top.kind == "seq":
            path = top.path + (len(top.value),)
            top.value.append(value)
            self._record(path, loc, sub_locs, src)
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
        path = top.path + (key,)
        if key in top.value:
            raise SpecSyntaxError(
                f"duplicate key '{key}' in this mapping",
                key_loc,
                notes=[(self.locs.own_key(path), f"'{key}' was first defined here")],
                hint="YAML would silently keep only the last one; remove or rename one of them",
            )
        top.value[key] = value
        self.locs.set_key(path, key_loc)
        self._record(path, loc, sub_locs, src)
        top.size += size

    def _record(self, path: PathT, loc: Loc, sub_locs: Locations | None, src: PathT) -> None:
        if sub_locs is None:
            self.locs.set_value(path, loc)
            return
        self.locs.copy_subtree(sub_locs, src, to=path, with_key=False)

    # -- the end of the stream -----------------------------------------------------------

    def _top_level(self) -> dict[str, Any]:
        root = self.root
        if self.documents == 0 or root is _NO_KEY or root is None:
            raise SpecSyntaxError("the file is empty", Loc(self.file, 1, 1),
                                  expected="a spec: a mapping with 'archspec: 1', 'input' and 'graph'")
        if not isinstance(root, dict):
            if isinstance(root, list):
                found = "a list"
            elif isinstance(root, str):  # a file that is not a spec at all: its text is neither echoed nor quoted
                found = f"plain text ({len(root):,} characters)"
            else:
                found = f"the value {root!r}"
            error = SpecSyntaxError(
                f"the top level of a spec must be a mapping; found {found}", self.root_loc,
                expected="keys such as 'archspec: 1', 'name', 'input' and 'graph'",
            )
            error.quote = not isinstance(root, str)
            raise error
        return root


def _child_path(top: _Frame | None) -> PathT:
    if top is None:
        return ()
    if top.kind == "seq":
        return top.path + (len(top.value),)
    return top.path + (top.pending_key,) if top.pending_key is not _NO_KEY else top.path


def _copy(value: Any) -> Any:
    """A deep copy of plain data (nesting is bounded by Limits.max_yaml_depth)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
