"""The ops of the spec language, as a registry of :class:`OpDef` entries.

``archspec.ops.names()`` lists them; ``archspec.ops.get("conv2d")`` returns one entry;
``archspec.ops.register(OpDef(...))`` adds an op (see :mod:`archspec.ops._registry` for
what an entry carries). The built-in ops live in one file per kind: ``conv``, ``norm``,
``act``, ``pool``, ``drop``, ``tensor``, ``joins``, ``attention`` (ViT's) and ``window``
(Swin's).
"""

from . import act, attention, conv, drop, joins, norm, pool, tensor, window  # noqa: F401  (registers the built-in ops)
from ._registry import REGISTRY, Inferred, OpDef, OpParams, Shape, ShapeError, fmt_shape, get, known, names, overview, rank_name, register, summary, version

__all__ = ["REGISTRY", "Inferred", "OpDef", "OpParams", "Shape", "ShapeError", "fmt_shape", "get", "known", "names", "overview", "rank_name",
           "register", "summary", "version"]
