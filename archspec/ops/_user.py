"""User ops: an op of the spec language added from Python, in a few lines.

The smallest form is a ``torch.nn.Module`` class whose constructor's keyword arguments,
typed and defaulted, are the op's parameters::

    @archspec.register_op("star_relu")
    class StarReLU(nn.Module):
        \"\"\"s * relu(x) ** 2 + b, with a learnable scale and bias (MetaFormer).\"\"\"

        def __init__(self, scale: float = 1.0, bias: float = 0.0, learnable: bool = True):
            ...

and a spec then says ``{op: star_relu, scale: 0.8944}``. ``register_op(name, factory,
...)`` is the same without the decorator, for any callable returning a module (an
``nn.Module`` class of torch itself, say).

What archspec reads from the factory, and how:

- **parameters**: the constructor's arguments, by their annotations: ``int``, ``float``,
  ``bool``, ``str``, ``Literal["a", "b"]``, ``list[int]`` (a tuple reaches the module),
  ``X | None`` for numbers and strings, or ``Annotated[float, Float(ge=0, le=1)]`` with a
  value type of :mod:`archspec.ops` (``Int``, ``Float``, ``Bool``, ``Str``, ``Choice``,
  ``IntList``, ``Size``) for bounds. An argument without an annotation takes its
  default's type. An argument without a default is required in the spec. An argument
  of another type (a callable, a module) is not a spec parameter and keeps its default;
  without a default, registration fails. ``params=`` gives them instead: a mapping
  ``{"p": float, "k": (int, 3)}`` (a type or value type, or a pair with the default) or an
  :class:`OpParams` model. Every parameter is checked as the built-in ops' are (located
  errors, expressions, the JSON Schema, ``archspec ops NAME``);
- **what comes from the input**: arguments named ``in_shape`` (the input's shape per
  sample, a tuple), ``in_channels``, ``num_features``, ``num_channels`` (its first
  dimension: an image's channels) and ``in_features`` (its last dimension) are filled from
  the node's inferred input, never written in a spec. ``inplace``, if the constructor has
  it, is always ``False`` (archspec cannot know where overwriting the input is safe);
  ``device`` and ``dtype`` keep their defaults (archspec places the module);
- **tensors**: the module is built once per distinct configuration on the meta device
  (no memory, no drawing), and its ``state_dict`` gives the parameter and buffer names
  and shapes, so parameter counts, ``state_dict`` keys and ``init:`` rules are known
  before any tensor exists. A constructor that cannot run on the meta device (it reads
  tensor values) is built once on the CPU instead. A tensor kept in a plain attribute
  (not a parameter or buffer) is refused: archspec could not place it;
- **output shape**: by default the module is run on a meta tensor of the input's shape
  (a batch of two), which gives the output shape exactly and, with torch's FLOP counter,
  the MACs of its convolutions and matrix products (the first such run in a process
  loads torch's meta kernels, a second or two). ``shape="same"`` says the output has
  the input's shape without running it; ``shape=fn`` computes it: ``fn(in_shape, p)``
  returns the output shape per sample, where ``p`` holds the parameters as attributes,
  and may raise :class:`ShapeError` (``param="k"`` points the error at that value).
  A forward that fails on the input is a located shape error of the spec;
- **MACs**: ``macs=fn(in_shape, out_shape, p)``; otherwise those counted by the meta run
  (0 with ``shape=`` given);
- **starting values**: the tensors start as the constructor makes them: when the compiled
  model is filled, each user-op node's module is built once for real and its tensors
  copied in (so a seeded compile draws as constructing the module at that point would);
  ``init:`` rules override them as for any op.

A user op reads one input. archspec never runs another op in place on its output (it
cannot know whether autograd needs it). It cannot replace a built-in op; registering a
name again needs ``replace=True`` (except for the same class, registered again when its
module is re-run). ``unregister_op(name)`` removes one.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import create_model

from .._errors import camel_case
from ._plugins import origin as plugin_origin
from ._registry import DEFAULT_DTYPE, REGISTRY, Inferred, OpDef, OpParams, Shape, ShapeError, register, unregister
from ._user_module import Fresh, Part, check_out, construct, on_cpu, run_on_meta
from ._user_params import FROM_INPUT, read_params

__all__ = ["register_op", "unregister_op", "UserOp", "FROM_INPUT", "CATEGORIES"]

CATEGORIES = ("user", "layer", "norm", "activation", "pool", "dropout", "reshape")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_CACHE_SIZE = 256


def register_op(name: str, module: Callable[..., Any] | None = None, *, params: Any = None,
                shape: Callable[[Shape, Any], Any] | str | None = None,
                macs: Callable[[Shape, Shape, Any], int] | None = None, doc: str | None = None,
                category: str = "user", replace: bool = False) -> Any:
    """Add the op ``name`` to the spec language: ``module`` (an ``nn.Module`` class, or any
    callable returning a module) built with the node's parameters as keyword arguments.

    Without ``module``, a decorator: ``@register_op("star_relu")`` on the class registers it
    and returns the class unchanged. Otherwise returns the registry entry (:class:`OpDef`).
    See :mod:`archspec.ops._user` for what is read from ``module`` and the options.
    """
    if not isinstance(name, str):  # @register_op on a class, without the name
        raise TypeError(f"register_op needs the op's name first: @archspec.register_op(\"name\"), not {name!r}")
    if module is None:
        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            register_op(name, factory, params=params, shape=shape, macs=macs, doc=doc, category=category, replace=replace)
            return factory

        return decorate
    _check_name(name, _qualname(module), replace)
    user = UserOp(name, module, params=params, shape=shape, macs=macs)
    if category not in CATEGORIES:
        raise ValueError(f"op '{name}': category must be one of {', '.join(CATEGORIES)}, not {category!r}")
    text = inspect.cleandoc(doc or user.params.__doc__ or inspect.getdoc(module) or f"A user op ({user.qualname}).")
    return register(OpDef(name, user.params, user.infer, text, build=user.build, defaults=user.defaults,
                          saves_output=True, category=category,
                          origin=plugin_origin() or f"registered from Python: {user.qualname}"))


def unregister_op(name: str) -> None:
    """Remove the user op ``name`` (a ``KeyError`` if there is none; built-in ops stay)."""
    op = REGISTRY.get(name)
    if op is None:
        raise KeyError(f"no op '{name}' is registered")
    if op.origin is None:
        raise ValueError(f"'{name}' is a built-in op; only user ops can be removed")
    unregister(name)


def _qualname(factory: Any) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def _check_name(name: Any, qualname: str, replace: bool) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"op name {name!r}: use letters, digits and '_', starting with a letter")
    existing = REGISTRY.get(name)
    if existing is None:
        return
    if existing.origin is None:
        raise ValueError(f"'{name}' is a built-in op: a user op needs a name of its own")
    before = getattr(existing.infer, "__self__", None)
    if not replace and not (isinstance(before, UserOp) and before.qualname == qualname):
        raise ValueError(f"op '{name}' is already registered ({existing.origin}); pass replace=True to replace it")


@dataclass
class _Config:
    """What one configuration of a user op (its arguments and input shape) comes to."""

    inferred: Inferred
    names: list[str]  # every tensor of the module, non-persistent buffers too
    on_meta: bool  # its constructor runs on the meta device


class UserOp:
    """The machinery behind one registered user op: its parameter model, and the shape
    rule, builder and starting values that :class:`OpDef` calls."""

    def __init__(self, name: str, factory: Callable[..., Any], *, params: Any = None,
                 shape: Callable[[Shape, Any], Any] | str | None = None,
                 macs: Callable[[Shape, Shape, Any], int] | None = None) -> None:
        if not callable(factory):
            raise TypeError(f"op '{name}': {factory!r} is not a module class or a function returning a module")
        if shape is not None and shape != "same" and not callable(shape):
            raise TypeError(f"op '{name}': shape must be None, 'same' or a function (in_shape, p) -> shape")
        if macs is not None and not callable(macs):
            raise TypeError(f"op '{name}': macs must be None or a function (in_shape, out_shape, p) -> int")
        self.name = name
        self.factory = factory
        self.qualname = _qualname(factory)
        self.shape = shape
        self.macs = macs
        self._cache: dict[Any, _Config] = {}
        found = read_params(name, factory, self.qualname, params)
        self.inputs: list[str] = found.inputs  # constructor arguments filled from the input shape
        self.fixed: list[str] = found.fixed  # constructor arguments no spec can set (they keep their defaults)
        self.inplace = found.inplace  # the constructor takes `inplace` (always given False)
        if found.fields is None:
            self.params: type[OpParams] = params
            return
        try:
            self.params = create_model(camel_case(name, "Op") + "Params", __base__=OpParams, __module__=__name__,
                                       **found.fields)
        except Exception as e:  # a field name pydantic refuses
            raise TypeError(f"op '{name}': its parameters cannot form a model: {e}") from None

    # what one node of the op is
    def arguments(self, p: Any, in_shape: Shape) -> dict[str, Any]:
        """The keyword arguments the factory is called with for parameters ``p`` on ``in_shape``."""
        kwargs = {f: getattr(p, f) for f in type(p).model_fields}
        for pname in self.inputs:
            if not in_shape:
                raise ShapeError(f"{self.name} needs an input with at least one dimension (for its '{pname}'), but "
                                 "its input is a scalar per sample", expected="an input of 1 or more dimensions")
            kwargs[pname] = FROM_INPUT[pname](in_shape)
        if self.inplace:
            kwargs["inplace"] = False
        return kwargs

    def config(self, p: Any, in_shape: Shape) -> _Config:
        in_shape = tuple(in_shape)
        kwargs = self.arguments(p, in_shape)
        try:
            key: Any = (tuple(sorted(kwargs.items())), in_shape)
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self._cache:
            return self._cache[key]
        module, on_meta = construct(self.factory, kwargs, self.name, self.qualname)
        parameters = [n for n, _ in module.named_parameters(remove_duplicate=False)]
        params: dict[str, Shape] = {}
        buffers: dict[str, Shape] = {}
        dtypes: dict[str, str] = {}
        for k, t in module.state_dict(keep_vars=True).items():
            (params if k in parameters else buffers)[k] = tuple(t.shape)
            if str(t.dtype) != f"torch.{DEFAULT_DTYPE}":
                dtypes[k] = str(t.dtype).removeprefix("torch.")
        names = parameters + [n for n, _ in module.named_buffers(remove_duplicate=False)]
        counted = 0
        if self.shape is None:
            out, counted = run_on_meta(module if on_meta else module.to("meta"), in_shape, self.name, self.qualname)
        elif self.shape == "same":
            out = in_shape
        else:
            out = self._shape_of(in_shape, p)
        if self.macs is not None:
            counted = self.macs(in_shape, out, p)
            if isinstance(counted, bool) or not isinstance(counted, int) or counted < 0:
                raise TypeError(f"op '{self.name}': its macs function returned {counted!r}, not an integer >= 0")
        config = _Config(Inferred(out, params=params, buffers=buffers, macs=counted, dtypes=dtypes), names, on_meta)
        if key is not None:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = config
        return config

    def _shape_of(self, in_shape: Shape, p: Any) -> Shape:
        out = self.shape(in_shape, p)  # type: ignore[operator]
        if not isinstance(out, (tuple, list)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in out):
            raise TypeError(f"op '{self.name}': its shape function returned {out!r}, not a tuple of integers")
        out = tuple(out)
        check_out(out, in_shape, self.name)
        return out

    # the OpDef's entry points
    def infer(self, p: Any, shapes: list[Shape], names: list[str]) -> Inferred:
        return self.config(p, shapes[0]).inferred

    def build(self, p: Any, shapes: list[Shape], inplace: bool) -> Any:
        """The node's module (*lower* calls this on the meta device: nothing is allocated)."""
        config = self.config(p, shapes[0])
        kwargs = self.arguments(p, tuple(shapes[0]))
        if config.on_meta:
            return self.factory(**kwargs)
        return on_cpu(self.factory, kwargs).to("meta")

    def defaults(self, p: Any, shapes: list[Shape]) -> dict[str, Any]:
        """Each tensor's start: copied from the module built for real, once per node."""
        fresh = Fresh(self.factory, self.arguments(p, tuple(shapes[0])))
        return {name: Part(fresh, name) for name in self.config(p, shapes[0]).names}
