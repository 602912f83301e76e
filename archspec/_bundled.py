"""The bundled specs: where they are, and a spec given by name instead of by path.

Where: the top-level ``specs/`` folder of the source tree is the source of truth. A wheel
(``pip install .``) carries a copy of it as ``archspec/specs/``: pyproject.toml maps the
package ``archspec.specs`` onto the folder ``specs/`` and ships its ``.yaml`` and
``.json`` files as package data. :func:`folder` looks there first, then beside the
package in a source checkout (``pip install -e .``, or the checkout on ``PYTHONPATH``),
recognised by the ``pyproject.toml`` next to ``specs/``.

Names: a bundled spec is named by its file stem, ``resnet50`` for
``specs/resnet/resnet50.yaml``, or equally by its path inside the folder without the
suffix, ``resnet/resnet50`` (what ``archspec list`` shows; it stays unambiguous should
two families ever share a stem).

How a spec argument is read (``compile_spec(spec)``, ``load_spec(spec)``, every
command's ``SPEC``), in this order:

1. ``"archspec:NAME"`` is always the bundled spec NAME (the form ``extends:`` uses);
2. an ``os.PathLike`` (a ``pathlib.Path``) is always a file path;
3. a string that names something that exists is that path: a file ``googlenet`` in the
   working folder is read rather than the bundled GoogLeNet (a folder is refused, as
   before);
4. a string ending in ``.yaml`` or ``.yml`` is a file path (a missing one is the usual
   "no spec file at ..." error);
5. any other string is a bundled name when it is one; else, with a ``/`` it is a missing
   file, without one an unknown name, and either error names the nearest bundled specs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ._errors import Loc, SpecReferenceError, did_you_mean
from ._files import shown_path

__all__ = ["PREFIX", "bundled_hint", "find", "folder", "names", "spec_path"]

PREFIX = "archspec:"
SUFFIXES = (".yaml", ".yml")
_SEPARATORS = tuple(s for s in (os.sep, os.altsep) if s)
_HERE = Path(__file__).resolve().parent


def folder() -> Path | None:
    """The folder of the bundled specs: inside the installed package (a wheel), or the
    ``specs/`` of the source checkout this package runs from; ``None`` if neither."""
    installed = _HERE / "specs"
    if installed.is_dir():
        return installed
    checkout = _HERE.parent
    if (checkout / "specs").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "specs"
    return None


def names(where: Path | None = None) -> dict[str, Path]:
    """Every bundled spec by its qualified name (``densenet121``, ``resnet/resnet50``; the
    path inside the folder without the suffix), in the order ``archspec list`` shows them:
    the top-level specs, then each family folder's."""
    where = folder() if where is None else where
    if where is None:
        return {}
    paths = [p for p in where.rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    rel = {p: p.relative_to(where) for p in paths}
    paths.sort(key=lambda p: (len(rel[p].parts) > 1, rel[p].as_posix()))
    return {rel[p].with_suffix("").as_posix(): p for p in paths}


def find(name: str, loc: Loc | None = None, *, prefixed: bool = False, where: Path | None = None) -> Path:
    """The file of the bundled spec ``name`` (a stem or a qualified name). An unknown or
    ambiguous name is a :class:`SpecReferenceError` at ``loc`` that names the nearest
    bundled specs (written with ``archspec:`` when ``prefixed``, as in ``extends:``)."""
    where = folder() if where is None else where
    written = f"{PREFIX}{name}" if prefixed else name
    if where is None:
        raise SpecReferenceError(f"'{shown_path(written)}' names a bundled spec, but the bundled specs are not installed "
                                 "with this archspec (its 'specs' folder is missing)", loc,
                                 expected="a spec file path", hint="reinstall archspec, or give the spec's file")
    known = names(where)
    key = name.replace(os.sep, "/")
    if key in known:
        return known[key]
    by_stem = _by_stem(known)
    if len(by_stem.get(key, ())) == 1:
        return by_stem[key][0]
    tag = PREFIX if prefixed else ""
    bare = _stem(key) if key.lower().endswith(SUFFIXES) else None
    if bare is not None and (bare in known or len(by_stem.get(bare, ())) == 1):
        raise SpecReferenceError(f"no bundled spec is named '{shown_path(written)}'", loc,
                                 expected="a bundled spec's name, which has no suffix",
                                 hint=f"did you mean '{tag}{bare}'?")
    if key in by_stem:
        choices = " or ".join(f"'{tag}{q}'" for q in sorted(q for q, p in known.items() if p in by_stem[key]))
        raise SpecReferenceError(f"'{shown_path(written)}' is ambiguous: several bundled specs are named '{key}'", loc,
                                 expected="a name with its family folder", hint=f"write {choices}")
    raise SpecReferenceError(f"no bundled spec is named '{shown_path(written)}'", loc,
                             expected="the name of a bundled spec, such as 'densenet121' or 'resnet/resnet50'"
                             if not prefixed else f"'{PREFIX}' and a bundled spec's name, such as '{PREFIX}densenet121'",
                             hint=_nearest(key, known, tag))


def spec_path(spec: str | os.PathLike[str]) -> Path:
    """The file a spec argument stands for, by the rules of the module docstring."""
    if not isinstance(spec, str):
        return Path(spec)
    if spec.startswith(PREFIX):
        return find(spec[len(PREFIX):], prefixed=True)
    if os.path.lexists(spec):
        return Path(spec)
    if spec.lower().endswith(SUFFIXES):  # a missing file: the usual error, with a hint if a bundled spec has its stem
        hint = bundled_hint(spec, "")
        if hint is None:
            return Path(spec)  # reading it says what is wrong, as for any path
        raise SpecReferenceError(f"no spec file at '{shown_path(spec)}'", None, hint=hint)
    where = folder()
    known = names(where) if where is not None else {}
    key = spec.replace(os.sep, "/")
    if key in known or len(_by_stem(known).get(key, ())) == 1 or not any(s in spec for s in _SEPARATORS):
        return find(spec, where=where)
    close = did_you_mean(key, known)
    raise SpecReferenceError(f"no spec file at '{shown_path(spec)}'", None,
                             hint=f"{close} ('archspec list' lists the bundled specs)" if close else None)


def bundled_hint(written: str, tag: str = PREFIX) -> str | None:
    """For a spec file that is not there, or an ``extends:`` without a suffix, whose stem is
    a bundled spec's name: that name (with ``tag``, as ``extends:`` writes it), as a hint."""
    stem = _stem(written.replace(os.sep, "/")).rsplit("/", 1)[-1]
    where = folder()
    if where is None or not stem:
        return None
    if len(_by_stem(names(where)).get(stem, ())) != 1:
        return None
    return f"did you mean the bundled spec '{tag}{stem}'?"


def _stem(name: str) -> str:
    """``name`` without a spec file's suffix."""
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def _by_stem(known: dict[str, Path]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for path in known.values():
        out.setdefault(path.stem, []).append(path)
    return out


def _nearest(key: str, known: dict[str, Path], tag: str) -> str:
    """A "did you mean" among the bundled names (stems, or qualified names for a key with
    a '/'), and where the list is."""
    pool = list(known) if "/" in key else list(_by_stem(known))
    close = did_you_mean(key, pool)
    if close and tag:
        close = re.sub("'([^']*)'", lambda m: f"'{tag}{m[1]}'", close)
    listed = "'archspec list' lists the bundled specs"
    return f"{close} ({listed})" if close else listed
