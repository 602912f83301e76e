"""Where every value of a loaded spec came from: :class:`Locations`, and :class:`Document`.

What it does: keeps a :class:`Loc` for every value and every key of a spec's data,
addressed by path (``("graph", "conv1", "out")``), indexed by parent so that copying or
dropping a subtree (an alias, a merge) costs the size of that subtree; and holds a loaded
spec (:class:`Document`): its data, that table, and the files it was read from.

What it deliberately does not do: read YAML or files (:mod:`.yaml_text`, :mod:`.chain`),
or know what any key means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import Loc

__all__ = ["Document", "Locations", "PathT"]

PathT = tuple[str | int, ...]


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
    #: the node a nested base became (``extends: {spec: ..., nest: backbone}``), a variant's
    #: too: the trunk whose maps ``features_only`` returns
    trunk: str | None = None
