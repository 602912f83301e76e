"""Outputs: the values a network returns, from the spec's ``outputs`` or from taps.

What it does: resolves the spec's ``outputs`` (names, the nodes they read, ``loss_weight``
and ``training_only``), leaving out an output whose node is switched off; without
``outputs``, the last node of the graph; with taps (``outputs=[...]`` of compile_spec, a
feature extractor), the node and block paths asked for, checked against the graph.

What it deliberately does not do: look at shapes, or decide how outputs are returned
(lower does).
"""

from __future__ import annotations

import keyword

from .._errors import SpecReferenceError, SpecSchemaError, did_you_mean
from .._expr import is_expression
from .._ir import NodeRole, Output
from .._values import shown
from .context import Context
from .state import State


def _named(state: State, path: str) -> bool:
    """Whether ``path`` is a container or a node the spec names (not a join resolve made)."""
    return path in state.containers or (path in state.nodes and state.nodes[path].role is NodeRole.OP)


def tap_outputs(ctx: Context, state: State, taps: list[str]) -> list[Output]:
    """Outputs asked for by path (a feature extractor), checked against the graph."""
    candidates = [p for p in [*state.containers, *state.nodes] if _named(state, p)]
    if not taps:
        example = next((p for p in candidates if "." not in p), "a node path")
        raise SpecReferenceError("'outputs' is empty", None,
                                 expected=f"one or more node or block paths of {ctx.spec.name}, such as '{example}'")
    out = []
    for path in taps:
        if path in state.aliases or any(path.startswith(a + ".") for a in state.aliases):
            raise SpecReferenceError(f"the node '{path}' is switched off ('when' is false), so it has no value", None)
        if not _named(state, path):
            raise SpecReferenceError(
                f"outputs: '{path}' is not a node of {ctx.spec.name}", None,
                expected="node or block paths such as " + ", ".join(candidates[:3]),
                hint=did_you_mean(path, candidates), notes=[(ctx.loc(("graph",)), "the graph is defined here")],
            )
        out.append(Output(path, path, False, None))
    return out


def declared_outputs(ctx: Context, state: State, last: str) -> list[Output]:
    """The spec's declared outputs (``last``: the graph's last node, the output when none are)."""
    declared = ctx.spec.outputs
    if declared is None:
        return [Output("output", last, False, ctx.loc(("graph",)), implicit=True)]
    out: list[Output] = []
    for name, decl in declared.items():
        raw = ("outputs", name)
        if not name.isidentifier() or not name.isascii() or keyword.iskeyword(name) or name.startswith("_"):
            raise SpecSchemaError(f"invalid output name '{name}'", ctx.key_loc(raw), node=f"output {name}",
                                  expected="an ASCII Python identifier not starting with '_' (it becomes a named-tuple field)")
        weight = None
        if isinstance(decl, str):
            ref, training_only, ref_raw = decl, False, raw
        else:
            ref, training_only, ref_raw = decl.node, decl.training_only, raw + ("node",)
            if decl.loss_weight is not None:
                weight = ctx.value(decl.loss_weight, ctx.params, raw + ("loss_weight",), f"output {name}", structural=True)
                if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
                    raise SpecSchemaError(f"'loss_weight' is {shown(weight)}", ctx.loc(raw + ("loss_weight",)),
                                          node=f"output {name}", expected="a number >= 0")
                weight = float(weight)
            if is_expression(training_only):
                training_only = ctx.value(training_only, ctx.params, raw + ("training_only",), f"output {name}", structural=True)
                if not isinstance(training_only, bool):
                    raise SpecSchemaError(f"'training_only' is {shown(training_only)}", ctx.loc(raw + ("training_only",)),
                                          node=f"output {name}", expected="true or false")
        if ref in state.aliases or any(ref.startswith(a + ".") for a in state.aliases):
            continue  # its node is switched off: the output is left out
        if not _named(state, ref):
            candidates = [p for p in [*state.containers, *state.nodes] if _named(state, p)]
            raise SpecReferenceError(
                f"output '{name}' names '{ref}', which is not a node", ctx.loc(ref_raw), node=f"output {name}",
                expected="a node or block path such as " + ", ".join(candidates[-3:]),
                hint=did_you_mean(ref, candidates),
            )
        out.append(Output(name, ref, bool(training_only), ctx.loc(ref_raw), loss_weight=weight))
    if not out:
        what = "'outputs' is empty" if not declared else "every output is switched off"
        raise SpecSchemaError(what, ctx.loc(("outputs",)), expected="at least one output",
                              hint="leave 'outputs' out to return the last node" if not declared else None)
    if all(o.training_only for o in out):
        raise SpecSchemaError("every output is training_only", ctx.loc(("outputs",)),
                              expected="at least one output that eval mode returns")
    return out
