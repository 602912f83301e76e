"""Ops provided by installed packages, through the entry-point group ``archspec.ops``.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."archspec.ops"]
    star_relu = "archspec_starrelu"              # a module whose import registers ops
    # or: star_relu = "archspec_starrelu:register"  (a function, called with no arguments)

Each entry point names a module whose import registers ops (with ``@archspec.register_op``
on its classes), or a function called with no arguments that registers them. Naming the
entry point after the op it provides lets archspec import only that package when a spec
names the op.

Entry points are loaded lazily, each at most once: never for a spec that uses built-in ops
only. When a spec names ops that are not registered, archspec loads the entry points named
like those ops, then those of the packages the spec ``requires:``, then, if an op is still
unknown, every entry point of the group (so that a misspelt name gets its "did you mean"
among them too). ``archspec ops`` and ``archspec schema`` load them all.

The security model: a spec names ops and distributions, never a Python module or a file to
import. The only code that runs is code the user installed (an entry point in this group)
or registered from Python. ``requires:`` reads package metadata only: it imports nothing.
"""

from __future__ import annotations

import contextvars
import re
import types
from collections.abc import Iterable
from typing import Any

from ._registry import REGISTRY

__all__ = ["GROUP", "PluginError", "load_plugins", "ensure_ops", "origin", "parse_requirement", "installed_version",
           "version_at_least"]

GROUP = "archspec.ops"

#: entry points loaded: (distribution, name, value)
_LOADED: set[tuple[str, str, str]] = set()
_ORIGIN: contextvars.ContextVar[str | None] = contextvars.ContextVar("archspec_op_origin", default=None)


class PluginError(RuntimeError):
    """An entry point of the ``archspec.ops`` group that fails to load or to register its
    ops (not a mistake in a spec: the installed package is broken or clashes)."""


def origin() -> str | None:
    """The package and entry point whose loading is registering ops now, if any."""
    return _ORIGIN.get()


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=GROUP))


def _dist(ep: Any) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unknown package", ""
    return dist.metadata["Name"] or dist.name, dist.version or ""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _load(ep: Any) -> None:
    dist, version = _dist(ep)
    key = (dist, ep.name, ep.value)
    if key in _LOADED:
        return
    where = f"the {GROUP} entry point '{ep.name} = {ep.value}' of package '{dist}'"
    token = _ORIGIN.set(f"from package {dist} {version} (entry point '{ep.name}')".replace("  ", " "))
    try:
        target = ep.load()
        if callable(target) and not isinstance(target, (type, types.ModuleType)):
            target()  # a registering function; a module or a (decorated) class registered on import
    except Exception as e:  # anything a broken package raises, named by its entry point
        raise PluginError(f"{where} failed: {type(e).__name__}: {e}") from e
    finally:
        _ORIGIN.reset(token)
    _LOADED.add(key)


def load_plugins(names: Iterable[str] | None = None, dists: Iterable[str] | None = None) -> None:
    """Load entry points of the ``archspec.ops`` group: those named in ``names`` (op names)
    or belonging to the distributions ``dists``; with neither, all of them. Each loads once;
    a failing one raises :class:`PluginError` naming it."""
    eps = _entry_points()
    if names is None and dists is None:
        chosen = eps
    else:
        wanted, packages = set(names or ()), {_normal(d) for d in dists or ()}
        chosen = [ep for ep in eps if ep.name in wanted or _normal(_dist(ep)[0]) in packages]
    for ep in chosen:
        _load(ep)


def ensure_ops(names: Iterable[str], dists: Iterable[str] = ()) -> None:
    """Make the ops ``names`` known where installed packages provide them: the entry points
    named like a missing op first, then those of ``dists`` (a spec's ``requires:``), then,
    if one is still missing, every entry point (its "did you mean" then covers them all)."""
    missing = {n for n in names if n not in REGISTRY}
    if not missing:
        return
    load_plugins(names=missing)
    missing = {n for n in missing if n not in REGISTRY}
    if missing and dists:
        load_plugins(dists=dists)
        missing = {n for n in missing if n not in REGISTRY}
    if missing:
        load_plugins()


# -- requires: ------------------------------------------------------------------------

_REQUIREMENT = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:>=\s*([0-9]+(?:\.[0-9]+)*))?")


def parse_requirement(text: str) -> tuple[str, str | None] | None:
    """``"archspec-mish>=1.2"`` -> ``("archspec-mish", "1.2")``; ``None`` if it is not a
    distribution name with an optional ``>=`` release."""
    m = _REQUIREMENT.fullmatch(text.strip())
    return (m[1], m[2]) if m else None


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name`` (reading its metadata only), or ``None``."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        return distribution(name).version or ""
    except PackageNotFoundError:
        return None
    except ValueError:  # a name importlib.metadata refuses
        return None


def _release(version: str) -> tuple[int, ...]:
    m = re.match(r"v?([0-9]+(?:\.[0-9]+)*)", version)
    return tuple(int(p) for p in m[1].split(".")) if m else ()


def version_at_least(version: str, least: str) -> bool:
    """Whether ``version``'s release numbers (``1.2.3`` of ``1.2.3rc1``) reach ``least``'s."""
    have, want = _release(version), _release(least)
    width = max(len(have), len(want))
    return have + (0,) * (width - len(have)) >= want + (0,) * (width - len(want))
