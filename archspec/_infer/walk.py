"""The shape walk: one node at a time, in order, from the declared input shape.

What it does: for each node, finds the nodes that really produce its inputs (a branch of a
``concat:``/``add:`` switched off drops out of the join, a param switched off out of an add
or mul), decides the `when`s of its enclosing containers and its own, finds the nodes it
reads only for their shape (``like:``, which must be switched on), evaluates its
deferred values, validates its parameters (a :class:`SpecSchemaError` at the value at
fault), checks what shape rules cannot see (learnable tensors reach only ops that
broadcast them, ops on the last dimension get no C x H x W image) and applies the op's
shape rule (a :class:`SpecShapeError` with the shapes involved); then records its shape,
layout (image, channels-last), tensors and counts on the node.

What it deliberately does not do: order the graph (:mod:`.order`) or check the graph as
a whole (:mod:`.checks`).
"""

from __future__ import annotations

from pydantic import ValidationError

from .. import ops
from .._errors import Loc, SpecLimitError, SpecReferenceError, SpecSchemaError, SpecShapeError
from .._ir import ABSENT, INPUT, Deferred, Node, NodeRole, display_path, site_notes
from ..ops import fmt_shape
from .refs import live
from .state import State
from .values import decide, realize

__all__ = ["walk_node"]


def _branches(state: State, node: Node) -> list[str]:
    """The inputs of a node whose values it reads; for the join of a ``concat:``/``add:``
    container, only the branches that are switched on (a branch switched off drops out of the join)."""
    if node.role is not NodeRole.JOIN or state.g.containers[node.parent or ""].kind not in ("concat", "add"):
        return node.data_inputs
    kept = [r for r in node.inputs if not state.switched_off(r)]
    if not kept:
        container = state.g.containers.get(node.parent or "")
        raise SpecShapeError(f"every branch of this {node.op} is switched off ('when' is false)", node.loc,
                             node=node.display, expected="at least one branch",
                             notes=[(state.g.nodes[r].loc if r in state.g.nodes else state.g.containers[r].loc,
                                     f"'{r}' is switched off") for r in node.inputs][:5]
                             + (site_notes(container.sites) if container else []))
    return kept


