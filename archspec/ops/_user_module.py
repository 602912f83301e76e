"""A user op's module: built on the meta device (or the CPU), checked, and run once for its shape.

What it does: builds the factory's module on the meta device (no memory, no drawing), or,
when its constructor reads tensor values, once on the CPU without moving the random
number generator (:func:`construct`); refuses a module that keeps a tensor in a plain
attribute; runs it on a meta batch of two for its output shape and, with torch's FLOP
counter, its MACs (:func:`run_on_meta`); and fills a node's tensors from the module
built for real once per node (:class:`Fresh`, :class:`Part`). torch is imported only
inside these functions.

What it deliberately does not do: read parameters (:mod:`._user_params`) or cache
configurations (:class:`._user.UserOp` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._registry import Shape, ShapeError, fmt_shape, rank_name

__all__ = ["Fresh", "Part", "check_out", "construct", "on_cpu", "run_on_meta"]


def construct(factory: Callable[..., Any], kwargs: dict[str, Any], name: str, qualname: str) -> tuple[Any, bool]:
    """The module of the user op ``name`` for ``kwargs``, and whether it was built on the
    meta device; a shape error of the spec if it cannot be built at all."""
    import torch

    try:
        with torch.device("meta"):
            module = factory(**kwargs)
        on_meta = True
    except ShapeError:
        raise
    except Exception:  # perhaps it reads tensor values, which meta tensors lack: build it for real
        try:
            module = on_cpu(factory, kwargs)
        except ShapeError:
            raise
        except Exception as e:
            settings = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no arguments"
            raise ShapeError(f"{name} cannot be built with {settings}: {_first_line(e)}") from None
        on_meta = False
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"op '{name}': {qualname}(...) returned {type(module).__name__}, not a torch.nn.Module")
    _refuse_stray_tensors(module, name, qualname)
    return module, on_meta


def on_cpu(factory: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """The module built for real on the CPU, leaving the random number generator as it
    was (its draws are made when the model is filled, in order)."""
    import torch

    with torch.random.fork_rng(devices=[]), torch.device("cpu"):
        return factory(**kwargs)


def _refuse_stray_tensors(module: Any, name: str, qualname: str) -> None:
    import torch

    for path, sub in module.named_modules():
        for attr, value in vars(sub).items():
            if isinstance(value, torch.Tensor):
                where = f"{path}.{attr}" if path else attr
                raise TypeError(f"op '{name}': {qualname} keeps a tensor in the plain attribute '{where}'; "
                                "archspec cannot place or fill it: register it as a parameter or with "
                                f"register_buffer('{attr}', ..., persistent=False)")


def run_on_meta(module: Any, in_shape: Shape, name: str, qualname: str) -> tuple[Shape, int]:
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
            f"{name} fails on its input, {rank_name(in_shape)}: {_first_line(e)}",
            hint=(f"its forward cannot run on the meta device, where archspec finds its output shape: register "
                  f"'{name}' with shape=..." if meta else None)) from None
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"op '{name}': the forward of {qualname} returns {type(y).__name__}; a user op "
                        "returns one tensor")
    if y.dim() == 0 or y.shape[0] != 2:
        raise TypeError(f"op '{name}': the forward of {qualname} does not keep the batch dimension first "
                        f"(a batch of 2 of {fmt_shape(in_shape)} gave {tuple(y.shape)})")
    out = tuple(int(d) for d in y.shape[1:])
    check_out(out, in_shape, name)
    return out, counter.get_total_flops() // 4  # a MAC is 2 FLOPs; a batch of 2


def check_out(out: Shape, in_shape: Shape, name: str) -> None:
    """Refuse an output with a dimension under 1."""
    if any(d < 1 for d in out):
        raise ShapeError(f"{name} would make an output of {fmt_shape(out)} from {rank_name(in_shape)}",
                         expected="an output of size 1 or more in every dimension")


class Fresh:
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
class Part:
    """Fills one tensor from the node's freshly built module."""

    fresh: Fresh
    name: str

    def __call__(self, tensor: Any) -> None:
        tensor.copy_(self.fresh.get(self.name))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
