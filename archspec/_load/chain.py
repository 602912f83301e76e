"""Stage 1, load, for a file: a spec file and, through ``extends:``, the bases it builds on.

What it does: :func:`load_document` reads a spec file (or a bundled spec, by name) as
UTF-8 text within the size limit, loads it (:func:`.yaml_text.load_text`), follows its
``extends:`` chain, refusing loops, chains past ``Limits.max_extends_depth`` and bases
that cannot be read (with a "did you mean" for a missing one), and merges each variant
over its base (:func:`.extends.merge`), nesting the base first where ``extends`` says so
(``extends: {spec: ..., nest: backbone}``, :mod:`.nest`).

What it deliberately does not do: parse YAML, or check keys or types (that is
:mod:`archspec._schema`).
"""

from __future__ import annotations

import difflib
import errno
import os
from pathlib import Path

from .. import _bundled as bundled
from .._bundled import spec_path
from .._errors import Loc, SpecLimitError, SpecReferenceError, SpecSyntaxError
from .._files import FileProblem, open_regular, shown_path, why
from .._limits import DEFAULT_LIMITS, Limits
from .extends import merge
from .locations import Document
from .nest import drop_unused_params, extends_target, nest_base, with_init
from .yaml_text import load_text

__all__ = ["display_path", "load_document", "read_spec_text"]


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a user would type it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return str(p)


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
    if doc.data.get("extends") is None:
        return doc
    base_name, nest = extends_target(doc)
    ext_loc = doc.locs.value(("extends", "spec") if nest is not None or isinstance(doc.data["extends"], dict) else ("extends",))
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
            raise SpecReferenceError(f"'extends' names '{shown_path(base_name)}', which is not a spec file", ext_loc,
                                     expected="a .yaml or .yml file, relative to this file, or 'archspec:' and a bundled spec's name",
                                     hint=bundled.bundled_hint(base_name))
        _check_base(base_name, base_path, path, shown, ext_loc)
    base = _load_chain(base_path, limits, chain + [real], ext_loc)
    child = dict(doc.data)
    del child["extends"]
    child_locs = doc.locs.copy()
    child_locs.drop_subtree(("extends",))
    base_init: list = []
    if nest is not None:
        base = nest_base(base, nest, base.path)
        base_init = base.data.pop("init", [])
        base_init_locs = base.locs.copy()
        if "init" not in child:  # the variant writes none: the base's stand alone
            base.data["init"] = base_init
            base_init = []
        else:
            base.locs.drop_subtree(("init",))
    data, locs = merge(base.data, base.locs, child, child_locs)
    if base_init:
        with_init(data, locs, base_init, base_init_locs)
    if nest is not None:
        drop_unused_params(data, locs, child, limits)
    return Document(data, locs, shown, base.files + [shown], trunk=nest.name if nest is not None else base.trunk)


def _check_base(base_name: str, base_path: Path, path: Path, shown: str, ext_loc: Loc | None) -> None:
    """Refuse, at the ``extends:`` line, a base that cannot be read: missing (with a "did
    you mean"), a dangling symlink, a symlink loop, a name too long for the file system.
    Everything else is refused by :func:`read_spec_text`, at the same place."""
    name = shown_path(base_name)
    try:
        os.stat(base_path)
        return
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise SpecReferenceError(f"'extends' names '{name}', which cannot be read: {why(e)}", ext_loc,
                                     expected="a spec file path relative to the extending file") from None
    if os.path.islink(base_path):
        raise SpecReferenceError(f"'extends' names '{name}', a symlink to '{shown_path(os.readlink(base_path))}', "
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