def walk_node(state: State, node: Node) -> None:
    """Infer ``node``: its sources, whether it is switched on, its parameters, shape, layout and costs."""
    g = state.g
    join = ops.REGISTRY[node.op].category == "join"
    sources = [live(state, r, node, absent_ok=join) for r in _branches(state, node)]
    if join:  # a switched-off param an add or mul reads is left out of it
        sources = [s for s in sources if s != ABSENT]
        if not sources:
            raise SpecReferenceError(f"every input of this {node.op} is switched off ('when' is false)", node.loc,
                                     node=node.display, expected="at least one input that is switched on",
                                     notes=site_notes(node.sites))
    if any(s in state.failed for s in sources):
        state.failed.add(node.path)
        return
    node.sources = sources
    node.in_shapes = [state.shape_of(s) for s in sources]
    shape = node.in_shapes[0] if node.in_shapes else None
    # enclosing containers switched off by a shape-dependent `when`
    parent = node.parent
    while parent is not None:
        c = g.containers[parent]
        if parent not in state.decided and isinstance(c.when, Deferred):
            state.decided.add(parent)
            c_shape = state.shape_of(live(state, c.input, node))
            if not decide(state, c.when, c_shape, parent, c.loc):
                state.disabled_containers.add(parent)
        if parent in state.disabled_containers:
            node.enabled = False
            return
        parent = c.parent
    if not decide(state, node.when, shape, node.display, node.loc):
        node.enabled = False
        return
    if node.shape_only:  # read once the node is known to be on: one off with what it reads is no error
        reads = shape_sources(state, node)
        if any(s in state.failed for s in reads):
            state.failed.add(node.path)
            return
        node.sources = sources + reads
        node.in_shapes += [state.shape_of(s) for s in reads]
    op = ops.REGISTRY[node.op]
    values = {}
    for name, value in node.params.items():
        values[name] = realize(state, value, shape, node.display)
    try:
        concrete = op.params.model_validate(values, context={"concrete": True})
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        name = err["loc"][0] if err["loc"] else None
        ctx = err.get("ctx") or {}
        message = f"'{name}': found {ctx['found']}{ctx.get('why', '')}" if "found" in ctx else err["msg"]
        source = node.params.get(name)
        hint = None
        if isinstance(source, Deferred):
            message += f", from '{source.expr.text.strip()}'"
            if "/" in source.expr.text and "//" not in source.expr.text and isinstance(values.get(name), float):
                hint = "'/' divides to a float; '//' divides to an integer"
        raise SpecSchemaError(message, node.param_locs.get(name, node.loc) if name else node.loc, node=node.display,
                              expected=ctx.get("expected"), hint=hint, notes=site_notes(node.sites)) from None
    _check_inputs(state, node, op)
    try:
        result = op.infer(concrete, node.in_shapes, [state.label(s) for s in node.sources])
    except ops.ShapeError as e:
        raise _shape_error(state, node, e) from None
    if any(d > state.limits.max_int for d in result.shape):
        raise SpecLimitError(f"the output shape {fmt_shape(result.shape)} has a dimension over {state.limits.max_int:.0e} "
                             "(Limits.max_int)", node.loc, node=node.display, notes=site_notes(node.sites))
    node.concrete = concrete
    node.shape = result.shape
    node.batched = not op.tensor
    # the layout, as its first input from the network has it (a learnable tensor first, as
    # in ConvNeXt's mul of its layer scale and the block, says nothing about it); a
    # permute [0, 2, 3, 1] of an image makes it channels-last, [0, 3, 1, 2] turns it back
    batched = [s for s in sources if state.batched(s)]
    rank3 = len(result.shape) == 3 and bool(batched)
    node.image = node.channels_last = False
    if op.layout == "same":
        node.image = rank3 and state.is_image(batched[0])
        node.channels_last = rank3 and state.is_channels_last(batched[0])
    elif op.layout == "dims" and rank3:
        dims = list(concrete.dims)
        node.channels_last = dims == [0, 2, 3, 1] and state.is_image(batched[0])
        node.image = dims == [0, 3, 1, 2] and state.is_channels_last(batched[0])
    else:
        node.image = op.layout == "image"
    node.tensors = {**result.params, **result.buffers}
    node.n_params, node.n_buffers, node.macs = result.n_params, result.n_buffers, result.macs
    node.dtypes, node.buffers, node.weight_bytes = dict(result.dtypes), tuple(result.buffers), result.n_bytes


def shape_sources(state: State, node: Node) -> list[str]:
    """The nodes that produce what ``node`` reads only for its shape (its op's ``refs``
    parameters, such as ``like: input``). One switched off (its ``when``, or its
    container's, is false) has no shape to give: a :class:`SpecReferenceError` at the
    parameter, not a stand-in (the shape of what it would have read is not what was asked)."""
    g = state.g
    keys = [k for k in ops.REGISTRY[node.op].refs if node.params.get(k) is not None]
    out = []
    for key, r in zip(keys, node.inputs[len(node.inputs) - node.shape_only:]):
        if r in g.aliases or state.switched_off(r):
            name = node.params[key]
            where = g.alias_locs.get(r) or (g.nodes[r].loc if r in g.nodes else g.containers[r].loc if r in g.containers else None)
            raise SpecReferenceError(
                f"'{key}' names '{name}', which is switched off ('when' is false), so it has no shape to read",
                node.param_locs.get(key, node.loc), node=node.display, expected="a node that is switched on",
                notes=[(where, f"'{display_path(r)}' is switched off")] + site_notes(node.sites),
                hint=f"name a node that is always on, or give this node the same 'when' as '{name}'")
        out.append(live(state, r, node))
    return out


