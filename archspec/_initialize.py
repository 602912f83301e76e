"""Filling a compiled model's tensors, once each: the spec's ``init:`` rules and the ops' defaults.

*lower* builds the module tree on the meta device (no memory, no filling), then
:func:`materialize` gives every tensor its memory and its starting value in one pass, in
``state_dict`` order:

- from the last ``init:`` rule that sets it: a rule selects nodes by op
  (``ops: [conv2d, linear]``) and/or by dotted path with shell wildcards
  (``paths: ["AuxLogits.fc"]``, ``"features.*.conv"``), and sets their ``weight`` and/or
  ``bias``: a number sets a constant, ``{fn: ..., ...}`` calls the ``torch.nn.init``
  function of that name with those arguments (a node whose module holds linear layers of
  its own, ``window_attention``'s ``qkv``, ``proj`` and ``cpb_mlp``, has their weights and
  biases set by ``weight`` and ``bias``). Rules apply in order, so a later, narrower
  rule overrides an earlier, broader one (only the last one is drawn);
- otherwise from the op's default (:attr:`archspec.ops.OpDef.defaults`), which is
  PyTorch's own start for that module, draw for draw: a network without ``init:`` rules
  gets, for the same ``torch.manual_seed``, the very weights its modules' constructors
  would make; a ``param`` node starts from its own ``init``. A default may also be a
  callable that fills the tensor it is given, for tensors computed from the op's settings
  (Swin's relative position index and coordinates table: :class:`archspec.ops.window.Computed`).

A rule with ``paths`` that selects nothing is reported as a :class:`SpecWarning` (it is
usually a typo in a path); a rule by ``ops`` alone may select nothing (a family's base spec
initialises batch norm for its ``_bn`` variants). Whether an initialiser fits its tensor
(fans need 2 dimensions, values must fit float32) is checked statically by *infer*.
"""

from __future__ import annotations

import fnmatch
import warnings
from typing import Any

import torch
from torch import nn

from . import ops
from ._errors import SpecWarning
from ._ir import Graph, InitRule
from ._init_fns import init_args

__all__ = ["init_plan", "init_tensor", "materialize"]


def init_tensor(tensor: torch.Tensor, spec: Any) -> None:
    """Fill ``tensor`` in place from an initialiser: a constant or ``{fn: ..., args}``, or,
    as an op's default only, a callable that fills the tensor it is given (a start computed
    from the op's settings, not drawn: Swin's relative position index)."""
    with torch.no_grad():
        if callable(spec):
            spec(tensor)
            return
        if not isinstance(spec, dict):
            tensor.fill_(spec)
            return
        args = init_args(spec)  # with torch's defaults: those the static checks assumed
        fn = spec["fn"]
        if fn == "normal":
            nn.init.normal_(tensor, mean=args["mean"], std=args["std"])
        elif fn == "trunc_normal":
            nn.init.trunc_normal_(tensor, mean=args["mean"], std=args["std"], a=args["a"], b=args["b"])
        elif fn == "uniform":
            nn.init.uniform_(tensor, a=args["a"], b=args["b"])
        elif fn == "constant":
            nn.init.constant_(tensor, args["value"])
        elif fn == "zeros":
            nn.init.zeros_(tensor)
        elif fn == "ones":
            nn.init.ones_(tensor)
        elif fn in ("kaiming_normal", "kaiming_uniform"):
            init = nn.init.kaiming_normal_ if fn == "kaiming_normal" else nn.init.kaiming_uniform_
            init(tensor, a=args["a"], mode=args["mode"], nonlinearity=args["nonlinearity"])
        elif fn in ("xavier_normal", "xavier_uniform"):
            init = nn.init.xavier_normal_ if fn == "xavier_normal" else nn.init.xavier_uniform_
            init(tensor, gain=args["gain"])
        else:  # pragma: no cover - the schema admits only the names above
            raise ValueError(f"unknown init function {fn!r}")


