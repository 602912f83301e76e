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
device; the exported program accepts any batch size but only the spec's ``C, H, W``.
"""

from __future__ import annotations

import copy
import errno
import importlib
import warnings
from collections.abc import Callable
from typing import BinaryIO

import torch
from torch import nn

from ._ir import Graph, needed
from ._module import ArchModule, pruned

__all__ = ["FORMATS", "MissingExtraError", "export_model"]

FORMATS = ("torchscript", "onnx", "exported", "state_dict", "safetensors")

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


def export_model(model: ArchModule, graph: Graph, fmt: str, path: str, writer: Writer) -> None:
    """Export ``model`` (compiled from ``graph``) in format ``fmt`` to ``path`` (see the module docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (expected one of: {', '.join(FORMATS)})")
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
        save = _CONVERT[fmt](view, example, graph)
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


def _torchscript(view: ArchModule, example: torch.Tensor, graph: Graph) -> Callable[[BinaryIO], None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", DeprecationWarning)
        scripted = torch.jit.script(view)

    def save(f: BinaryIO) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"`torch\.jit\.save` is deprecated", DeprecationWarning)
            torch.jit.save(scripted, f)  # a file object: serialised in memory, then written by Python

    return save


def _batch() -> tuple[dict[int, object], ...]:
    return ({0: torch.export.Dim("batch", min=1)},)


def _exported(view: ArchModule, example: torch.Tensor, graph: Graph) -> Callable[[BinaryIO], None]:
    program = torch.export.export(view, (example,), dynamic_shapes=_batch())
    return lambda f: torch.export.save(program, f)


def _onnx(view: ArchModule, example: torch.Tensor, graph: Graph) -> Callable[[BinaryIO], None]:
    size = sum(t.numel() * t.element_size() for t in [*view.parameters(), *view.buffers()])
    if size >= 2**31:
        raise ValueError(f"the eval graph's weights take {size / 2**30:.1f} GiB: too large for one ONNX file (2 GiB); "
                         "export 'exported' or 'torchscript' instead")
    outputs = [o.name for o in graph.outputs if not o.training_only]
    with warnings.catch_warnings():  # torch's own pytree use inside the exporter, nothing the user can act on
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
        program = torch.onnx.export(view, (example,), dynamo=True, opset_version=ONNX_OPSET, input_names=["input"],
                                    output_names=outputs, dynamic_shapes=_batch(), verbose=False)
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