def _check_inputs(state: State, node: Node, op: ops.OpDef) -> None:
    """What the shape rules cannot see: learnable tensors (no batch dimension) reach only
    ops that broadcast them, and ops on the last dimension do not get a C x H x W image."""
    g = state.g
    unbatched = [s for s in node.sources if not state.batched(s)]
    if unbatched:
        param = g.nodes[unbatched[0]]
        notes = [(param.loc, f"'{param.display}' is a learnable tensor of shape {fmt_shape(param.shape)}")]
        if not (op.broadcast or op.expands):
            takers = ", ".join(sorted(o.name for o in ops.REGISTRY.values() if o.broadcast or o.expands))
            raise SpecShapeError(f"{node.op} cannot read the learnable tensor '{param.display}': it has no batch dimension",
                                 node.loc, node=node.display,
                                 expected=f"an op that broadcasts or expands it over the batch ({takers})",
                                 notes=notes + site_notes(node.sites),
                                 hint="a param reads no input, and the node written after it reads it unless its 'from' "
                                      "names what it should read")
        batched = [s for s in node.sources if state.batched(s)]
        if not batched:
            raise SpecShapeError(f"{node.op} reads only learnable tensors, so its result has no batch dimension",
                                 node.loc, node=node.display, expected="at least one input that comes from the network input",
                                 notes=notes + site_notes(node.sites))
        rank = max(len(state.shape_of(s)) for s in batched)
        if len(param.shape) > rank:
            raise SpecShapeError(
                f"the learnable tensor '{param.display}' ({fmt_shape(param.shape)}) has more dimensions than a sample "
                f"({rank}); it would broadcast against the batch", node.loc, node=node.display,
                expected=f"a shape of at most {rank} dimensions, per sample (the batch is added by broadcasting)",
                notes=notes + site_notes(node.sites))
    if op.broadcast:
        ranks = {len(state.shape_of(s)) for s in node.sources if state.batched(s)}
        if len(ranks) > 1:
            listing = ", ".join(f"{state.label(s)} is {fmt_shape(state.shape_of(s))}" for s in node.sources if state.batched(s))
            raise SpecShapeError(
                f"cannot {node.op} inputs with different numbers of dimensions: {listing}", node.loc, node=node.display,
                expected="inputs of the same rank (torch aligns them from the last dimension, batch included)",
                hint="keep the dimensions with keepdim: true (mean) or reshape, so each input has the same rank",
                notes=site_notes(node.sites))
    if op.last_dim and node.sources and state.is_image(node.sources[0]) and len(node.in_shapes[0]) == 3:
        shape = node.in_shapes[0]
        alternative = op.image_hint or ("flatten it first ({op: flatten}, usually after a global pooling), or for a "
                                        "channels-last layer permute it ({op: permute, dims: [0, 2, 3, 1]})")
        raise SpecShapeError(
            f"{node.op} acts on the last dimension, but its input is an image {fmt_shape(shape)} (channels x height x "
            f"width), whose last dimension is its width", node.loc, node=node.display,
            expected="flat features, tokens (N x D) or a channels-last image (H x W x C)", hint=alternative,
            notes=[(None, f"its input is {fmt_shape(shape)}, for a network input of {fmt_shape(g.input_shape)}"),
                   *site_notes(node.sites)])


def label(state: State, source: str) -> str:
    return "the input" if source == INPUT else f"'{state.g.nodes[source].display}'"


def _shape_error(state: State, node: Node, e: ops.ShapeError) -> SpecShapeError:
    loc = node.param_locs.get(e.param) if e.param else None
    notes: list[tuple[Loc | None, str]] = []
    for i in e.inputs:
        s = node.sources[i]
        if s != INPUT:
            producer = state.g.nodes[s]
            notes.append((producer.loc, f"'{producer.display}' makes {fmt_shape(producer.shape)}"))
    shapes = ", ".join(fmt_shape(s) for s in node.in_shapes[:len(node.in_shapes) - node.shape_only])  # not a like's
    if not e.inputs and node.in_shapes:
        notes.append((None, f"its input is {shapes}, for a network input of {fmt_shape(state.g.input_shape)}"))
    notes.extend(site_notes(node.sites))
    hint = e.hint
    learned = [node.sources[i] for i in e.inputs if not state.batched(node.sources[i])]
    if learned and ops.REGISTRY[node.op].broadcast:  # the residual-sum hint would mislead
        param = state.g.nodes[learned[0]]
        others = {fmt_shape(state.shape_of(s)) for s in node.sources if state.batched(s)}
        hint = (f"'{param.display}' is a learnable tensor, sized by its own 'shape' ({fmt_shape(param.shape)} per "
                f"sample); it must broadcast against {' and '.join(sorted(others))} (a position embedding has one row "
                "per token)")
    return SpecShapeError(e.message, loc or node.loc, node=node.display, expected=e.expected, hint=hint, notes=notes)
