"""Tensor plumbing: ``flatten``, ``unflatten``, ``identity``, ``permute``, ``reshape``,
``chunk``, ``split``, ``select``, ``roll``, ``channel_shuffle``, ``pixel_shuffle``,
``pixel_unshuffle``, and ``param`` (a learnable tensor as a node).

Except for ``param``, ``channel_shuffle`` and the pixel shuffles (which copy: torch's
``channel_shuffle``, ``pixel_shuffle`` and ``pixel_unshuffle``, written into the forward)
they have no module and move no data: *lower*
writes them into the generated forward (``x.permute(0, 2, 3, 1)``,
``torch.chunk(x, 2, 1)[0]``), and their outputs are views of their inputs (``alias``).
Dimensions are counted as torch counts them, the batch being 0.
"""

from __future__ import annotations

import math
import operator
from typing import Annotated, Any
from .._init_fns import missing_fans

from .._values import Bool, Int, IntList, InitValue
from ._common import need_image, need_rank, same_shape, torch_dim
from ._registry import Inferred, OpDef, OpParams, Shape, ShapeError, fmt_shape, register


class FlattenParams(OpParams):
    """Flatten dimensions ``start_dim`` to ``end_dim`` (counted as in torch, with the batch
    as dimension 0), so the default turns C x H x W into C*H*W features."""

    start_dim: Annotated[Any, Int(ge=1)] = 1
    end_dim: Annotated[Any, Int()] = -1


