"""The entry point: :func:`resolve` checks its arguments and runs a :class:`Resolver`.

What it does: refuses invalid block names, override values over ``Limits.max_int`` and a
malformed ``input_shape``; applies the overrides; evaluates the spec's input shape (unless
one is given); builds one :class:`Context` and one :class:`Resolver` with everything they
need, walks the graph, resolves the outputs and init rules into a :class:`Graph`, and
warns about parameters that nothing uses.

What it deliberately does not do: any rule of the walk itself (the modules beside it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import SpecLimitError, SpecSchemaError
from .._ir import INPUT, Graph
from .._limits import DEFAULT_LIMITS, Limits
from .._load import Document
from .._schema import NAME_RE
from .._values import shown
from .bodies import Walker
from .context import Context, spec_input
from .init_rules import init_rules
from .outputs import declared_outputs, tap_outputs
from .overrides import apply_overrides, warn_unused_params
from .state import BodySite, Scope, State


class Resolver:
    """One walk of a spec: its graph, then its outputs and init rules, as a :class:`Graph`.

    ``taps``: node or block paths the network returns instead of the spec's outputs.
    """

    def __init__(self, ctx: Context, input_shape: tuple[int, ...], taps: list[str] | None = None) -> None:
        self.ctx = ctx
        self.input_shape = input_shape
        self.taps = taps
        self.state = State(ctx.limits)
        self.walker = Walker(ctx, self.state)

    def run(self) -> Graph:
        ctx, state, spec = self.ctx, self.state, self.ctx.spec
        env = dict(ctx.params)
        top, output = self.walker.body(spec.graph, BodySite(("graph",), None, INPUT, env, "seq", Scope()))
        if state.errors:  # a node that failed is missing: the outputs naming it would only blame the outputs
            state.raise_errors()
        outs = tap_outputs(ctx, state, self.taps) if self.taps is not None else declared_outputs(ctx, state, output)
        init = init_rules(ctx, env)
        if state.errors:
            state.raise_errors()
        return Graph(
            name=spec.name, description=spec.description, input_shape=self.input_shape, params=ctx.params,
            nodes=state.nodes, containers=state.containers, top=top, outputs=outs, init=init,
            aliases=state.aliases, source=ctx.doc.path, files=ctx.doc.files, taps=self.taps is not None,
            alias_locs=state.alias_locs, checkpoint_keys=[(r.match, r.replace) for r in spec.checkpoint_keys],
            off_joins=state.off_joins, renumbered=state.renumbered, returns=spec.returns,
            trunk=ctx.doc.trunk if ctx.doc.trunk in state.containers else None,
        )


def resolve(doc: Document, spec: Any, overrides: Mapping[str, Any] | None = None,
            input_shape: tuple[int, ...] | None = None, limits: Limits = DEFAULT_LIMITS,
            outputs: list[str] | None = None) -> Graph:
    """Resolve a validated spec into the IR graph (see the package docstring).

    ``outputs``: node or block paths whose values the network returns instead of the
    spec's outputs (as a dict, by path).
    """
    for name in spec.blocks:
        if not NAME_RE.fullmatch(name):
            raise SpecSchemaError(f"invalid block name {shown(name)}", doc.locs.key(("blocks", name)),
                                  expected="letters, digits and '_' only")
    for name, value in (overrides or {}).items():
        if any(isinstance(v, int) and abs(v) > limits.max_int for v in (value if isinstance(value, (list, tuple)) else [value])):
            raise SpecLimitError(f"parameter '{name}' set to {shown(value)}, over the limit of {limits.max_int:.0e} "
                                 "(Limits.max_int)", None)
    params = apply_overrides(doc, spec, overrides or {})
    if input_shape is not None and not (
            isinstance(input_shape, (tuple, list)) and 1 <= len(input_shape) <= 4
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= limits.max_int for d in input_shape)):
        raise SpecSchemaError(f"input_shape is {shown(list(input_shape) if isinstance(input_shape, tuple) else input_shape)}",
                              None, expected=f"1 to 4 positive integers up to {limits.max_int:.0e}: (channels, height, width), "
                                       "(tokens, features) or (features,)")
    # the spec's input is evaluated as it always was, before the overridden names are known to
    # the messages: an error in it notes a parameter from another file, not the override
    shape = tuple(input_shape) if input_shape is not None else spec_input(Context(doc, spec, params, limits))
    overridden = frozenset(str(name).partition(".")[0] for name in overrides or {})
    graph = Resolver(Context(doc, spec, params, limits, overridden), shape, outputs).run()
    warn_unused_params(doc, params, limits)
    return graph