def init_plan(graph: Graph, rules: bool = True) -> dict[str, Any]:
    """Each ``state_dict`` key's initialiser: the last ``init:`` rule that sets it (with
    ``rules``), else its op's default. Keys of ops without defaults are left out (their
    module's ``reset_parameters`` fills them). Warns about path rules that select nothing."""
    plan: dict[str, Any] = {}
    for p in graph.order:
        node = graph.nodes[p]
        if node.implicit:
            continue
        op = ops.REGISTRY[node.op]
        if op.defaults is not None and (node.tensors or op.origin is not None):
            defaults = op.defaults(node.concrete, list(node.in_shapes))
            for name in node.tensors:
                plan[f"{p}.{name}" if name else p] = defaults[name]
            if op.origin is not None:  # a user op's module may hold buffers outside its state_dict
                for name, start in defaults.items():
                    plan.setdefault(f"{p}.{name}", start)
    if rules:
        for rule in graph.init:
            matched = 0
            for p in graph.order:
                node = graph.nodes[p]
                if node.implicit or ops.REGISTRY[node.op].tensor or not rule.selects(node):
                    continue  # a param node is started by its own `init`
                for name, spec in rule.tensors.items():
                    for target in rule.targets(node, name):
                        plan[f"{p}.{target}"] = spec
                        matched += 1
            if matched == 0 and rule.paths and not _switched_off(rule, graph):
                what = " and ".join(filter(None, [
                    f"ops {', '.join(rule.ops)}" if rule.ops else None,
                    f"paths {', '.join(rule.paths)}" if rule.paths else None,
                ]))
                warnings.warn(SpecWarning(f"init rule {rule.index + 1} ({what}) sets no tensor: it selects no node with "
                                          f"{' or '.join(rule.tensors)}", rule.loc, f"init rule {rule.index + 1}"),
                              stacklevel=4)
    return plan


def materialize(model: nn.Module, plan: dict[str, Any], device: torch.device | str | None = None) -> None:
    """Give every meta tensor of ``model`` its memory on ``device`` (the default device when
    None) and its start from ``plan`` (:func:`init_plan`), once, in ``state_dict`` order.
    Tensors that already hold memory (loaded from a checkpoint) are left as they are."""
    for path, module in model.named_modules():
        prefix = f"{path}." if path else ""
        stores = (module._parameters, module._buffers)
        meta = [(store, name, t) for store in stores for name, t in store.items() if t is not None and t.is_meta]
        if not meta:
            continue
        if any(prefix + name not in plan for _, name, _ in meta):
            _reset_module(module, device, plan, prefix)
            continue
        for store, name, t in meta:
            new = torch.empty(t.shape, dtype=t.dtype, device=device)
            init_tensor(new, plan[prefix + name])
            store[name] = nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new


def _reset_module(module: nn.Module, device: torch.device | str | None, plan: dict[str, Any], prefix: str) -> None:
    """A module whose op has no defaults: its own ``reset_parameters``, then the rules that
    set its tensors; tensors it already held (loaded) are kept."""
    held = {name: t for store in (module._parameters, module._buffers) for name, t in store.items()
            if t is not None and not t.is_meta}
    module.to_empty(device=device, recurse=False)
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
    for store in (module._parameters, module._buffers):
        for name, t in store.items():
            if name in held:
                store[name] = held[name]
            elif t is not None and prefix + name in plan:
                init_tensor(t, plan[prefix + name])


def _switched_off(rule: InitRule, graph: Graph) -> bool:
    """Whether the rule's paths point into parts switched off by ``when`` (not a typo)."""
    if not rule.paths:
        return False
    off = [p for p in graph.aliases] + [p for p, n in graph.nodes.items() if not n.enabled] + [
        p for p, c in graph.containers.items() if not c.enabled]
    return all(any(fnmatch.fnmatchcase(a, pattern) or pattern.startswith(a + ".") for a in off) for pattern in rule.paths)
