"""Export a compiled network for deployment: TorchScript, ONNX, ``torch.export`` or weights.

What it does:

- exports the *eval graph* only: a view of the model that shares its weights but holds
  only the modules the non-training outputs need (no auxiliary heads, no training-only
  weights), whose forward returns a tensor, or a plain tuple of the non-training outputs
  in the spec's order (no named tuple class that a loader would need archspec for);
- ``torchscript``: ``torch.jit.script`` of that view, saved with ``torch.jit.save``;
- ``onnx``: the ``torch.export``-based exporter (``torch.onnx.export(dynamo=True)``, which
  needs ``onnx`` and ``onnxscript``: the ``onnx`` extra), opset 18, input ``input``,
  outputs named after the spec's, the batch dimension dynamic, weights inside the file;
- ``exported``: ``torch.export.export`` of that view with a dynamic batch dimension,
  saved with ``torch.export.save`` (``torch.export.load(path).module()`` runs it);
- ``dynamic_size=True`` (``--dynamic-size``; ``onnx`` and ``exported`` only, and only for
  a ``C x H x W`` input): the height and width are dynamic too (``torch.export.Dim.DYNAMIC``:
  the smallest sizes are what the network's strides need, found by torch.export). A
  network whose forward ties the spatial size to a number (a ViT's position embedding, a
  flatten into a ``linear``, a ``reshape``) is refused with :class:`FixedSizeError`:
  torch.export turns that into an equality guard on the sizes that no larger size meets,
  and the ONNX file would not even check it. A rule that larger sizes meet too (a map
  pooled and upsampled back, added to itself: even sizes only) is exported: the
  ``exported`` program's module checks it, an ONNX runtime fails on a size that breaks it;
- ``state_dict``: ``torch.save(model.state_dict())``, *every* weight (training heads
  included), so that it loads strictly into ``compile_spec`` of the same spec;
- ``safetensors``: the same weights as a ``.safetensors`` file (the ``safetensors``
  extra): plain tensors and a JSON header, no pickle, readable by any framework; it loads
  into ``compile_spec(..., weights=...)`` like a ``.pth``;
- converts first and writes afterwards, through ``writer(path, fn)`` (``fn`` writes the
  content into the binary file object the writer gives it; the command line's writer,
  :func:`archspec._files.write_file`, writes a temporary file renamed into place), so a
  failed export leaves no file. Every format writes through that file object, never to a
  path of its own: a full disk is then an ``OSError`` the writer sees, not an abort inside
  a C++ serialiser.

What it deliberately does not do: the legacy TorchScript-based ONNX exporter (deprecated,
and it cannot export ``adaptive_avgpool2d`` to a size that does not divide its input),
ONNX files over 2 GB (they would need a side file of external weights), quantisation,
optimisation passes of its own, or checking the result with a runtime (the tests do).
The example input is batch 2, float32 (or the weights' dtype), zeros, on the weights'
device; the exported program accepts any batch size but only the spec's ``C, H, W``
unless ``dynamic_size`` (it reads the spec's size then too, at run time, so nothing in
between has to divide it: ``interpolate``/``pad`` with ``like:`` follow the input).
"""

from __future__ import annotations

import copy
import errno
import importlib
import re
import warnings
from collections.abc import Callable
from typing import BinaryIO

import torch
from torch import nn

from ._ir import Graph, needed
from ._module import ArchModule, pruned

__all__ = ["DYNAMIC_SIZE_FORMATS", "FORMATS", "FixedSizeError", "MissingExtraError", "dynamic_size_refusal",
           "export_model"]

FORMATS = ("torchscript", "onnx", "exported", "state_dict", "safetensors")
#: the formats whose spatial size is fixed unless ``dynamic_size`` (TorchScript takes any)
DYNAMIC_SIZE_FORMATS = ("onnx", "exported")

#: the ONNX opset: the lowest the torch.export-based exporter translates to without
#: version conversion; every op of the registry (LRN, pools with ceil_mode and
#: count_include_pad, ...) is in it
ONNX_OPSET = 18

Writer = Callable[[str, Callable[[BinaryIO], None]], None]


class MissingExtraError(OSError):
    """A format needs packages that are not installed (an optional extra).

    An ``OSError`` (``ENOENT``) so that the command line prints ``strerror`` as a one-line
    error; ``str(e)`` is the message alone.
    """

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOENT, message)

    def __str__(self) -> str:
        return self.strerror


