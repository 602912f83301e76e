"""Weight initialisation from a spec's ``init:`` rules.

Each rule selects nodes by op (``ops: [conv2d, linear]``) and/or by dotted path with
shell wildcards (``paths: ["AuxLogits.fc"]``, ``"features.*.conv"``), and sets their
``weight`` and/or ``bias``: a number sets a constant, ``{fn: ..., ...}`` calls the
``torch.nn.init`` function of that name with those arguments. Rules apply in order, so a
later, narrower rule overrides an earlier, broader one. A tensor no rule touches keeps
PyTorch's default initialisation. A rule with ``paths`` that selects nothing is reported
as a :class:`SpecWarning` (it is usually a typo in a path); a rule by ``ops`` alone may
select nothing (a family's base spec initialises batch norm for its ``_bn`` variants).
"""

from __future__ import annotations

import fnmatch
import warnings
from typing import Any

import torch
from torch import nn

from ._errors import SpecSchemaError, SpecWarning
from ._ir import Graph, InitRule

__all__ = ["apply_init", "init_tensor"]


def init_tensor(tensor: torch.Tensor, spec: Any) -> None:
    """Fill ``tensor`` in place from a rule's value: a constant or ``{fn: ..., args}``."""
    with torch.no_grad():
        if not isinstance(spec, dict):
            tensor.fill_(float(spec))
            return
        args = {k: v for k, v in spec.items() if k != "fn"}
        fn = spec["fn"]
        if fn == "normal":
            nn.init.normal_(tensor, mean=args.get("mean", 0.0), std=args.get("std", 1.0))
        elif fn == "trunc_normal":
            nn.init.trunc_normal_(tensor, mean=args.get("mean", 0.0), std=args.get("std", 1.0),
                                  a=args.get("a", -2.0), b=args.get("b", 2.0))
        elif fn == "uniform":
            nn.init.uniform_(tensor, a=args.get("a", 0.0), b=args.get("b", 1.0))
        elif fn == "constant":
            nn.init.constant_(tensor, args["value"])
        elif fn == "zeros":
            nn.init.zeros_(tensor)
        elif fn == "ones":
            nn.init.ones_(tensor)
        elif fn in ("kaiming_normal", "kaiming_uniform"):
            init = nn.init.kaiming_normal_ if fn == "kaiming_normal" else nn.init.kaiming_uniform_
            init(tensor, a=args.get("a", 0.0), mode=args.get("mode", "fan_in"), nonlinearity=args.get("nonlinearity", "leaky_relu"))
        elif fn in ("xavier_normal", "xavier_uniform"):
            init = nn.init.xavier_normal_ if fn == "xavier_normal" else nn.init.xavier_uniform_
            init(tensor, gain=args.get("gain", 1.0))
        else:  # pragma: no cover - the schema admits only the names above
            raise ValueError(f"unknown init function {fn!r}")


def apply_init(model: nn.Module, graph: Graph) -> None:
    """Apply ``graph.init`` to the modules of ``model`` (built from ``graph``). A ``param``
    node is started by its own ``init`` when it is built, not here."""
    targets = [(p, graph.nodes[p]) for p in graph.order if not graph.nodes[p].implicit]
    for rule in graph.init:
        matched = 0
        for path, node in targets:
            if not rule.selects(node):
                continue
            try:
                module = model.get_submodule(path)
            except AttributeError:  # a param node: a tensor, not a module (its own `init` sets it)
                continue
            for name, spec in rule.tensors.items():
                tensor = getattr(module, name, None)
                if not isinstance(tensor, torch.Tensor):
                    continue
                try:
                    init_tensor(tensor, spec)
                except (ValueError, RuntimeError, OverflowError, ZeroDivisionError) as e:
                    fn = spec["fn"] if isinstance(spec, dict) else "constant"
                    raise SpecSchemaError(
                        f"cannot initialise '{node.display}.{name}' ({'x'.join(map(str, tensor.shape)) or 'scalar'}) "
                        f"with {fn}: {str(e).splitlines()[0]}",
                        rule.loc, node=f"init rule {rule.index + 1}",
                        hint="fan-based initialisers (kaiming_*, xavier_*) need weights of 2 or more dimensions; "
                             "select conv2d and linear nodes with 'ops'" if fn.startswith(("kaiming", "xavier")) else None,
                    ) from None
                if not tensor.is_meta and not bool(torch.isfinite(tensor).all()):
                    raise SpecSchemaError(
                        f"the rule makes '{node.display}.{name}' hold values beyond float32 (inf or nan)",
                        rule.loc, node=f"init rule {rule.index + 1}", expected="arguments whose values float32 can hold")
                matched += 1
        if matched == 0 and rule.paths and not _switched_off(rule, graph):
            what = " and ".join(filter(None, [
                f"ops {', '.join(rule.ops)}" if rule.ops else None,
                f"paths {', '.join(rule.paths)}" if rule.paths else None,
            ]))
            warnings.warn(SpecWarning(f"init rule {rule.index + 1} ({what}) sets no tensor: it selects no node with "
                                      f"{' or '.join(rule.tensors)}", rule.loc, f"init rule {rule.index + 1}"), stacklevel=3)


def _switched_off(rule: InitRule, graph: Graph) -> bool:
    """Whether the rule's paths point into parts switched off by ``when`` (not a typo)."""
    if not rule.paths:
        return False
    off = [p for p in graph.aliases] + [p for p, n in graph.nodes.items() if not n.enabled] + [
        p for p, c in graph.containers.items() if not c.enabled]
    return all(any(fnmatch.fnmatchcase(a, pattern) or pattern.startswith(a + ".") for a in off) for pattern in rule.paths)