def _flatten_shape(p: FlattenParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = shapes[0]
    rank = len(shape) + 1
    start, end = p.start_dim, p.end_dim if p.end_dim >= 0 else rank + p.end_dim
    if not 1 <= start <= end < rank:
        raise ShapeError(f"cannot flatten dimensions {p.start_dim}..{p.end_dim} of a {rank}-dimensional batch "
                         f"({fmt_shape(shape)} per sample)", param="start_dim")
    s, e = start - 1, end - 1
    return Inferred((*shape[:s], math.prod(shape[s:e + 1]), *shape[e + 1:]))


def _flatten_build(p: FlattenParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.Flatten(p.start_dim, p.end_dim)


register(OpDef("flatten", FlattenParams, _flatten_shape, FlattenParams.__doc__ or "", build=_flatten_build, alias=True,
               shapeless=True, category="reshape", layout="any"))


class IdentityParams(OpParams):
    """Passes its input through unchanged (a named placeholder)."""


def _identity_build(p: IdentityParams, shapes: list[Shape], inplace: bool):
    import torch.nn as nn

    return nn.Identity()


register(OpDef("identity", IdentityParams, same_shape, IdentityParams.__doc__ or "", build=_identity_build, alias=True, shapeless=True,
               category="reshape", passthrough_eval=True))


class PermuteParams(OpParams):
    """Reorder the dimensions, as ``x.permute(dims)``: ``dims`` names every dimension of the
    batch once, the batch (0) first. ``[0, 2, 3, 1]`` makes a C x H x W image channels-last
    (H x W x C), ``[0, 3, 1, 2]`` turns it back."""

    dims: Annotated[Any, IntList(ge=0, least=2)]


def _permute_shape(p: PermuteParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = shapes[0]
    full = len(shape) + 1
    dims = list(p.dims)
    if sorted(dims) != list(range(full)):
        raise ShapeError(f"'dims' {dims} is not an order of the {full} dimensions of a batch of {fmt_shape(shape)}",
                         param="dims", expected=f"each of 0..{full - 1} once, such as {[0, *range(2, full), 1]}")
    if dims[0] != 0:
        raise ShapeError(f"'dims' {dims} moves the batch dimension", param="dims", expected="0 first: the batch stays in front")
    return Inferred(tuple(shape[d - 1] for d in dims[1:]))


def _permute_emit(graph, p: PermuteParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    return graph.create_node("call_method", "permute", (args[0], *p.dims), name=name)


register(OpDef("permute", PermuteParams, _permute_shape, PermuteParams.__doc__ or "", emit=_permute_emit, alias=True,
               category="reshape", layout="dims"))


class ReshapeParams(OpParams):
    """Give each sample a new shape with the same number of elements, as
    ``x.reshape(batch, *shape)``; one entry may be -1 (inferred)."""

    shape: Annotated[Any, IntList(ge=-1)]


def _reshape_shape(p: ReshapeParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = shapes[0]
    size = math.prod(shape)
    target = list(p.shape)
    if target.count(-1) > 1:
        raise ShapeError(f"'shape' {target} has more than one -1", param="shape", expected="at most one -1 (inferred)")
    if 0 in target:
        raise ShapeError(f"'shape' {target} has a 0", param="shape", expected="positive sizes, or one -1")
    known = math.prod(d for d in target if d != -1)
    if -1 in target:
        if size % known:
            raise ShapeError(f"cannot reshape {fmt_shape(shape)} ({size:,} elements) to {target}: {known:,} does not divide it",
                             param="shape")
        target[target.index(-1)] = size // known
    elif known != size:
        raise ShapeError(f"cannot reshape {fmt_shape(shape)} ({size:,} elements) to {fmt_shape(target)} ({known:,})",
                         param="shape", expected=f"a shape of {size:,} elements")
    return Inferred(tuple(target))


def _reshape_emit(graph, p: ReshapeParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    batch = graph.create_node("call_method", "size", (args[0], 0), name=name + "_batch")
    return graph.create_node("call_method", "reshape", (args[0], batch, *p.shape), name=name)


register(OpDef("reshape", ReshapeParams, _reshape_shape, ReshapeParams.__doc__ or "", emit=_reshape_emit, alias=True,
               category="reshape", layout="any"))


class ChunkParams(OpParams):
    """Split ``dim`` (1: channels) into ``chunks`` equal parts (the last smaller, as
    ``torch.chunk``) and keep ``part`` (from 0): ShuffleNetV2's channel split is two nodes,
    ``{op: chunk, chunks: 2, part: 0}`` and ``part: 1``."""

    chunks: Annotated[Any, Int(ge=1)]
    part: Annotated[Any, Int(ge=0)]
    dim: Annotated[Any, Int()] = 1


def _chunk_sizes(size: int, chunks: int) -> list[int]:
    step = -(-size // chunks)
    return [min(step, size - start) for start in range(0, size, step)] if size else [0]


def _chunk_shape(p: ChunkParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = need_rank(shapes, "chunk", 1)
    axis = torch_dim(p.dim, len(shape), "chunk")
    sizes = _chunk_sizes(shape[axis], p.chunks)
    if p.part >= len(sizes):
        raise ShapeError(f"chunking {shape[axis]} into {p.chunks} makes {len(sizes)} parts ({sizes}); there is no part {p.part}",
                         param="part", expected=f"a part from 0 to {len(sizes) - 1}")
    return Inferred(shape[:axis] + (sizes[p.part],) + shape[axis + 1:])


def _chunk_emit(graph, p: ChunkParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    import torch

    parts = graph.create_node("call_function", torch.chunk, (args[0], p.chunks, p.dim), name=name + "_parts")
    return graph.create_node("call_function", operator.getitem, (parts, p.part), name=name)


register(OpDef("chunk", ChunkParams, _chunk_shape, ChunkParams.__doc__ or "", emit=_chunk_emit, alias=True,
               multi_view=True, category="reshape"))


class SplitParams(OpParams):
    """Split ``dim`` (1: channels) into parts of the given ``sizes`` (they must add up to
    the dimension) and keep ``part`` (from 0), as ``torch.split(x, sizes, dim)[part]``."""

    sizes: Annotated[Any, IntList(ge=1)]
    part: Annotated[Any, Int(ge=0)]
    dim: Annotated[Any, Int()] = 1


def _split_shape(p: SplitParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = need_rank(shapes, "split", 1)
    axis = torch_dim(p.dim, len(shape), "split")
    if sum(p.sizes) != shape[axis]:
        raise ShapeError(f"the sizes {list(p.sizes)} add up to {sum(p.sizes)}, but dimension {p.dim} is {shape[axis]}",
                         param="sizes", expected=f"sizes adding up to {shape[axis]}")
    if p.part >= len(p.sizes):
        raise ShapeError(f"there is no part {p.part} of {len(p.sizes)}", param="part",
                         expected=f"a part from 0 to {len(p.sizes) - 1}")
    return Inferred(shape[:axis] + (p.sizes[p.part],) + shape[axis + 1:])


def _split_emit(graph, p: SplitParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    import torch

    parts = graph.create_node("call_function", torch.split, (args[0], list(p.sizes), p.dim), name=name + "_parts")
    return graph.create_node("call_function", operator.getitem, (parts, p.part), name=name)


register(OpDef("split", SplitParams, _split_shape, SplitParams.__doc__ or "", emit=_split_emit, alias=True,
               multi_view=True, category="reshape"))


class UnflattenParams(OpParams):
    """Split dimension ``dim`` into ``sizes`` (their product must be its size; one may be
    -1), as ``torch.nn.Unflatten(dim, sizes)``: ``{op: unflatten, dim: 1, sizes: [14, 14]}``
    turns 196 tokens of a 14 x 14 grid back into rows and columns."""

    dim: Annotated[Any, Int()]
    sizes: Annotated[Any, IntList(ge=-1)]


def _unflatten_shape(p: UnflattenParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = need_rank(shapes, "unflatten", 1)
    axis = torch_dim(p.dim, len(shape), "unflatten")
    sizes = list(p.sizes)
    size = shape[axis]
    if sizes.count(-1) > 1 or 0 in sizes:
        raise ShapeError(f"'sizes' {sizes} has {'a 0' if 0 in sizes else 'more than one -1'}", param="sizes",
                         expected="positive sizes, at most one -1 (inferred)")
    known = math.prod(d for d in sizes if d != -1)
    if -1 in sizes and size % known == 0:
        sizes[sizes.index(-1)] = size // known
    if math.prod(sizes) != size or -1 in sizes:
        raise ShapeError(f"cannot unflatten dimension {p.dim} of {fmt_shape(shape)} ({size}) into {list(p.sizes)}", param="sizes",
                         expected=f"sizes whose product is {size}")
    return Inferred(shape[:axis] + tuple(sizes) + shape[axis + 1:])


def _unflatten_emit(graph, p: UnflattenParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    return graph.create_node("call_method", "unflatten", (args[0], p.dim, list(p.sizes)), name=name)


register(OpDef("unflatten", UnflattenParams, _unflatten_shape, UnflattenParams.__doc__ or "", emit=_unflatten_emit,
               alias=True, category="reshape", layout="any"))


class RollParams(OpParams):
    """Shift the entries of ``dims`` cyclically by ``shifts`` (one per dimension), as
    ``torch.roll(x, shifts, dims)``: Swin's shifted windows on a channels-last image are
    ``{op: roll, shifts: [-3, -3], dims: [1, 2]}``. The shape is unchanged."""

    shifts: Annotated[Any, IntList(least=1)]
    dims: Annotated[Any, IntList(least=1)]


def _roll_shape(p: RollParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = need_rank(shapes, "roll", 1)
    if len(p.shifts) != len(p.dims):
        raise ShapeError(f"{len(p.shifts)} shifts for {len(p.dims)} dims", param="shifts", expected="one shift per dimension")
    for d in p.dims:
        torch_dim(d, len(shape), "roll", "dims")
    return Inferred(shape)


def _roll_emit(graph, p: RollParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    import torch

    return graph.create_node("call_function", torch.roll, (args[0], list(p.shifts), list(p.dims)), name=name)


register(OpDef("roll", RollParams, _roll_shape, RollParams.__doc__ or "", emit=_roll_emit, category="reshape"))


class SelectParams(OpParams):
    """Keep entry ``at`` of dimension ``dim`` and drop that dimension, as
    ``x.select(dim, at)``: ViT's class token is ``{op: select, dim: 1, at: 0}``
    (``x[:, 0]``: the first token of each sample). A negative ``at`` counts from the end."""

    dim: Annotated[Any, Int()] = 1
    at: Annotated[Any, Int()]


def _select_shape(p: SelectParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = need_rank(shapes, "select", 2)
    axis = torch_dim(p.dim, len(shape), "select")
    if not -shape[axis] <= p.at < shape[axis]:
        raise ShapeError(f"index {p.at} is outside dimension {p.dim}, of size {shape[axis]} ({fmt_shape(shape)} per sample)",
                         param="at", expected=f"an index from 0 to {shape[axis] - 1} (or -{shape[axis]} to -1)")
    return Inferred(shape[:axis] + shape[axis + 1:])


def _select_emit(graph, p: SelectParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    return graph.create_node("call_method", "select", (args[0], p.dim, p.at), name=name)


register(OpDef("select", SelectParams, _select_shape, SelectParams.__doc__ or "", emit=_select_emit, alias=True,
               category="reshape", layout="any"))


class ChannelShuffleParams(OpParams):
    """Interleave the channels of ``groups`` groups (ShuffleNet): channel ``g * n + i``
    moves to ``i * groups + g``, as ``torch.nn.ChannelShuffle``."""

    groups: Annotated[Any, Int(ge=1)]


def _shuffle_shape(p: ChannelShuffleParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = need_rank(shapes, "channel_shuffle", 2)
    if shape[0] % p.groups:
        raise ShapeError(f"groups={p.groups} does not divide the {shape[0]} channels", param="groups",
                         expected=f"a divisor of {shape[0]}")
    return Inferred(shape)


def _shuffle_emit(graph, p: ChannelShuffleParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    import torch

    return graph.create_node("call_function", torch.channel_shuffle, (args[0], p.groups), name=name)


register(OpDef("channel_shuffle", ChannelShuffleParams, _shuffle_shape, ChannelShuffleParams.__doc__ or "",
               emit=_shuffle_emit, category="reshape"))


class PixelShuffleParams(OpParams):
    """Rearrange ``C*r*r x H x W`` into ``C x H*r x W*r`` (``r`` the ``upscale_factor``), as
    ``torch.pixel_shuffle``: sub-pixel upsampling after a convolution that makes ``r*r``
    times the channels."""

    upscale_factor: Annotated[Any, Int(ge=1)]


def _pixel_shuffle_shape(p: PixelShuffleParams, shapes: list[Shape], names: list[str]) -> Inferred:
    c, h, w = need_image(shapes, "pixel_shuffle")
    r = p.upscale_factor
    if c % (r * r):
        raise ShapeError(f"pixel_shuffle by {r} needs channels in multiples of {r}x{r}={r * r}, but its input has {c}",
                         param="upscale_factor", expected=f"an upscale_factor whose square divides {c}",
                         hint=f"make the layer before it give {r}x{r} channels for each channel pixel_shuffle gives out")
    return Inferred((c // (r * r), h * r, w * r))


def _pixel_shuffle_emit(graph, p: PixelShuffleParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    import torch

    return graph.create_node("call_function", torch.pixel_shuffle, (args[0], p.upscale_factor), name=name)


register(OpDef("pixel_shuffle", PixelShuffleParams, _pixel_shuffle_shape, PixelShuffleParams.__doc__ or "",
               emit=_pixel_shuffle_emit, category="reshape", layout="image"))


class PixelUnshuffleParams(OpParams):
    """Rearrange ``C x H x W`` into ``C*r*r x H/r x W/r`` (``r`` the ``downscale_factor``), as
    ``torch.pixel_unshuffle``, the inverse of ``pixel_shuffle``: a space-to-depth stem."""

    downscale_factor: Annotated[Any, Int(ge=1)]


def _pixel_unshuffle_shape(p: PixelUnshuffleParams, shapes: list[Shape], names: list[str]) -> Inferred:
    c, h, w = need_image(shapes, "pixel_unshuffle")
    r = p.downscale_factor
    for axis, size in (("height", h), ("width", w)):
        if size % r:
            raise ShapeError(f"pixel_unshuffle by {r} needs a {axis} that is a multiple of {r}, but its input is "
                             f"{fmt_shape(shapes[0])}", param="downscale_factor",
                             expected=f"a downscale_factor that divides the input's height {h} and width {w}")
    return Inferred((c * r * r, h // r, w // r))


def _pixel_unshuffle_emit(graph, p: PixelUnshuffleParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    import torch

    return graph.create_node("call_function", torch.pixel_unshuffle, (args[0], p.downscale_factor), name=name)


register(OpDef("pixel_unshuffle", PixelUnshuffleParams, _pixel_unshuffle_shape, PixelUnshuffleParams.__doc__ or "",
               emit=_pixel_unshuffle_emit, category="reshape", layout="image"))


class ParamParams(OpParams):
    """A learnable tensor of ``shape`` (no batch dimension), started by ``init`` (a number,
    or an initialiser such as ``{fn: trunc_normal, std: 0.02}``; default 0). It reads no
    input; ``mul`` and ``add`` broadcast it over the batch (ConvNeXt's layer scale,
    ``shape: [C, 1, 1]``), ``concat`` expands it over the batch (ViT's class token). Its
    ``state_dict`` key is the node's path itself, held by the enclosing block
    (``features.1.0.layer_scale``), as a ``torch.nn.Parameter`` attribute.
    ``batch: true`` makes the first entry of ``shape`` (which must be 1) the batch's: the
    tensor is stored as a batch of one, as torchvision stores ViT's class token
    (``shape: [1, 1, 768]``, one 1 x 768 token per sample) and position embedding."""

    shape: Annotated[Any, IntList(ge=1)]
    init: Annotated[Any, InitValue()] = 0.0
    batch: Annotated[Any, Bool()] = False


def _param_shape(p: ParamParams, shapes: list[Shape], names: list[str]) -> Inferred:
    shape = tuple(p.shape)
    fn = missing_fans(p.init, shape)
    if fn is not None:
        raise ShapeError(f"{fn} needs a tensor of 2 or more dimensions (it computes fans), but the shape is {fmt_shape(shape)}",
                         param="init", expected="normal, trunc_normal, uniform or a constant for a vector")
    if p.batch and (len(shape) < 2 or shape[0] != 1):
        raise ShapeError(f"with 'batch: true' the first entry of the shape is the batch's and must be 1, but the shape is "
                         f"{fmt_shape(shape)}", param="shape",
                         expected=f"[1, ...]: such as {[1, *shape]} (one {fmt_shape(shape)} per sample)")
    return Inferred(shape[1:] if p.batch else shape, params={"": shape})


def _param_build(p: ParamParams, shapes: list[Shape], inplace: bool):
    import torch

    # built on the meta device; the compiled model fills it from its `init` (its default)
    return torch.nn.Parameter(torch.empty(tuple(p.shape)))


register(OpDef("param", ParamParams, _param_shape, ParamParams.__doc__ or "", build=_param_build, arity=(0, 0),
               category="param", tensor=True, layout="any",
               defaults=lambda p, shapes: {"": p.init}))