class FixedSizeError(ValueError):
    """``dynamic_size`` for a network that takes only its spec's spatial size (or a
    format or an input shape it does not apply to); ``str(e)`` is the whole message."""


def export_model(model: ArchModule, graph: Graph, fmt: str, path: str, writer: Writer, *,
                 dynamic_size: bool = False) -> None:
    """Export ``model`` (compiled from ``graph``) in format ``fmt`` to ``path`` (see the module docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    if dynamic_size:
        _check_dynamic_size(fmt, graph)
    if fmt == "state_dict":
        state = model.state_dict()
        writer(path, lambda f: torch.save(state, f))
        return
    if fmt == "safetensors":
        _require_safetensors("writing")
        from safetensors.torch import save

        # one contiguous tensor per key, on the CPU (safetensors stores plain buffers)
        tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        writer(path, lambda f: f.write(save(tensors, metadata={"format": "pt", "archspec": graph.name})))
        return
    if fmt == "onnx":
        _require("onnx", "onnxscript")
    modes = [(m, m.training) for m in model.modules()]
    try:
        view = _eval_graph(model, graph)
        like = next((p for p in view.parameters() if p.is_floating_point()), torch.zeros(()))
        # batch 2: torch.export takes a batch of 1 for a constant
        example = torch.zeros(2, *graph.input_shape, dtype=like.dtype, device=like.device)
        save = _CONVERT[fmt](view, example, graph, dynamic_size)
    finally:
        for m, training in modes:  # the view shares the model's modules
            m.training = training
    writer(path, save)


def _eval_graph(model: ArchModule, graph: Graph) -> ArchModule:
    """A view of ``model`` (same weights, no copies) with only the eval graph's modules,
    in eval mode, whose forward is the generated eval forward."""
    view = copy.copy(model)  # a fresh instance of the generated class (see ArchModule.__reduce__)
    view._modules = pruned(model, set(needed(graph, training=False)))
    cls = type(view)
    view.__class__ = type(cls.__name__, (cls,), {"forward": cls._forward_eval, "__module__": cls.__module__})
    return view.eval()


def _torchscript(view: ArchModule, example: torch.Tensor, graph: Graph, dynamic_size: bool) -> Callable[[BinaryIO], None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", DeprecationWarning)
        scripted = torch.jit.script(view)

    def save(f: BinaryIO) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"`torch\.jit\.save` is deprecated", DeprecationWarning)
            torch.jit.save(scripted, f)  # a file object: serialised in memory, then written by Python

    return save


def dynamic_size_refusal(fmt: str) -> str | None:
    """Why ``dynamic_size`` does not apply to format ``fmt`` (``None`` where it does)."""
    if fmt in DYNAMIC_SIZE_FORMATS:
        return None
    why = "TorchScript takes any input size already" if fmt == "torchscript" else "weights have no input size"
    return f"--dynamic-size applies to the {' and '.join(DYNAMIC_SIZE_FORMATS)} formats, not {fmt} ({why})"


def _check_dynamic_size(fmt: str, graph: Graph) -> None:
    refusal = dynamic_size_refusal(fmt)
    if refusal:
        raise FixedSizeError(refusal)
    if len(graph.input_shape) != 3:
        shape = " x ".join(map(str, graph.input_shape))
        raise FixedSizeError(f"--dynamic-size makes an image's height and width dynamic: it needs a C x H x W input, "
                             f"and {graph.name}'s is {shape}")


def _dims(dynamic_size: bool) -> tuple[dict[int, object], ...]:
    dims: dict[int, object] = {0: torch.export.Dim("batch", min=1)}
    if dynamic_size:  # DYNAMIC: the bounds the strides need are torch.export's to find
        dims.update({2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC})
    return (dims,)


def _export(view: ArchModule, example: torch.Tensor, graph: Graph, dynamic_size: bool) -> torch.export.ExportedProgram:
    """``torch.export.export`` of the view; with ``dynamic_size``, refused where the network
    ties its spatial size to a number (an equality guard on the sizes, or a specialisation)."""
    if not dynamic_size:
        return torch.export.export(view, (example,), dynamic_shapes=_dims(False))
    from torch._dynamo.exc import UserError

    with warnings.catch_warnings():  # the symbolic-shape machinery's notes on sizes it reasons about
        warnings.simplefilter("ignore")
        try:
            program = torch.export.export(view, (example,), dynamic_shapes=_dims(True))
        except UserError as e:  # a size specialised to a constant
            found = re.search(r"size\(\)\[([23])\] as dynamic but your code specialized it to be a constant \((\d+)\)", str(e))
            raise _fixed(graph, f"its forward makes {'HW'[int(found[1]) - 2]} the constant {found[2]}" if found else "") from e
    # the guards torch.export checks on the inputs (torch 2.13 keeps them as Python source);
    # one that ties H or W to a number pins the size, one that holds at larger sizes too
    # ("even": W == 2*(W // 2)) is left to the program's own check
    guards = [g for g in getattr(program, "_guards_code", ()) if "==" in g and re.search(r"size\(\)\[[23]\]", g)]
    fixed = [g for g in guards if not any(_holds(g, example.shape, k) for k in (2, 3, 4))]
    if fixed:
        raise _fixed(graph, _readable(fixed[0]))
    return program


class _Sizes:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def size(self) -> tuple[int, ...]:
        return self.shape


def _holds(guard: str, shape: torch.Size, k: int) -> bool:
    """Whether ``guard`` holds for ``shape`` with its height and width times ``k`` (an
    expression it cannot evaluate does not hold)."""
    n, c, h, w = shape
    try:  # torch's own guard source, over plain ints: nothing else in scope
        return bool(eval(guard, {"__builtins__": {}, "max": max, "min": min}, {"L": {"x": _Sizes((n, c, k * h, k * w))}}))
    except Exception:
        return False


def _readable(guard: str) -> str:
    """A torch.export guard in the user's words: ``L['x'].size()[2]`` is H."""
    for dim, name in ((0, "N"), (1, "C"), (2, "H"), (3, "W")):
        guard = guard.replace(f"L['x'].size()[{dim}]", name)
    return f"its forward needs {guard}"


