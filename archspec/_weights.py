"""Loading a checkpoint into a compiled spec, strictly or as far as it fits.

A checkpoint is a ``state_dict`` saved with ``torch.save``, or a dictionary holding one
under ``state_dict`` or ``model`` (the usual training-checkpoint layouts), or a
``.safetensors`` file (the ``safetensors`` extra; told by its header, whatever its name, or
by its name where it is no torch file, so that a damaged one is called that); a
``module.`` prefix left by ``DataParallel`` is removed. Files are read with
``torch.load(weights_only=True)`` or safetensors' own reader, so a checkpoint cannot run
code.

Keys the model lacks are renamed by the spec's ``checkpoint_keys`` rules first (the first
rule whose regular expression matches, applied with ``re.sub``), so a spec can read
checkpoints written for an older layout of its network: the DenseNet specs read
torchvision's published files, whose dense layers say ``norm.1`` for ``norm1``.

A ``BatchNorm`` counter (``num_batches_tracked``) that the checkpoint lacks keeps its
current value, as ``torch``'s own ``load_state_dict`` does for checkpoints saved before the
counter existed (torchvision's DenseNet files among them); the report lists it.

A checkpoint's tensor is cast to the model's dtype only where the cast keeps its values
(:func:`lossy`): complex values with an imaginary part into a real tensor, a finite value
that overflows the model's dtype, a value that is no integer (3.7, NaN) or out of range
into an integer buffer (``num_batches_tracked``) are not. Rounding to a narrower float
(float64 into float32) is a cast, not a loss. Casts of another kind (int, bool or complex
into float, float into int) are listed in the report. NaN and infinite values load (a
checkpoint may mean them; a diverged run saves them) but are counted, by key, in the
report and in a :class:`WeightsWarning`.

``strict=True`` (the default) refuses any difference with a :class:`WeightsError` that
lists what is missing, unexpected, of another shape or lossy. ``strict=False`` loads every
tensor whose key and shape match and whose cast is not lossy, leaves the rest as
initialised, and returns a :class:`LoadReport` (also logged on the ``archspec`` logger):
after changing ``num_classes``, for instance, it says that the classifier was skipped and
why.

A ``state_dict`` given in memory is read, never written: the model gets tensors of its
own (a copy where the cast to its device and dtype made none), so training it, or folding
batch norm into it, leaves the caller's tensors (and the model they belong to) as they
were. A file's tensors, which nothing else holds, are used as they are.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ._errors import WeightsError, WeightsWarning
from ._files import FileProblem, open_regular, shown_path
from ._ir import is_meta

__all__ = ["LoadReport", "WeightsError", "WeightsWarning", "load_weights", "lossy", "read_checkpoint"]

log = logging.getLogger("archspec")


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


@dataclass
class LoadReport:
    """What a (non-strict) load did: tensors loaded, missing, unexpected, of another shape."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, str, str]] = field(default_factory=list)  # key, checkpoint shape, model shape
    kept: list[str] = field(default_factory=list)  # BatchNorm counters the checkpoint lacks, left as they were
    renamed: list[tuple[str, str]] = field(default_factory=list)  # checkpoint key, the model's key it was read as
    lossy: list[tuple[str, str]] = field(default_factory=list)  # key, why its cast would change its values (not loaded)
    converted: list[tuple[str, str, str]] = field(default_factory=list)  # key, checkpoint dtype, model dtype (another kind)
    nonfinite: list[tuple[str, int, int, int]] = field(default_factory=list)  # key, NaN count, infinite count, size

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.lossy)

    def format(self, limit: int = 8, strict: bool = False) -> str:
        total = len(self.loaded) + len(self.missing) + len(self.mismatched) + len(self.kept) + len(self.lossy)
        lines = [f"loaded {len(self.loaded):,} of the model's {total:,} tensors from {self.source}"]

        def listing(title: str, items: list[str]) -> None:
            if items:
                lines.append(f"  {title} ({len(items):,}): " + ", ".join(items[:limit]) + (", ..." if len(items) > limit else ""))

        listing("renamed by the spec's checkpoint_keys rules", [f"{a} -> {b}" for a, b in self.renamed])
        listing("BatchNorm counters not in the checkpoint, kept as they were", self.kept)
        listing("cast to the model's dtype", [f"{k} ({a} -> {b})" for k, a, b in self.converted])
        listing("with NaN or infinite values (loaded as they are)", [_nonfinite(*n) for n in self.nonfinite])
        listing("values would change in the cast to the model's dtype" if strict else
                "skipped, values would change in the cast to the model's dtype (left as initialised)",
                [f"{k} ({why})" for k, why in self.lossy])

        listing("of another shape" if strict else "skipped, shape differs",
                [f"{k} (checkpoint {a}, model {b})" for k, a, b in self.mismatched])
        listing("missing from the checkpoint" if strict else "missing from the checkpoint (left as initialised)", self.missing)
        listing("in the checkpoint but not in the model" if strict else "in the checkpoint but not in the model (ignored)",
                self.unexpected)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _nonfinite(key: str, nan: int, inf: int, size: int) -> str:
    counts = [f"{n:,} {what}" for n, what in ((nan, "NaN"), (inf, "infinite")) if n]
    return f"{key} ({nan + inf:,} of {size:,} value{'s' if size != 1 else ''}: {', '.join(counts)})"


