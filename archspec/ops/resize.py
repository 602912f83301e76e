"""Resizing and padding an image: ``interpolate`` and ``pad``.

Both are ``torch.nn.functional`` calls written into the generated forward
(``F.interpolate(x, size=[h, w], mode='bilinear')``, ``F.pad(x, [l, r, t, b])``): no
module, no tensors, no MACs. Each can take its size from another node, ``like: NODE``
(:attr:`~archspec.ops.OpDef.refs`): *resolve* finds the node as it finds a ``from:``
name, the static shape comes from that node's inferred shape, and the generated code
reads the size at run time (``y.size(-2)``, ``y.size(-1)``), so a compiled model is
right at input sizes other than the spec's ``input`` too.

What they deliberately do not do: resize anything but the last two dimensions (torch's
2-D modes), or ``lanczos`` (CPU only, newer torch).
"""

from __future__ import annotations

import math
import operator
from typing import Annotated, Any

from .._values import Bool, Choice, Float, IntSeq, NodeName, Scale, Size
from ._common import need_image, need_rank
from ._registry import Inferred, OpDef, OpParams, Shape, ShapeError, fmt_shape, register

_INTERPOLATING = ("bilinear", "bicubic")


class InterpolateParams(OpParams):
    """Resize an image to a size, by a scale factor or to another node's height and width.

    As ``torch.nn.functional.interpolate`` (and ``nn.Upsample``, which holds no tensors and
    differs in nothing a spec can see): to ``size`` (an integer or ``[height, width]``), by
    ``scale_factor`` (a number or a pair: the output is ``floor(size * scale)``, as torch
    computes it), or ``like: NODE``, to that node's height and width (``like: input``: back
    to the input's size, what a segmentation head does; read at run time, so other input
    sizes stay right); exactly one of the three. ``mode``: ``nearest`` (torch's default),
    ``nearest-exact``, ``bilinear``, ``bicubic`` or ``area``; ``align_corners`` only for
    ``bilinear`` and ``bicubic`` (torch refuses it otherwise), ``antialias`` too;
    ``recompute_scale_factor: true`` maps the output's pixels back by the ratio of the
    sizes rather than by the scale given, which differ where size x scale is not whole
    (5 x 1.5 gives 7 pixels, mapped by 7/5). Counted as 0 MACs, as torchvision's ``_ops``
    count it."""

    size: Annotated[Any, Size(nullable=True)] = None
    scale_factor: Annotated[Any, Scale(nullable=True)] = None
    like: Annotated[Any, NodeName()] = None
    mode: Annotated[Any, Choice("nearest", "nearest-exact", "bilinear", "bicubic", "area")] = "nearest"
    align_corners: Annotated[Any, Bool(nullable=True)] = None
    antialias: Annotated[Any, Bool()] = False
    recompute_scale_factor: Annotated[Any, Bool(nullable=True)] = None


def _one_of(p: Any, keys: tuple[str, ...], op: str, expected: str) -> str:
    """The one of ``keys`` that ``p`` gives; none or several is a ShapeError."""
    given = [k for k in keys if getattr(p, k) is not None]
    listed = ", ".join(f"'{k}'" for k in keys[:-1]) + f" or '{keys[-1]}'"
    if not given:
        raise ShapeError(f"{op} needs one of {listed}", expected=expected)
    if len(given) > 1:
        raise ShapeError(f"{op} has both '{given[0]}' and '{given[1]}'", param=given[1], expected=expected,
                         hint=f"leave out all but one of {listed}")
    return given[0]


def _like_size(shapes: list[Shape], names: list[str], op: str) -> tuple[int, int]:
    """The height and width of the node ``like`` names (the last two dimensions of its shape)."""
    target = shapes[1]
    if len(target) < 2:
        raise ShapeError(f"'like' names {names[1]}, which is {fmt_shape(target)}: it has no height and width to {op} to",
                         param="like", expected="a node whose output is an image (C x H x W)", inputs=[1])
    return target[-2], target[-1]


