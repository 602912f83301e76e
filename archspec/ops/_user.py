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

import collections.abc
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import create_model
from pydantic_core import PydanticCustomError

from .._errors import camel_case
from .._values import Bool, Choice, Float, Int, IntList, Str, _ValueType
from ._plugins import origin as plugin_origin
from ._registry import REGISTRY, Inferred, OpDef, OpParams, Shape, ShapeError, fmt_shape, rank_name, register, unregister

__all__ = ["register_op", "unregister_op", "UserOp", "FROM_INPUT", "CATEGORIES"]

#: constructor arguments filled from the node's input shape (per sample), never spec parameters
FROM_INPUT: dict[str, Callable[[Shape], Any]] = {
    "in_shape": tuple,
    "in_channels": lambda s: s[0],
    "num_features": lambda s: s[0],
    "num_channels": lambda s: s[0],
    "in_features": lambda s: s[-1],
}
#: the keys every node uses for itself: no op parameter may be called so
_NODE_KEYS = ("op", "use", "params", "from", "when", "repeat", "index", "inline", "doc", "seq", "concat", "add", "dense")
_PLACEMENT = ("device", "dtype")
CATEGORIES = ("user", "layer", "norm", "activation", "pool", "dropout", "reshape")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_EMPTY = inspect.Parameter.empty
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


# -- parameters ---------------------------------------------------------------------------


def _value_type(tp: Any, default: Any) -> _ValueType | None:
    """The spec value type of a parameter annotated ``tp`` (``None``: no spec form)."""
    if tp is _EMPTY or tp is Any:
        if default is _EMPTY or type(default) not in (bool, int, float, str):
            return None
        tp = type(default)
    if isinstance(tp, _ValueType):
        return tp
    if get_origin(tp) is Annotated:
        found = next((m for m in get_args(tp)[1:] if isinstance(m, _ValueType)), None)
        return found if found is not None else _value_type(get_args(tp)[0], default)
    nullable = False
    if get_origin(tp) in (Union, types.UnionType):
        args = get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            return None
        tp, nullable = rest[0], True
    if tp is bool:
        return None if nullable else Bool()
    if tp is int:
        return Int(nullable=nullable)
    if tp is float:
        return Float(nullable=nullable)
    if tp is str:
        return Str(nullable=nullable)
    if nullable:
        return None
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        return Choice(*choices) if choices and all(isinstance(c, str) for c in choices) else None
    if origin in (list, tuple, collections.abc.Sequence) and get_args(tp) in ((int,), (int, Ellipsis)):
        return IntList()
    return None


_SUPPORTED = ("int, float, bool, str, a Literal of strings, list[int], X | None for numbers and strings, "
              "or Annotated[..., <an archspec.ops value type>]")


def _signature(factory: Any, name: str, qualname: str) -> tuple[inspect.Signature | None, dict[str, Any]]:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to read
        return None, {}
    target = factory.__init__ if isinstance(factory, type) else factory
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # an annotation naming something undefined: the parameters' own (strings) are read
        hints = {}
    return sig, hints


