"""The ops of the spec language, as a registry of :class:`OpDef` entries.

``archspec.ops.names()`` lists them; ``archspec.ops.get("conv2d")`` returns one entry.
The built-in ops live in one file per kind: ``conv``, ``norm``, ``act``, ``pool``,
``drop``, ``tensor``, ``joins``, ``resize`` (interpolate, pad), ``attention`` (ViT's) and
``window`` (Swin's).

Adding an op: ``archspec.register_op`` (:mod:`archspec.ops._user`) makes one of an
``nn.Module`` class in a few lines; installed packages provide ops through the entry-point
group ``archspec.ops`` (:mod:`archspec.ops._plugins`), loaded when first needed. The value
types (``Int``, ``Float``, ``Bool``, ``Str``, ``Choice``, ``IntList``, ``Size``) give a
user op's parameters bounds: ``Annotated[float, Float(ge=0, le=1)]``. The full form,
``register(OpDef(...))``, is what the built-in ops use (see :mod:`archspec.ops._registry`).
"""

from .._values import Bool, Choice, Float, Int, IntList, Size, Str
from . import act, attention, conv, drop, joins, norm, pool, resize, tensor, window  # noqa: F401  (registers the built-in ops)
from ._plugins import GROUP, PluginError, ensure_ops, installed_version, load_plugins, parse_requirement, version_at_least
from ._registry import (DEFAULT_DTYPE, LEARNED, REGISTRY, Inferred, OpDef, OpParams, Shape, ShapeError, dtype_bytes, fmt_bytes, fmt_shape, get, join_for, known, names, overview,
                        rank_name, register, summary, unknown_hint, unregister, version)
from ._user import register_op, unregister_op

__all__ = ["DEFAULT_DTYPE", "dtype_bytes", "fmt_bytes", "LEARNED", "REGISTRY", "Inferred", "OpDef", "OpParams", "Shape", "ShapeError", "fmt_shape", "get", "join_for", "known", "names", "overview", "rank_name",
           "register", "summary", "unknown_hint", "unregister", "version", "register_op", "unregister_op", "GROUP", "PluginError", "ensure_ops",
           "load_plugins", "parse_requirement", "installed_version", "version_at_least", "Bool", "Choice", "Float", "Int", "IntList", "Size", "Str"]