def _interpolate_shape(p: InterpolateParams, shapes: list[Shape], names: list[str]) -> Inferred:
    c, h, w = need_image(shapes, "interpolate")
    how = _one_of(p, ("size", "scale_factor", "like"), "interpolate",
                  "exactly one of size (the output's), scale_factor or like (a node whose height and width it takes)")
    if p.align_corners is not None and p.mode not in _INTERPOLATING:
        raise ShapeError(f"'align_corners' is only for the interpolating modes, but mode is '{p.mode}'", param="align_corners",
                         expected="mode bilinear or bicubic (torch refuses align_corners with the others)",
                         hint="leave align_corners out")
    if p.antialias and p.mode not in _INTERPOLATING:
        raise ShapeError(f"'antialias' is only for modes bilinear and bicubic, but mode is '{p.mode}'", param="antialias",
                         expected="mode bilinear or bicubic")
    if p.recompute_scale_factor and how != "scale_factor":
        raise ShapeError(f"'recompute_scale_factor' is only meaningful with 'scale_factor', not with '{how}'",
                         param="recompute_scale_factor", expected="scale_factor, or no recompute_scale_factor")
    if how == "size":
        oh, ow = p.size
    elif how == "like":
        oh, ow = _like_size(shapes, names, "interpolate")
    else:
        sh, sw = p.scale_factor
        oh, ow = math.floor(h * sh), math.floor(w * sw)  # in double precision, as torch computes it
        if oh < 1 or ow < 1:
            raise ShapeError(f"scale_factor {sh:g} x {sw:g} makes {h}x{w} into {oh}x{ow}", param="scale_factor",
                             expected="an output of at least 1x1 (torch refuses an empty one)")
    return Inferred((c, oh, ow))


def _like_sizes(graph, args: list, name: str) -> list:
    """The fx nodes of the height and width of ``like``'s value (its last two dimensions), at run time."""
    return [graph.create_node("call_method", "size", (args[1], d), name=f"{name}_{axis}")
            for d, axis in ((-2, "h"), (-1, "w"))]


