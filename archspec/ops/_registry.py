"""The op registry: one entry per op, carrying everything every stage needs to know.

An :class:`OpDef` holds the op's parameter model (a pydantic model whose fields are spec
value types, so the schema, the validator and the error messages all come from it), its
shape rule (input shapes to output shape, parameter, buffer and MAC counts), and how it is
lowered: either ``build`` (a ``torch.nn.Module`` placed in the module tree under the
node's name) or ``emit`` (a call written straight into the generated forward, for joins
such as ``concat`` and ``add``). Torch is imported only inside ``build``/``emit``, so the
registry costs nothing to the stages before *lower*.

Adding an op touches one place: define its params model, its shape rule and its builder,
and ``register`` the entry. The built-in ops are grouped by kind, one file each:
``conv.py`` (conv2d, conv_transpose2d, linear), ``norm.py`` (batch, frozen batch, layer,
group and local response norms), ``act.py`` (activations), ``pool.py`` (pooling and
means), ``drop.py`` (dropout, stochastic depth), ``tensor.py`` (flatten, permute, reshape,
chunk, channel and pixel shuffles, learnable tensors), ``joins.py`` (concat, add, mul),
``resize.py`` (interpolate, pad) and ``window.py`` (Swin's window attention and patch
merging).

Shapes are per sample, without the batch dimension: ``(C, H, W)`` for images,
``(N, D)`` for token sequences, ``(F,)`` for flat features. A learnable tensor (the
``param`` op) has no batch dimension at all: it is broadcast over the batch by the ops
that accept it (``broadcast``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from .._errors import did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    import torch  # noqa: F401  (named in the string annotations below)
    from torch import fx  # noqa: F401

__all__ = ["OpParams", "OpDef", "Inferred", "ShapeError", "Shape", "register", "unregister", "get", "join_for", "names", "version", "REGISTRY",
           "fmt_shape", "rank_name", "overview", "summary", "known", "LEARNED", "DEFAULT_DTYPE", "dtype_bytes", "fmt_bytes"]

Shape = tuple[int, ...]

#: the ``meta`` key of an fx node, given to ``emit``, whose value is a ``param`` node's tensor
LEARNED = "archspec_learned"


class OpParams(BaseModel):
    """Base of every op's parameter model."""

    # defer_build: a model's validator is built when it first validates, so importing the
    # registry does not build one for each of its ops (a spec uses a few of them)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, validate_default=True, defer_build=True)