def _check_default(name: str, pname: str, vt: _ValueType, default: Any) -> None:
    if default is _EMPTY:
        return
    try:
        vt.check(default)
    except PydanticCustomError:
        raise TypeError(f"op '{name}': the default of '{pname}', {default!r}, is not {vt.expected}") from None


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
        self.inputs: list[str] = []  # constructor arguments filled from the input shape
        self.fixed: list[str] = []  # constructor arguments no spec can set (they keep their defaults)
        self.inplace = False  # the constructor takes `inplace` (always given False)
        self._cache: dict[Any, _Config] = {}
        self.params = self._model(params)

    # the parameter model, from the signature or from params=
    def _model(self, params: Any) -> type[OpParams]:
        name = self.name
        sig, hints = _signature(self.factory, name, self.qualname)
        arguments = sig.parameters if sig is not None else {}
        open_kwargs = any(p.kind is p.VAR_KEYWORD for p in arguments.values())
        fields: dict[str, Any] = {}
        for pname, p in arguments.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if pname in FROM_INPUT:
                self.inputs.append(pname)
            elif pname == "inplace":
                self.inplace = True
            elif pname in _PLACEMENT and p.default is not _EMPTY:
                continue
            elif params is None:
                if p.kind is p.POSITIONAL_ONLY:
                    if p.default is _EMPTY:
                        raise TypeError(f"op '{name}': {self.qualname} takes '{pname}' by position only; archspec passes "
                                        "parameters by keyword")
                    continue
                annotation = hints.get(pname, p.annotation)
                vt = _value_type(annotation, p.default)
                if vt is None:
                    if p.default is _EMPTY:
                        what = (f"its annotation {annotation!r} names something undefined" if isinstance(annotation, str)
                                else "it has no spec form")
                        raise TypeError(f"op '{name}': parameter '{pname}' of {self.qualname} has no default and {what} "
                                        f"(annotate it {_SUPPORTED})")
                    self.fixed.append(pname)
                    continue
                _check_default(name, pname, vt, p.default)
                fields[pname] = (Annotated[Any, vt], ... if p.default is _EMPTY else p.default)
        if params is None:
            model_fields = fields
        elif isinstance(params, type) and issubclass(params, OpParams):
            model_fields = None
        elif isinstance(params, collections.abc.Mapping):
            model_fields = {}
            for pname, given in params.items():
                tp, default = given if isinstance(given, tuple) else (given, _EMPTY)
                vt = _value_type(tp, default)
                if vt is None:
                    raise TypeError(f"op '{name}': parameter '{pname}' is given as {given!r}; give a type ({_SUPPORTED}), "
                                    "or a pair (type, default)")
                _check_default(name, pname, vt, default)
                model_fields[pname] = (Annotated[Any, vt], ... if default is _EMPTY else default)
        else:
            raise TypeError(f"op '{name}': params must be None, a mapping of names to types, or an OpParams model")
        names = list(params.model_fields) if model_fields is None else list(model_fields)
        for pname in names:
            if pname in _NODE_KEYS:
                raise TypeError(f"op '{name}': a parameter named '{pname}' would mean two things in a node (every node "
                                f"uses '{pname}' for itself); rename it")
            if pname in FROM_INPUT or pname == "inplace":
                raise TypeError(f"op '{name}': '{pname}' is filled from the input, or fixed, by archspec: it cannot be a "
                                "parameter")
            keyword = pname in arguments and arguments[pname].kind is not inspect.Parameter.POSITIONAL_ONLY
            if sig is not None and not open_kwargs and not keyword:
                raise TypeError(f"op '{name}': {self.qualname} takes no keyword argument '{pname}'")
        if sig is not None:
            given = set(names) | set(self.inputs) | {"inplace"}
            for pname, p in arguments.items():
                if p.default is _EMPTY and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and pname not in given:
                    raise TypeError(f"op '{name}': {self.qualname} needs '{pname}', which no parameter and no input gives")
        if model_fields is None:
            return params
        try:
            return create_model(camel_case(name, "Op") + "Params", __base__=OpParams, __module__=__name__, **model_fields)
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
        module, on_meta = self._construct(kwargs)
        self._refuse_stray_tensors(module)
        parameters = [n for n, _ in module.named_parameters(remove_duplicate=False)]
        params: dict[str, Shape] = {}
        buffers: dict[str, Shape] = {}
        for k, t in module.state_dict(keep_vars=True).items():
            (params if k in parameters else buffers)[k] = tuple(t.shape)
        names = parameters + [n for n, _ in module.named_buffers(remove_duplicate=False)]
        counted = 0
        if self.shape is None:
            out, counted = self._run(module if on_meta else module.to("meta"), in_shape)
        elif self.shape == "same":
            out = in_shape
        else:
            out = self._shape_of(in_shape, p)
        if self.macs is not None:
            counted = self.macs(in_shape, out, p)
            if isinstance(counted, bool) or not isinstance(counted, int) or counted < 0:
                raise TypeError(f"op '{self.name}': its macs function returned {counted!r}, not an integer >= 0")
        config = _Config(Inferred(out, params=params, buffers=buffers, macs=counted), names, on_meta)
        if key is not None:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = config
        return config

    def _construct(self, kwargs: dict[str, Any]) -> tuple[Any, bool]:
        import torch

        try:
            with torch.device("meta"):
                module = self.factory(**kwargs)
            on_meta = True
        except ShapeError:
            raise
        except Exception:  # perhaps it reads tensor values, which meta tensors lack: build it for real
            try:
                module = self._on_cpu(kwargs)
            except ShapeError:
                raise
            except Exception as e:
                settings = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no arguments"
                raise ShapeError(f"{self.name} cannot be built with {settings}: {_first_line(e)}") from None
            on_meta = False
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"op '{self.name}': {self.qualname}(...) returned {type(module).__name__}, not a torch.nn.Module")
        return module, on_meta

    def _on_cpu(self, kwargs: dict[str, Any]) -> Any:
        """The module built for real on the CPU, leaving the random number generator as it
        was (its draws are made when the model is filled, in order)."""
        import torch

        with torch.random.fork_rng(devices=[]), torch.device("cpu"):
            return self.factory(**kwargs)

    def _refuse_stray_tensors(self, module: Any) -> None:
        import torch

        for path, sub in module.named_modules():
            for attr, value in vars(sub).items():
                if isinstance(value, torch.Tensor):
                    where = f"{path}.{attr}" if path else attr
                    raise TypeError(f"op '{self.name}': {self.qualname} keeps a tensor in the plain attribute '{where}'; "
                                    "archspec cannot place or fill it: register it as a parameter or with "
                                    f"register_buffer('{attr}', ..., persistent=False)")

    def _run(self, module: Any, in_shape: Shape) -> tuple[Shape, int]:
        """The output shape per sample and the MACs per sample, from running ``module`` (on
        the meta device) on a batch of two."""
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        x = torch.empty((2, *in_shape), device="meta")
        try:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                y = module(x)
        except ShapeError:
            raise
        except Exception as e:
            meta = isinstance(e, NotImplementedError) or "meta" in str(e)
            raise ShapeError(
                f"{self.name} fails on its input, {rank_name(in_shape)}: {_first_line(e)}",
                hint=(f"its forward cannot run on the meta device, where archspec finds its output shape: register "
                      f"'{self.name}' with shape=..." if meta else None)) from None
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"op '{self.name}': the forward of {self.qualname} returns {type(y).__name__}; a user op "
                            "returns one tensor")
        if y.dim() == 0 or y.shape[0] != 2:
            raise TypeError(f"op '{self.name}': the forward of {self.qualname} does not keep the batch dimension first "
                            f"(a batch of 2 of {fmt_shape(in_shape)} gave {tuple(y.shape)})")
        out = tuple(int(d) for d in y.shape[1:])
        self._check_out(out, in_shape)
        return out, counter.get_total_flops() // 4  # a MAC is 2 FLOPs; a batch of 2

    def _shape_of(self, in_shape: Shape, p: Any) -> Shape:
        out = self.shape(in_shape, p)  # type: ignore[operator]
        if not isinstance(out, (tuple, list)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in out):
            raise TypeError(f"op '{self.name}': its shape function returned {out!r}, not a tuple of integers")
        out = tuple(out)
        self._check_out(out, in_shape)
        return out

    def _check_out(self, out: Shape, in_shape: Shape) -> None:
        if any(d < 1 for d in out):
            raise ShapeError(f"{self.name} would make an output of {fmt_shape(out)} from {rank_name(in_shape)}",
                             expected="an output of size 1 or more in every dimension")

    # the OpDef's entry points
    def infer(self, p: Any, shapes: list[Shape], names: list[str]) -> Inferred:
        return self.config(p, shapes[0]).inferred

    def build(self, p: Any, shapes: list[Shape], inplace: bool) -> Any:
        """The node's module (*lower* calls this on the meta device: nothing is allocated)."""
        config = self.config(p, shapes[0])
        kwargs = self.arguments(p, tuple(shapes[0]))
        if config.on_meta:
            return self.factory(**kwargs)
        return self._on_cpu(kwargs).to("meta")

    def defaults(self, p: Any, shapes: list[Shape]) -> dict[str, Any]:
        """Each tensor's start: copied from the module built for real, once per node."""
        fresh = _Fresh(self.factory, self.arguments(p, tuple(shapes[0])))
        return {name: _Part(fresh, name) for name in self.config(p, shapes[0]).names}


class _Fresh:
    """A node's module built for real on first use, for its tensors' starting values."""

    def __init__(self, factory: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        self.factory, self.kwargs = factory, kwargs
        self.tensors: dict[str, Any] | None = None

    def get(self, name: str) -> Any:
        if self.tensors is None:
            module = self.factory(**self.kwargs)
            self.tensors = {**dict(module.named_parameters(remove_duplicate=False)),
                            **dict(module.named_buffers(remove_duplicate=False))}
        return self.tensors[name]


@dataclass(frozen=True)
class _Part:
    """Fills one tensor from the node's freshly built module."""

    fresh: _Fresh
    name: str

    def __call__(self, tensor: Any) -> None:
        tensor.copy_(self.fresh.get(self.name))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