def _interpolate_emit(graph, p: InterpolateParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    import torch.nn.functional as F

    kwargs: dict[str, Any] = {}
    if p.like is not None:
        kwargs["size"] = _like_sizes(graph, args, name)
    elif p.size is not None:
        kwargs["size"] = list(p.size)
    else:
        kwargs["scale_factor"] = list(p.scale_factor)
    kwargs["mode"] = p.mode
    if p.align_corners is not None:
        kwargs["align_corners"] = p.align_corners
    if p.recompute_scale_factor is not None:
        kwargs["recompute_scale_factor"] = p.recompute_scale_factor
    if p.antialias:
        kwargs["antialias"] = True
    return graph.create_node("call_function", F.interpolate, (args[0],), kwargs, name=name)


register(OpDef("interpolate", InterpolateParams, _interpolate_shape, InterpolateParams.__doc__ or "", emit=_interpolate_emit,
               refs=("like",), category="resize", layout="image"))


class PadParams(OpParams):
    """Pad (or crop) the last two dimensions, by amounts or to another node's height and width.

    As ``torch.nn.functional.pad``: by ``amounts`` (``[left, right, top, bottom]``, or one
    integer for all four; expressions see the input's shape, ``in_h`` and ``in_w``;
    negative ones crop, as torch's do), or ``like: NODE``, to that node's height and width:
    the difference, half before (left, top: ``diff // 2``) and the rest after, as the
    common U-Net pads its upsampled map to its skip's size (computed at run time too).
    ``mode``: ``constant`` (with ``value``, 0 by default), ``reflect``, ``replicate`` or
    ``circular``."""

    amounts: Annotated[Any, IntSeq(("left", "right", "top", "bottom"), nullable=True)] = None
    like: Annotated[Any, NodeName()] = None
    mode: Annotated[Any, Choice("constant", "reflect", "replicate", "circular")] = "constant"
    value: Annotated[Any, Float(nullable=True)] = None


def _pad_amounts(p: PadParams, shapes: list[Shape], names: list[str]) -> tuple[int, int, int, int]:
    """``[left, right, top, bottom]``: as given, or what reaches ``like``'s size."""
    if p.like is None:
        return p.amounts
    h, w = shapes[0][-2:]
    th, tw = _like_size(shapes, names, "pad")
    dh, dw = th - h, tw - w
    if dh < 0 or dw < 0:
        raise ShapeError(
            f"'like' names {names[1]}, {fmt_shape(shapes[1])}, which is smaller than this node's input, "
            f"{fmt_shape(shapes[0])}: padding cannot shrink it", param="like", inputs=[0, 1],
            expected=f"a node of height and width at least {h}x{w}",
            hint=f"resize this node's input instead ({{op: interpolate, like: {p.like}}}), or crop it with negative 'amounts'")
    if dh >= h or dw >= w:  # padded to at least twice its size: mostly zeros (a skip from another level)
        raise ShapeError(
            f"'like' names {names[1]}, {fmt_shape(shapes[1])}, at least twice this node's input, {fmt_shape(shapes[0])}: "
            f"padding would make {100 - 100 * h * w // (th * tw)} % of the map zeros", param="like", inputs=[0, 1],
            expected=f"a node a little larger than {h}x{w} (padding evens out a size that rounding changed)",
            hint="a skip from another level? check which node the 'from' or 'like' names; to change the resolution, "
                 f"resize ({{op: interpolate, like: {p.like}}})")
    return dw // 2, dw - dw // 2, dh // 2, dh - dh // 2


def _pad_shape(p: PadParams, shapes: list[Shape], names: list[str]) -> Inferred:
    constant = p.mode == "constant"
    shape = need_rank(shapes, "pad", 2, None if constant else 3)
    _one_of(p, ("amounts", "like"), "pad", "exactly one of amounts ([left, right, top, bottom]) or like (a node to pad to)")
    if p.value is not None and not constant:
        raise ShapeError(f"'value' is for mode constant, but mode is '{p.mode}'", param="value",
                         expected="no value (torch refuses one with this mode)")
    left, right, top, bottom = _pad_amounts(p, shapes, names)
    h, w = shape[-2:]
    where = "like" if p.like is not None else "amounts"
    if p.mode in ("reflect", "circular"):
        for size, before, after, dim in ((w, left, right, "width"), (h, top, bottom, "height")):
            if max(before, after) >= size + (p.mode == "circular"):
                bound = "smaller than" if p.mode == "reflect" else "at most"
                raise ShapeError(f"{p.mode} padding of {max(before, after)} on a {dim} of {size}", param=where,
                                 expected=f"padding {bound} the input's {dim} ({size}), as torch's {p.mode} padding needs",
                                 hint="pad in mode replicate or constant, or pad less")
    for size, before, after, dim in ((w, left, right, "width"), (h, top, bottom, "height")):
        cropped = -min(before, 0) - min(after, 0)
        if cropped > size and constant:  # torch crops the input first
            raise ShapeError(f"negative padding crops {cropped} from a {dim} of {size}", param=where,
                             expected=f"negative amounts that crop at most the input's {dim} ({size})")
    oh, ow = h + top + bottom, w + left + right
    if oh < 1 or ow < 1:
        raise ShapeError(f"padding {[left, right, top, bottom]} makes {h}x{w} into {oh}x{ow}", param=where,
                         expected="an output of at least 1x1")
    return Inferred((*shape[:-2], oh, ow))


def _pad_emit(graph, p: PadParams, args: list, name: str, inplace: bool, shapes: list[Shape]):
    import torch.nn.functional as F

    if p.like is None:
        amounts: list = list(p.amounts)
    else:  # the differences, from both sizes at run time: diff // 2 before, the rest after
        amounts = []
        for d, axis in ((-1, "w"), (-2, "h")):
            want = graph.create_node("call_method", "size", (args[1], d), name=f"{name}_{axis}")
            have = graph.create_node("call_method", "size", (args[0], d), name=f"{name}_in_{axis}")
            diff = graph.create_node("call_function", operator.sub, (want, have), name=f"{name}_d{axis}")
            before = graph.create_node("call_function", operator.floordiv, (diff, 2), name=f"{name}_d{axis}_before")
            amounts += [before, graph.create_node("call_function", operator.sub, (diff, before), name=f"{name}_d{axis}_after")]
    kwargs: dict[str, Any] = {"mode": p.mode}
    if p.value is not None:
        kwargs["value"] = p.value
    return graph.create_node("call_function", F.pad, (args[0], amounts), kwargs, name=name)


register(OpDef("pad", PadParams, _pad_shape, PadParams.__doc__ or "", emit=_pad_emit, refs=("like",), category="resize"))