def _fixed(graph: Graph, why: str) -> FixedSizeError:
    size = " x ".join(map(str, graph.input_shape[1:]))
    return FixedSizeError(f"--dynamic-size: {graph.name}'s spatial size is fixed at {size}"
                          f"{f' ({why})' if why else ''}; export without --dynamic-size, at the size you deploy "
                          "(--input)")


def _exported(view: ArchModule, example: torch.Tensor, graph: Graph, dynamic_size: bool) -> Callable[[BinaryIO], None]:
    program = _export(view, example, graph, dynamic_size)
    return lambda f: torch.export.save(program, f)


def _onnx(view: ArchModule, example: torch.Tensor, graph: Graph, dynamic_size: bool) -> Callable[[BinaryIO], None]:
    size = sum(t.numel() * t.element_size() for t in [*view.parameters(), *view.buffers()])
    if size >= 2**31:
        raise ValueError(f"the eval graph's weights take {size / 2**30:.1f} GiB: too large for one ONNX file (2 GiB); "
                         "export 'exported' or 'torchscript' instead")
    outputs = [o.name for o in graph.outputs if not o.training_only]
    # with dynamic_size, exported here first, so that a fixed size is refused before the translation
    model = _export(view, example, graph, True) if dynamic_size else view
    with warnings.catch_warnings():  # torch's own pytree use inside the exporter, nothing the user can act on
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
        if dynamic_size:  # and the sympy notes on the symbolic sizes
            warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=ONNX_OPSET, input_names=["input"],
                                    output_names=outputs, dynamic_shapes=None if dynamic_size else _dims(False),
                                    verbose=False)
    # what program.save(path) writes (initializers inside, under 2 GB), as bytes into the file object
    return lambda f: f.write(program.model_proto.SerializeToString())


_CONVERT = {"torchscript": _torchscript, "exported": _exported, "onnx": _onnx}


def _require_safetensors(what: str) -> None:
    """The ``safetensors`` package, or a :class:`MissingExtraError` naming the extra."""
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        raise MissingExtraError(f"{what} .safetensors files needs the 'safetensors' package; install the 'safetensors' "
                                "extra: pip install -e \".[safetensors]\" (or pip install safetensors)") from None


def _require(*packages: str) -> None:
    missing = []
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(f"exporting to ONNX needs the packages {' and '.join(packages)} "
                                f"({', '.join(missing)} not installed); install the 'onnx' extra: pip install -e \".[onnx]\"")