class ShapeError(Exception):
    """Raised by a shape rule; *infer* turns it into a located :class:`SpecShapeError`.

    ``param`` names the parameter whose value is at fault (the error then points at that
    value in the YAML), ``inputs`` the indices of the inputs involved.
    """

    def __init__(self, message: str, *, param: str | None = None, expected: str | None = None,
                 hint: str | None = None, inputs: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.expected = expected
        self.hint = hint
        self.inputs = list(inputs)


#: the dtype of a tensor whose shape rule names none (what a module's parameters are made in)
DEFAULT_DTYPE = "float32"

_DTYPE_BYTES = {"float64": 8, "double": 8, "float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2,
                "complex128": 16, "complex64": 8, "complex32": 4, "int64": 8, "long": 8, "int32": 4, "int": 4,
                "int16": 2, "short": 2, "int8": 1, "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8, "bool": 1}


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a torch dtype named without ``torch.`` (``int64``: 8); a name the
    table lacks is sized by the bits it ends in (``float8_e4m3fn``: 1), else as float32."""
    if dtype in _DTYPE_BYTES:
        return _DTYPE_BYTES[dtype]
    bits = re.search(r"(\d+)", dtype)
    return max(1, int(bits.group(1)) // 8) if bits else 4


@dataclass(frozen=True)
class Inferred:
    """What a shape rule returns: the output shape, the tensors the op's module will hold
    (``params`` and ``buffers``: name to shape, in ``state_dict`` order), their dtypes where
    not float32 (``dtypes``: name to a torch dtype's name, ``"int64"`` for an index buffer)
    and its MACs."""

    shape: Shape
    params: dict[str, Shape] = field(default_factory=dict)
    buffers: dict[str, Shape] = field(default_factory=dict)
    macs: int = 0
    dtypes: dict[str, str] = field(default_factory=dict)

    @property
    def n_bytes(self) -> int:
        """The bytes of the module's tensors, each at its own dtype."""
        return sum(math.prod(s) * dtype_bytes(self.dtypes.get(k, DEFAULT_DTYPE))
                   for k, s in (*self.params.items(), *self.buffers.items()))

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.params.values())

    @property
    def n_buffers(self) -> int:
        return sum(math.prod(s) for s in self.buffers.values())


InferFn = Callable[[Any, list[Shape], list[str]], Inferred]
BuildFn = Callable[[Any, list[Shape], bool], "torch.nn.Module"]
EmitFn = Callable[["fx.Graph", Any, list["fx.Node"], str, bool, list[Shape]], "fx.Node"]


@dataclass(frozen=True)
class OpDef:
    """One op of the spec language.

    - ``name``: what ``op:`` says in a spec;
    - ``params``: the parameter model (fields are spec value types);
    - ``infer(params, in_shapes, in_names) -> Inferred``: the shape rule;
    - ``build(params, in_shapes, inplace) -> nn.Module``: for ops that live in the module
      tree, or ``emit(graph, params, args, name, inplace, in_shapes) -> fx.Node`` for ops
      written into the forward directly (an input whose fx node has ``meta[LEARNED]`` is a
      ``param`` node's learnable tensor, without a batch dimension);
    - ``arity``: (least, most) inputs, ``None`` for no upper bound (the ``from:`` inputs;
      ``refs`` reads are not counted);
    - ``refs``: the names of the parameters whose value names another node, read only for
      its shape (``like: input``, ``like: layer1``): *resolve* resolves each given one as it
      resolves a ``from:`` name (the same errors) and wires it as an extra input after the
      ``from:`` inputs, so ordering, cycles, ``when`` and the in-place plan see the read;
      ``infer`` gives the shape rule those shapes after the ``from:`` inputs' shapes (in
      the order of ``refs``, leaving out a parameter not given), ``emit`` their values
      after the ``from:`` inputs' values (the code reads their sizes at run time), and
      the parameter itself holds the name as written; a node records how many of its
      inputs are such reads (:attr:`archspec._ir.Node.shape_only`), which the feature-map
      finder does not count as reading a value;
    - ``alias``: the output may be the input tensor or a view of it (identity, flatten,
      dropout in eval), which matters when deciding where an in-place op is safe;
    - ``inplace``: the op can overwrite its (first) input; *infer* decides where it may;
    - ``inplace_refused(params)``: why these settings cannot run in place, or ``None``
      (torch has no in-place backward for a negative leaky_relu slope, say);
    - ``saves_output``: autograd keeps the op's output for its backward, so nothing may
      overwrite it in place;
    - ``multi_view``: the output is one of several views torch returns together (chunk,
      split), which autograd forbids writing into in place;
    - ``layout``: what the output is, for the checks of ops that act on the last
      dimension: ``"image"`` (a C x H x W image), ``"any"`` (a layout the op chose, such as
      a reshape's), ``"same"`` (as its first input), ``"dims"`` (its input's dimensions in
      the order of its ``dims`` parameter: a permute ``[0, 2, 3, 1]`` makes an image
      channels-last, ``[0, 3, 1, 2]`` turns it back);
    - ``last_dim``: the op acts on the last dimension (linear, layernorm), which on a
      C x H x W image is its width: such an input is refused, with ``image_hint`` (or a
      hint to flatten or permute it);
    - ``broadcast``: the op combines its inputs element-wise with broadcasting, so it
      may read learnable tensors (``param`` nodes), which have no batch dimension;
    - ``expands``: the op reads learnable tensors by expanding them over the batch (a
      ``concat`` of a class token and the image's tokens);
    - ``tensor``: the op *is* a learnable tensor: ``build`` returns an ``nn.Parameter``
      held by the enclosing container under the node's name, so its ``state_dict`` key is
      the node's path (``features.1.0.layer_scale``); ``Inferred.params`` has one entry,
      named ``""``.

    - ``defaults(params, in_shapes) -> {tensor name: initialiser}``: how each tensor the
      op's module holds starts when no ``init:`` rule sets it, written as an ``init:`` value
      (a number, or ``{fn: kaiming_uniform, a: 2.236}``) and equal to PyTorch's own
      ``reset_parameters`` for that module, draw for draw; a tensor computed from the op's
      settings rather than drawn (``window_attention``'s relative position index) has a
      callable that fills the tensor it is given (:class:`archspec.ops.window.Computed`). The compiled model builds its
      module tree on the meta device and fills each tensor once, from the last ``init:``
      rule that sets it or from this default. An op with tensors but no ``defaults`` is
      filled by its module's ``reset_parameters()`` (then by the rules that set it). A user
      op's default also names its module's tensors outside the ``state_dict``
      (non-persistent buffers), which are filled the same way.
    - ``shapeless``: the module ``build`` makes does not depend on the input shapes (an
      activation, a pooling window, dropout), so *lower* makes one for all the nodes of the
      same settings and copies it for the rest (:func:`archspec._lower._build_tree`);
    - ``passthrough_eval``: in eval mode the op returns its input itself (dropout,
      stochastic depth, identity): *optimize* drops it, the in-place plan looks through it,
      and it is never named as a feature map;
    - ``returns_view(in_shapes) -> bool``: whether the output, though the op's own, is a
      view of another tensor for these input shapes (torch's linear over more than one
      dimension returns a view of a 2-D product), which the in-place plan must not write into;
    - ``ends_trunk``: a cut between stages at this op ends the network's trunk (a pool to a
      fixed size, which starts the classifier head): no feature map is looked for past it;
    - ``classifier_dim``: the op may be the network's classifier (the eval graph's last such
      op, which a variant with another ``num_classes`` replaces), reading its features along
      this dimension of its per-sample input: ``-1`` for linear, ``0`` (channels) for conv2d;
    - ``folds_into``: ``(layer op, rank)``: a normalisation with running statistics that
      *optimize* folds into the layer before it, where that layer's output has this rank (a
      batchnorm1d folds into a linear of flat features, not of tokens); more layers may take
      it: those whose ``takes_fold`` names this op;
    - ``takes_fold``: ``{norm op: rank}``: the normalisations that fold into this layer's
      output where it has that rank, besides those whose ``folds_into`` names it (a
      ``conv_transpose2d`` takes a ``batchnorm2d``); with ``fold_dim``, the dimension of
      the layer's weight that holds its output channels (0 for a conv2d or linear, 1 for a
      transposed convolution, whose weight is ``in x out/groups x kH x kW``);
    - ``convolution``: the op's module is an ``nn.Conv2d``: *optimize* fuses activations and
      residual sums into it (:class:`archspec.layers.FusedConv2d`) and prefers channels-last
      memory order where more than one runs;
    - ``fused_postop``: an activation the convolution before it can apply in its own kernel
      (``optimize="inference"``): oneDNN's post-op that computes it and the post-op's
      scalars (relu6 is ``("hardtanh", (0.0, 6.0))``); :class:`archspec.layers.FusedConv2d`
      runs it, by oneDNN's name, with no knowledge of which op asked for it;
    - ``residual_sum``: an element-wise sum that the convolution giving one of its inputs may
      compute itself (a residual connection): true, or ``residual_sum(params) -> bool`` for an
      op whose settings decide (an ``add`` with a ``scale`` or a ``constant`` is not a plain
      sum); *optimize* asks :meth:`sums_residual`;
    - ``one_input_with``: parameters any of which, written, lets the op read a single input
      although ``arity`` asks for more (a constant to add or multiply in: ``{op: mul,
      constant: 0.5}``); without them the arity stands, with its message;
    - ``emit_shapeless``: what ``emit`` writes does not depend on the input shapes unless one
      of the inputs is a learnable tensor (a concat), so *codegen* writes one forward for
      blocks that differ only in their channels;
    - ``joins``: the container kinds (``concat:``, ``add:``, ``dense:``) whose implicit join
      node is this op, with ``join_params`` (name, value pairs) as that node's parameters;
    - ``passes_first_when_off``: a node of this op switched off by ``when`` stands for its
      first input only (a join left out passes its first input through); ``None`` (the
      default) means: where the op's category is ``join``; see :meth:`stands_for_when_off`;
    - ``glyph``: what a drawing shows for the op's implicit join node instead of its name
      (``+`` for add);
    - ``origin``: where a user op comes from (``None`` for the built-in ops): the Python
      module that registered it, or the package and entry point that provided it
      (:mod:`archspec.ops._user`); shown by ``archspec ops NAME``.

    The tensors a node's module holds (what ``init:`` rules may set, and the ``state_dict``
    keys) are what the shape rule returns in ``Inferred.params`` and ``Inferred.buffers``,
    and their dtypes what ``Inferred.dtypes`` names (float32 where it names none), which
    ``Limits.max_weight_bytes`` and the summary's weights count; a rule whose module makes a
    tensor in another dtype (an int64 index or counter) must name it.
    """

    name: str
    params: type[OpParams]
    infer: InferFn
    doc: str
    build: BuildFn | None = None
    emit: EmitFn | None = None
    arity: tuple[int, int | None] = (1, 1)
    refs: tuple[str, ...] = ()
    alias: bool = False
    inplace: bool = False
    inplace_refused: Callable[[Any], str | None] | None = None
    saves_output: bool = False
    multi_view: bool = False
    category: str = "layer"
    layout: str = "same"
    last_dim: bool = False
    image_hint: str | None = None
    broadcast: bool = False
    expands: bool = False
    tensor: bool = False
    defaults: Callable[[Any, list[Shape]], dict[str, Any]] | None = None
    shapeless: bool = False
    passthrough_eval: bool = False
    returns_view: Callable[[list[Shape]], bool] | None = None
    ends_trunk: bool = False
    classifier_dim: int | None = None
    folds_into: tuple[str, int] | None = None
    takes_fold: tuple[tuple[str, int], ...] = ()
    fold_dim: int = 0
    convolution: bool = False
    fused_postop: tuple[str, tuple[float, ...]] | None = None
    residual_sum: bool | Callable[[Any], bool] = False
    one_input_with: tuple[str, ...] = ()
    emit_shapeless: bool = False
    joins: tuple[str, ...] = ()
    join_params: tuple[tuple[str, Any], ...] = ()
    passes_first_when_off: bool | None = None
    glyph: str | None = None
    origin: str | None = None

    def __post_init__(self) -> None:
        if (self.build is None) == (self.emit is None):
            raise ValueError(f"op '{self.name}' needs exactly one of build or emit")
        if self.layout not in ("image", "any", "same", "dims"):
            raise ValueError(f"op '{self.name}': layout must be 'image', 'any', 'same' or 'dims'")
        missing = [r for r in self.refs if r not in self.params.model_fields]
        if missing:
            raise ValueError(f"op '{self.name}': refs names {missing}, which are not parameters of it")

    def sums_residual(self, params: Any) -> bool:
        """Whether a node of this op with these (concrete) parameters is a plain element-wise
        sum that a convolution may compute itself (``residual_sum``)."""
        return bool(self.residual_sum(params)) if callable(self.residual_sum) else self.residual_sum

    def returns_input(self, n_inputs: int, params: Any) -> bool:
        """Whether a node of this op reading ``n_inputs`` inputs, with these (concrete)
        parameters, returns its input itself or a view of it: an ``alias`` op, or a join of
        one input (a concat of one, an add whose other branch is switched off), unless a
        parameter of ``one_input_with`` is set away from its default (an ``add`` of a
        constant computes a tensor of its own)."""
        if self.alias:
            return True
        if self.category != "join" or n_inputs != 1:
            return False
        fields = self.params.model_fields
        return all(getattr(params, k, fields[k].default) == fields[k].default for k in self.one_input_with)

    def inputs(self) -> str:
        """What the op reads, for listings: ``one input``, ``2 or more inputs``."""
        least, most = self.arity
        text = {(0, 0): "no input", (1, 1): "one input"}.get(self.arity) or (
            f"{least} or more inputs" if most is None else f"{least} to {most} inputs")
        if self.one_input_with and least > 1:
            text += f", or one with {' or '.join(repr(p) for p in self.one_input_with)}"
        return text + "".join(f", and the node its '{r}' names, for its shape" for r in self.refs)

    def stands_for_when_off(self, inputs: list[str]) -> list[str]:
        """What a node of this op reading ``inputs`` stands for when ``when`` switches it off
        (its readers read that instead): nothing for an op that reads nothing (a param, which
        a join reading it then leaves out), the first input for an op that passes it (a
        join), else its inputs (one of them can stand in for it; more is an error where read)."""
        if self.arity[1] == 0:
            return []
        passes = self.passes_first_when_off
        if passes is None:  # not said: a join passes its first input (an op registered before the field existed too)
            passes = self.category == "join"
        return list(inputs[:1]) if passes else list(inputs)


REGISTRY: dict[str, OpDef] = {}
_VERSION = [0]


def register(op: OpDef) -> OpDef:
    """Add an op to the spec language (replacing one of the same name)."""
    REGISTRY[op.name] = op
    _VERSION[0] += 1
    return op


def unregister(name: str) -> OpDef | None:
    """Remove an op from the spec language (the one removed, or ``None``)."""
    op = REGISTRY.pop(name, None)
    if op is not None:
        _VERSION[0] += 1
    return op


def version() -> int:
    """Changes whenever an op is registered or removed (the schema is rebuilt from the registry then)."""
    return _VERSION[0]


def get(name: str) -> OpDef | None:
    return REGISTRY.get(name)


_JOINS: dict[str, tuple[str, tuple[tuple[str, Any], ...]]] = {}
_JOINS_AT = [-1]  # the registry version _JOINS was gathered at


def join_for(kind: str) -> tuple[str, dict[str, Any]]:
    """The op and the parameters of a container's implicit join: ``concat`` with dim 1
    for ``concat:`` and ``dense:``, ``add`` for ``add:`` (the ops that declare ``joins``)."""
    if _JOINS_AT[0] != _VERSION[0]:
        _JOINS.clear()
        for op in REGISTRY.values():
            for k in op.joins:
                _JOINS.setdefault(k, (op.name, op.join_params))
        _JOINS_AT[0] = _VERSION[0]
    if kind not in _JOINS:
        raise KeyError(f"no registered op joins a '{kind}' container")
    name, params = _JOINS[kind]
    return name, dict(params)


def names() -> list[str]:
    return sorted(REGISTRY)


_KINDS = {"layer": "layers", "norm": "normalisation", "activation": "activations", "pool": "pooling",
          "dropout": "regularisation", "reshape": "tensor plumbing", "param": "learnable tensors", "join": "joins", "resize": "resizing and padding",
          "user": "user ops"}


def summary(name: str) -> str:
    """The first sentence of an op's doc, as plain text (for listings)."""
    text = " ".join(REGISTRY[name].doc.replace("``", "").split())
    return re.split(r"(?<! al)\.(?: |$)", text, maxsplit=1)[0]


def known() -> str:
    """What an unknown op's message expects."""
    return f"one of the {len(REGISTRY)} ops ('archspec ops' lists them)"


def unknown_hint(name: str) -> str:
    """The hint for an op ``name`` that no op has (built in, registered, or from an installed
    package: callers look there first): the close names if any, else that none is close,
    and how to add an op. Shared by validate and ``archspec ops NAME``, so both say the same."""
    close = did_you_mean(name, REGISTRY)
    if close:
        return close
    return ("no op has that name or one close to it, built in or from an installed package; to add an op, register "
            "it with archspec.register_op (the manual's User ops page, docs/user-ops.md), or install the package that "
            "has it and name that package under 'requires:'")


def overview() -> str:
    """Every op, grouped by kind: ``conv2d, linear (layers); ...``."""
    groups: dict[str, list[str]] = {}
    for name in names():
        groups.setdefault(REGISTRY[name].category, []).append(name)
    order = [k for k in _KINDS if k in groups] + sorted(k for k in groups if k not in _KINDS)
    return "; ".join(f"{', '.join(groups[k])} ({_KINDS.get(k, k)})" for k in order)


def fmt_shape(shape: Sequence[int] | None) -> str:
    """``64x56x56`` for a per-sample shape (``?`` when unknown)."""
    if shape is None:
        return "?"
    return "x".join(str(d) for d in shape) if shape else "scalar"


def fmt_bytes(n: int) -> str:
    """``12.3 GB`` / ``4.5 MB`` / ``512 bytes``: a size for people (decimal units, as disks count)."""
    for unit, size in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def rank_name(shape: Sequence[int]) -> str:
    """What a per-sample shape is, for messages: ``an image 64x56x56``."""
    kind = {1: "flat features", 2: "tokens", 3: "an image"}.get(len(shape), f"a {len(shape)}-dimensional tensor")
    return f"{kind} {fmt_shape(shape)}"