def _dtype(d: torch.dtype) -> str:
    return str(d).removeprefix("torch.")


def _kind(d: torch.dtype) -> str:
    return "bool" if d == torch.bool else "complex" if d.is_complex else "float" if d.is_floating_point else "int"


def _values(n: int) -> str:
    return f"{n:,} value{'s' if n != 1 else ''}"


def lossy(tensor: torch.Tensor, dtype: torch.dtype) -> str | None:
    """Why casting ``tensor`` to ``dtype`` would change its values (``None``: it would
    not, beyond the rounding of a narrower float). Reads ``tensor`` only: nothing is cast
    unless the dtypes differ."""
    src = tensor.dtype
    if src == dtype:
        return None
    if src.is_complex and not dtype.is_complex:
        if bool((tensor.imag != 0).any()):
            return f"{_dtype(src)} values into {_dtype(dtype)}: the imaginary part would be lost"
        tensor, src = tensor.real, tensor.real.dtype
    if dtype.is_floating_point or dtype.is_complex:
        if src != torch.bool:
            finite = torch.isfinite(tensor)
            over = int((finite & ~torch.isfinite(tensor.to(dtype))).sum())
            if over:
                big = float(tensor.abs()[finite].max())
                return (f"{_values(over)} overflow{'s' if over == 1 else ''} {_dtype(dtype)} (the largest is {big:.3g}; "
                        f"{_dtype(dtype)} holds up to {torch.finfo(dtype).max:.3g})")
        return None
    if dtype == torch.bool:
        bad = int(((tensor != 0) & (tensor != 1)).sum())
        return f"{_values(bad)} other than 0 and 1 into bool" if bad else None
    if src.is_floating_point:
        whole = torch.isfinite(tensor) & (tensor == tensor.trunc())
        if not bool(whole.all()):
            first = float(tensor[~whole].flatten()[0])
            n = int((~whole).sum())
            return f"{n:,} non-integer value{'s' if n != 1 else ''} into {_dtype(dtype)} (such as {first:g})"
    info = torch.iinfo(dtype)
    if src != torch.bool and tensor.numel() and (tensor.min() < info.min or tensor.max() > info.max):
        return f"values out of the range of {_dtype(dtype)} ({info.min:,} to {info.max:,})"
    return None


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The ``state_dict`` in a checkpoint file (see the module docstring for the layouts).

    Only a regular file is read (:func:`archspec._files.open_regular`: a FIFO or a device
    is refused, never waited on), with ``torch.load(weights_only=True)``. A file that holds
    Python objects besides tensors is refused with a message that says so and how to
    re-save the weights; torch's own advice to turn ``weights_only`` off (which would let
    the file run code) is never repeated."""
    try:
        f = open_regular(path, "weights file")
    except FileProblem as e:
        raise WeightsError(str(e)) from None
    with f:
        head = f.read(9)
        f.seek(0)
        if _is_safetensors(head, path):
            data = _read_safetensors(f, path, head)
        else:
            try:
                data = torch.load(f, map_location="cpu", weights_only=True)
            except Exception as e:  # torch raises many kinds for a file that is not a checkpoint
                raise _unreadable(path, e, head[:4]) from None
    if isinstance(data, nn.Module):  # pragma: no cover - weights_only refuses modules
        data = data.state_dict()
    if isinstance(data, Mapping):
        for key in ("state_dict", "model"):
            inner = data.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                data = inner
                break
    if (not isinstance(data, Mapping) or not data or not all(isinstance(v, torch.Tensor) for v in data.values())
            or not all(isinstance(k, str) for k in data)):
        raise WeightsError(
            f"'{shown_path(path)}' holds no state_dict: expected a mapping of names to tensors, or a checkpoint with one under "
            "'state_dict' or 'model'"
        )
    state = dict(data)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_safetensors(head: bytes, path: str | os.PathLike[str]) -> bool:
    """A safetensors file starts with its JSON header's length (8 bytes, little-endian)
    and the header's ``{``; a torch checkpoint is a zip (``PK``) or a pickle (``\\x80``).
    A file named ``.safetensors`` that is neither is a damaged safetensors file too."""
    if len(head) == 9 and head[8:9] == b"{":
        return True
    return os.fspath(path).lower().endswith(".safetensors") and not head.startswith((b"PK\x03\x04", b"\x80"))


def _read_safetensors(f, path: str | os.PathLike[str], head: bytes) -> dict[str, torch.Tensor]:
    damaged = f"'{shown_path(path)}' is a damaged .safetensors file"
    if len(head) < 9 or head[8:9] != b"{":
        raise WeightsError(f"{damaged}: it does not start as one does (8 bytes that give the length of its header, then "
                           f"the header's '{{'){'; it has only ' + _values(len(head)).replace('value', 'byte') if len(head) < 9 else ''}")
    length, rest = int.from_bytes(head[:8], "little"), os.fstat(f.fileno()).st_size - 8
    if not 2 <= length <= rest:  # a length read from bad bytes: said so, before anything is read
        raise WeightsError(f"{damaged}: its header length ({length:,} bytes, in its first 8 bytes) is "
                           + (f"more than the {rest:,} bytes that follow" if length > rest else
                              "less than the shortest header ('{}', 2 bytes)"))
    try:
        from safetensors.torch import load
    except ImportError:
        raise WeightsError(f"'{shown_path(path)}' is a .safetensors file; reading it needs the 'safetensors' package: install "
                           "the 'safetensors' extra (pip install -e \".[safetensors]\", or pip install safetensors)") from None
    try:
        return load(f.read())
    except Exception as e:  # a truncated or corrupt file
        raise WeightsError(f"'{shown_path(path)}' is not a readable .safetensors file: {str(e).strip() or type(e).__name__}") from None


def _unreadable(path: str | os.PathLike[str], e: Exception, head: bytes) -> WeightsError:
    """The error for a file ``torch.load`` refused: a file with Python objects (never with
    torch's advice to load it unsafely), or one that is not a checkpoint at all. An
    instruction the safe unpickler refuses means Python objects only in what ``torch.save``
    or ``pickle`` wrote (a zip archive, or a pickle's protocol mark); in other bytes (a text
    file, say) it means that the file is not a checkpoint."""
    text = str(e).strip()
    found = re.search(r"GLOBAL ([\w.]+)|Unsupported class ([\w.]+)|Unsupported operand (\d+)", text)
    if found and found.group(3) and not head.startswith((b"PK\x03\x04", b"\x80")):
        found = None
    if found and (isinstance(e, pickle.UnpicklingError) or "weights_only" in text):
        what = (f"the pickle names {found.group(1) or found.group(2)}" if not found.group(3) else
                f"the pickle uses instruction {found.group(3)}, which only Python objects need")
        return WeightsError(
            f"cannot read '{shown_path(path)}' safely: it holds Python objects besides tensors ({what}), which archspec will not "
            "unpickle (checkpoints are read with torch.load(weights_only=True), so that no file can run code); if the file "
            "is yours, re-save the weights alone, as a plain state_dict: torch.save(model.state_dict(), path)")
    # torch's text may advise loading with weights_only=False, which would let the file run code: never repeated
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line
             and "Weights only load failed" not in line]
    first = lines[0] if lines and not isinstance(e, pickle.UnpicklingError) else ""
    return WeightsError(f"cannot read '{shown_path(path)}': not a PyTorch checkpoint (a file written by torch.save), or a damaged one "
                        f"({type(e).__name__}{': ' + first if first else ''})")


def _renamed(state: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor], rules: list[tuple[str, str]],
             report: LoadReport) -> dict[str, torch.Tensor]:
    """``state`` with the keys the model lacks renamed by the first rule that matches them."""
    if not rules:
        return state
    compiled = [(re.compile(match), replace) for match, replace in rules]
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key not in own:
            for pattern, replace in compiled:
                if pattern.search(key):
                    new = pattern.sub(replace, key)
                    if new not in state and new not in out:  # a rename never overwrites another key
                        report.renamed.append((key, new))
                        key = new
                    break
        out[key] = tensor
    return out


def load_weights(model: nn.Module, path: str | os.PathLike[str] | Mapping[str, torch.Tensor], strict: bool = True,
                 device: torch.device | str | None = None) -> LoadReport:
    """Load ``path`` (a checkpoint file, or a ``state_dict`` itself) into ``model`` (see
    the module docstring); return the report.

    On a model built on the meta device (as ``compile_spec(weights=...)`` builds it), the
    checkpoint's tensors are put in place as they are, converted to the model's dtype and
    to ``device`` (nothing is filled first); the tensors it does not cover stay on the meta
    device, for the caller to initialise. On a model with memory, they are copied in."""
    own = model.state_dict(keep_vars=True)
    on_meta = any(t.is_meta for t in own.values())
    if is_meta(device):
        raise WeightsError("cannot load weights onto the 'meta' device (it holds no values); give a real device")
    if isinstance(path, Mapping):  # a state_dict in memory (another model's, for a variant)
        report, checkpoint = LoadReport("a state_dict"), dict(path)
    else:
        report, checkpoint = LoadReport(str(path)), read_checkpoint(path)
    info = getattr(model, "_archspec_info", None)  # a compiled spec's ModelInfo; other modules have no rules
    state = _renamed(checkpoint, own, info.checkpoint_keys if info is not None else [], report)
    fitting = {}
    for key, tensor in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != tensor.shape:
            report.mismatched.append((key, _shape(tensor), _shape(own[key])))
        else:
            fitting[key] = tensor
    _check_values(fitting, own, report)
    counters = {f"{name}.num_batches_tracked" if name else "num_batches_tracked"
                for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._NormBase)}
    report.kept = [k for k in own if k not in state and k in counters]
    report.missing = [k for k in own if k not in state and k not in counters]
    report.loaded = list(fitting)
    if strict and not report.complete:
        raise WeightsError(f"the weights in {report.source} do not fit the network (strict loading):\n"
                           + report.format(limit=5, strict=True).split("\n", 1)[1]
                           + "\n  hint: strict=False (--no-strict) loads what fits and reports the rest")
    if on_meta:
        model.load_state_dict(_placed(fitting, own, device, borrowed=isinstance(path, Mapping)), strict=False, assign=True)
    else:
        model.load_state_dict(fitting, strict=False)  # copied into the model's own tensors
    if report.nonfinite:
        warnings.warn(WeightsWarning(f"the weights in {report.source} hold NaN or infinite values (loaded as they are): "
                                     + ", ".join(_nonfinite(*n) for n in report.nonfinite[:5])
                                     + (", ..." if len(report.nonfinite) > 5 else "")), stacklevel=2)
    if not report.complete or report.nonfinite:
        log.warning("%s", report.format())
    return report


def _check_values(fitting: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor], report: LoadReport) -> None:
    """Take out of ``fitting`` the tensors whose cast to the model's dtype is lossy; note
    the casts of another kind and the tensors with NaN or infinite values in ``report``."""
    for key in list(fitting):
        tensor, dtype = fitting[key], own[key].dtype
        if tensor.dtype != dtype:
            why = lossy(tensor, dtype)
            if why is not None:
                report.lossy.append((key, why))
                del fitting[key]
                continue
            if _kind(tensor.dtype) != _kind(dtype):
                report.converted.append((key, _dtype(tensor.dtype), _dtype(dtype)))
            if tensor.is_complex() and not dtype.is_complex:
                fitting[key] = tensor.real  # its imaginary part is zero: torch's cast would warn that it is dropped
        # a NaN or an infinity makes the sum NaN or infinite: one pass, no mask, for the common case
        if (tensor.dtype.is_floating_point or tensor.dtype.is_complex) and not bool(torch.isfinite(tensor.sum())):
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):  # else only the sum overflowed
                nan = int(torch.isnan(tensor).sum())
                report.nonfinite.append((key, nan, int((~finite).sum()) - nan, tensor.numel()))


def _placed(state: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor],
            device: torch.device | str | None, borrowed: bool) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors as the model will hold them: its dtypes, on ``device``,
    each with memory of its own (two keys saved as views of one storage are not tied).
    ``borrowed`` tensors (the caller's) are copied wherever the cast made no copy."""
    target = torch.device(device) if device is not None else torch.get_default_device()
    seen: set[int] = set()
    out = {}
    for key, tensor in state.items():
        t = tensor.detach().to(device=target, dtype=own[key].dtype)
        storage = t.untyped_storage().data_ptr()
        if (storage in seen or t.data_ptr() != storage or t.untyped_storage().nbytes() != t.nbytes
                or borrowed and storage == tensor.untyped_storage().data_ptr()):
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out
