"""Stage 4, infer: static shapes, parameter, buffer and MAC counts, node by node.

What it does: orders the graph topologically (a cycle is an error that prints the
cycle), then walks it from the declared input shape: resolves each node's inputs to the
nodes that really produce them (a container stands for its output; a node switched off
stands for its input), evaluates the values left deferred by *resolve* (those using
``in_c``, ``in_h``, ``in_w``), validates the op's parameters, and applies the op's shape
rule. Shape problems become :class:`SpecShapeError` s located at the value at fault, with
the shapes involved; independent problems are reported together. It also finds nodes
that feed nothing (a :class:`SpecWarning`) and refuses networks over
``Limits.max_parameters`` before anything is allocated (which nodes the eval and the
train graphs need is a query of the IR, :func:`archspec._ir.needed`).

What it deliberately does not do: build modules or touch torch.
"""

from __future__ import annotations

import heapq
import warnings
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from . import ops
from ._errors import (
    ErrorList,
    Loc,
    SpecError,
    SpecErrors,
    SpecExpressionError,
    SpecLimitError,
    SpecReferenceError,
    SpecSchemaError,
    SpecShapeError,
    SpecWarning,
    raise_collected,
)
from ._expr import SHAPE_NAMES, evaluate
from ._inplace import inplace_plan
from ._ir import INPUT, Deferred, Graph, Lazy, Node, readers, site_notes
from ._limits import DEFAULT_LIMITS, Limits
from ._schema import MAX_ERRORS
from ._values import FLOAT32_MAX, init_reach, shown
from .ops import fmt_shape

__all__ = ["infer", "Inference", "ABSENT"]

#: what a switched-off node that reads nothing (a param) stands for: a join leaves it out
ABSENT = "#absent"


class Inference:
    def __init__(self, graph: Graph, limits: Limits) -> None:
        self.g = graph
        self.limits = limits
        self.disabled_containers: set[str] = set()
        self.decided: set[str] = set()
        self.lazy_values: dict[int, Any] = {}
        self.errors = ErrorList()  # counts distinct mistakes: one in many copies is one
        self.failed: set[str] = set()

    # -- references --------------------------------------------------------------------------

    def static(self, ref: str) -> str:
        """The node that produces ``ref`` when every `when` holds (for ordering)."""
        g = self.g
        seen: list[str] = []
        while not (ref == INPUT or ref in g.nodes):
            if ref in seen:
                raise self.loop_error(seen[seen.index(ref):])
            seen.append(ref)
            if ref in g.containers:
                ref = g.containers[ref].output
            else:
                targets = g.aliases[ref]
                ref = targets[0] if targets else INPUT
        return ref

    def live(self, ref: str, reader: Node | None = None, absent_ok: bool = False) -> str:
        """The node that really produces ``ref``, now that `when`s are decided: a container
        stands for its output (or its input, when switched off), a node switched off for its
        input. A node switched off that reads nothing (a ``param``) stands for nothing: a
        join drops it (``absent_ok`` gives :data:`ABSENT`), anything else is an error."""
        g = self.g
        seen: list[str] = []
        while ref != INPUT:
            if ref in seen:
                raise self.loop_error(seen[seen.index(ref):])
            seen.append(ref)
            if ref in g.containers:
                c = g.containers[ref]
                ref = c.input if ref in self.disabled_containers else c.output
                continue
            if ref in g.aliases:
                inputs, loc = g.aliases[ref], g.alias_locs.get(ref)
            else:
                node = g.nodes[ref]
                if node.enabled:
                    return ref
                inputs, loc = node.inputs, node.loc
                if ops.REGISTRY[node.op].category == "join" and not node.implicit:
                    inputs = inputs[:1]  # a join switched off passes its first input through
            if not inputs and absent_ok:
                return ABSENT
            if len(inputs) != 1:
                name = ref.split("#", 1)[0]
                if not inputs:
                    raise SpecReferenceError(
                        f"'{name}' is switched off ('when' is false) and reads no input, so nothing can stand in for it",
                        reader.loc if reader else loc, node=reader.display if reader else name,
                        notes=[(loc, f"'{name}' is defined here")] if loc and reader else [],
                        hint="a join (add, mul, concat) reading it leaves it out; switch its other readers off too, "
                             "or give them 'from'")
                raise SpecReferenceError(
                    f"'{name}' is switched off ('when' is false) and reads {len(inputs)} inputs, so nothing can stand in "
                    "for it", reader.loc if reader else loc, node=reader.display if reader else name,
                    notes=[(loc, f"'{name}' is defined here")] if loc and reader else [],
                    hint="switch its readers off too, or give them 'from' naming what they should read "
                         "(a join such as add or concat switched off passes its first input through)",
                )
            ref = inputs[0]
        return INPUT

    def loop_error(self, refs: list[str]) -> SpecReferenceError:
        names = [r.split("#", 1)[0] for r in refs]
        loc = next((self.g.alias_locs.get(r) or (self.g.nodes[r].loc if r in self.g.nodes else None) for r in refs), None)
        return SpecReferenceError(
            "the graph has a cycle through nodes that are switched off: " + " -> ".join(names + names[:1]),
            loc, node=names[0], hint="a node can only read nodes that do not (directly or indirectly) read it")

    # -- ordering ----------------------------------------------------------------------------

    def order(self) -> list[str]:
        """A topological order that follows document order wherever dependencies allow."""
        g = self.g
        deps = {path: [d for d in (self.static(r) for r in node.inputs) if d != INPUT] for path, node in g.nodes.items()}
        order = _stable_topo(list(g.nodes), deps)
        if len(order) != len(g.nodes):
            raise self.cycle_error(deps, set(g.nodes) - set(order))
        return order

    def cycle_error(self, deps: dict[str, list[str]], stuck: set[str]) -> SpecReferenceError:
        start = min(stuck, key=list(self.g.nodes).index)
        path = [start]
        seen = {start: 0}
        current = start
        while True:
            current = next(d for d in deps[current] if d in stuck)
            if current in seen:
                cycle = path[seen[current]:] + [current]
                break
            seen[current] = len(path)
            path.append(current)
        names = [self.g.nodes[p].display for p in cycle]
        first = self.g.nodes[cycle[0]]
        return SpecReferenceError(
            "the graph has a cycle: " + " -> ".join(reversed(names)),
            first.loc, node=first.display,
            notes=[(self.g.nodes[p].loc, f"'{self.g.nodes[p].display}' reads '{self.g.nodes[q].display}'")
                   for p, q in reversed(list(zip(cycle, cycle[1:])))],
            hint="a node can only read nodes that do not (directly or indirectly) read it",
        )

    # -- values ------------------------------------------------------------------------------

    def shape_env(self, shape: tuple[int, ...] | None) -> dict[str, int]:
        if not shape:
            return {}
        env = {"in_c": shape[0]}
        if len(shape) == 3:
            env.update(in_h=shape[1], in_w=shape[2])
        return env

    def realize(self, value: Any, shape: tuple[int, ...] | None, where: str) -> Any:
        if isinstance(value, list):
            return [self.realize(v, shape, where) for v in value]
        if not isinstance(value, Deferred):
            return value
        env = self.env_with_lazies(value.env, value.expr.names, where)
        env.update(self.shape_env(shape))
        missing = (value.expr.names & SHAPE_NAMES) - set(env)
        if missing and shape is None:
            name = sorted(missing)[0]
            raise SpecExpressionError(f"'{name}' is not known here: this node reads no input (a param), in "
                                      f"'{value.expr.text.strip()}'", value.expr.loc, node=where,
                                      hint="give the size as a block parameter (a block's parameter may use in_c: "
                                           "channels: \"${in_c}\")")
        if missing:
            name = sorted(missing)[0]
            raise SpecExpressionError(
                f"'{name}' is not defined for this node's input, which is {fmt_shape(shape)} "
                f"in '{value.expr.text.strip()}'", value.expr.loc, node=where,
                expected="in_h and in_w only for C x H x W inputs",
            )
        return evaluate(value.expr, env, self.limits, where)

    def env_with_lazies(self, env: Mapping[str, Any], names: frozenset[str], where: str) -> dict[str, Any]:
        out = dict(env)
        for n in names:
            v = out.get(n)
            if isinstance(v, Lazy):
                out[n] = self.lazy(v)
        return out

    def lazy(self, lazy: Lazy) -> Any:
        key = id(lazy)
        if key not in self.lazy_values:
            shape = self.shape_of(self.live(lazy.ref))
            env = self.env_with_lazies(lazy.env, lazy.expr.names, lazy.where)
            env.update(self.shape_env(shape))
            self.lazy_values[key] = evaluate(lazy.expr, env, self.limits, lazy.where)
        return self.lazy_values[key]

    def decide(self, when: bool | Deferred, shape: tuple[int, ...] | None, where: str, loc: Loc | None) -> bool:
        if not isinstance(when, Deferred):
            return bool(when)
        value = self.realize(when, shape, where)
        if isinstance(value, bool):
            return value
        raise SpecSchemaError(f"'when' is {shown(value)}, from '{when.expr.text.strip()}'", when.expr.loc, node=where,
                              expected="true or false",
                              hint="compare it: when: \"${in_c > 1}\"" if isinstance(value, (int, float)) else None)

    # -- the walk ----------------------------------------------------------------------------

    def shape_of(self, source: str) -> tuple[int, ...] | None:
        return self.g.input_shape if source == INPUT else self.g.nodes[source].shape

    def branches(self, node: Node) -> list[str]:
        """The inputs of a node; for the join of a ``concat:``/``add:`` container, only the
        branches that are switched on (a branch switched off drops out of the join)."""
        if not (node.implicit and node.path.endswith(("#add", "#concat"))):
            return node.inputs
        kept = [r for r in node.inputs if not self.switched_off(r)]
        if not kept:
            container = self.g.containers.get(node.parent or "")
            raise SpecShapeError(f"every branch of this {node.op} is switched off ('when' is false)", node.loc,
                                 node=node.display, expected="at least one branch",
                                 notes=[(self.g.nodes[r].loc if r in self.g.nodes else self.g.containers[r].loc,
                                         f"'{r}' is switched off") for r in node.inputs][:5]
                                 + (site_notes(container.sites) if container else []))
        return kept

    def node(self, node: Node) -> None:
        g = self.g
        join = ops.REGISTRY[node.op].category == "join"
        sources = [self.live(r, node, absent_ok=join) for r in self.branches(node)]
        if join:  # a switched-off param an add or mul reads is left out of it
            sources = [s for s in sources if s != ABSENT]
            if not sources:
                raise SpecReferenceError(f"every input of this {node.op} is switched off ('when' is false)", node.loc,
                                         node=node.display, expected="at least one input that is switched on",
                                         notes=site_notes(node.sites))
        if any(s in self.failed for s in sources):
            self.failed.add(node.path)
            return
        node.sources = sources
        node.in_shapes = [self.shape_of(s) for s in sources]
        shape = node.in_shapes[0] if node.in_shapes else None
        # enclosing containers switched off by a shape-dependent `when`
        parent = node.parent
        while parent is not None:
            c = g.containers[parent]
            if parent not in self.decided and isinstance(c.when, Deferred):
                self.decided.add(parent)
                c_shape = self.shape_of(self.live(c.input, node))
                if not self.decide(c.when, c_shape, parent, c.loc):
                    self.disabled_containers.add(parent)
            if parent in self.disabled_containers:
                node.enabled = False
                return
            parent = c.parent
        if not self.decide(node.when, shape, node.display, node.loc):
            node.enabled = False
            return
        op = ops.REGISTRY[node.op]
        values = {}
        for name, value in node.params.items():
            values[name] = self.realize(value, shape, node.display)
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
        self.check_inputs(node, op)
        try:
            result = op.infer(concrete, node.in_shapes, [self.label(s) for s in sources])
        except ops.ShapeError as e:
            raise self.shape_error(node, e) from None
        if any(d > self.limits.max_int for d in result.shape):
            raise SpecLimitError(f"the output shape {fmt_shape(result.shape)} has a dimension over {self.limits.max_int:.0e} "
                                 "(Limits.max_int)", node.loc, node=node.display, notes=site_notes(node.sites))
        node.concrete = concrete
        node.shape = result.shape
        node.batched = not op.tensor
        # the layout, as its first input from the network has it (a learnable tensor first, as
        # in ConvNeXt's mul of its layer scale and the block, says nothing about it); a
        # permute [0, 2, 3, 1] of an image makes it channels-last, [0, 3, 1, 2] turns it back
        batched = [s for s in sources if self.batched(s)]
        rank3 = len(result.shape) == 3 and bool(batched)
        node.image = node.channels_last = False
        if op.layout == "same":
            node.image = rank3 and self.is_image(batched[0])
            node.channels_last = rank3 and self.is_channels_last(batched[0])
        elif op.layout == "dims" and rank3:
            dims = list(concrete.dims)
            node.channels_last = dims == [0, 2, 3, 1] and self.is_image(batched[0])
            node.image = dims == [0, 3, 1, 2] and self.is_channels_last(batched[0])
        else:
            node.image = op.layout == "image"
        node.tensors = {**result.params, **result.buffers}
        node.n_params, node.n_buffers, node.macs = result.n_params, result.n_buffers, result.macs

    def is_image(self, source: str) -> bool:
        if source == INPUT:
            return len(self.g.input_shape) == 3
        return self.g.nodes[source].image

    def is_channels_last(self, source: str) -> bool:
        return source != INPUT and self.g.nodes[source].channels_last

    def batched(self, source: str) -> bool:
        return source == INPUT or self.g.nodes[source].batched

    def check_inputs(self, node: Node, op: ops.OpDef) -> None:
        """What the shape rules cannot see: learnable tensors (no batch dimension) reach only
        ops that broadcast them, and ops on the last dimension do not get a C x H x W image."""
        g = self.g
        unbatched = [s for s in node.sources if not self.batched(s)]
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
            batched = [s for s in node.sources if self.batched(s)]
            if not batched:
                raise SpecShapeError(f"{node.op} reads only learnable tensors, so its result has no batch dimension",
                                     node.loc, node=node.display, expected="at least one input that comes from the network input",
                                     notes=notes + site_notes(node.sites))
            rank = max(len(self.shape_of(s)) for s in batched)
            if len(param.shape) > rank:
                raise SpecShapeError(
                    f"the learnable tensor '{param.display}' ({fmt_shape(param.shape)}) has more dimensions than a sample "
                    f"({rank}); it would broadcast against the batch", node.loc, node=node.display,
                    expected=f"a shape of at most {rank} dimensions, per sample (the batch is added by broadcasting)",
                    notes=notes + site_notes(node.sites))
        if op.broadcast:
            ranks = {len(self.shape_of(s)) for s in node.sources if self.batched(s)}
            if len(ranks) > 1:
                listing = ", ".join(f"{self.label(s)} is {fmt_shape(self.shape_of(s))}" for s in node.sources if self.batched(s))
                raise SpecShapeError(
                    f"cannot {node.op} inputs with different numbers of dimensions: {listing}", node.loc, node=node.display,
                    expected="inputs of the same rank (torch aligns them from the last dimension, batch included)",
                    hint="keep the dimensions with keepdim: true (mean) or reshape, so each input has the same rank",
                    notes=site_notes(node.sites))
        if op.last_dim and node.sources and self.is_image(node.sources[0]) and len(node.in_shapes[0]) == 3:
            shape = node.in_shapes[0]
            alternative = op.image_hint or ("flatten it first ({op: flatten}, usually after a global pooling), or for a "
                                            "channels-last layer permute it ({op: permute, dims: [0, 2, 3, 1]})")
            raise SpecShapeError(
                f"{node.op} acts on the last dimension, but its input is an image {fmt_shape(shape)} (channels x height x "
                f"width), whose last dimension is its width", node.loc, node=node.display,
                expected="flat features, tokens (N x D) or a channels-last image (H x W x C)", hint=alternative,
                notes=[(None, f"its input is {fmt_shape(shape)}, for a network input of {fmt_shape(g.input_shape)}"),
                       *site_notes(node.sites)])

    def label(self, source: str) -> str:
        return "the input" if source == INPUT else f"'{self.g.nodes[source].display}'"

    def shape_error(self, node: Node, e: ops.ShapeError) -> SpecShapeError:
        loc = node.param_locs.get(e.param) if e.param else None
        notes: list[tuple[Loc | None, str]] = []
        for i in e.inputs:
            s = node.sources[i]
            if s != INPUT:
                producer = self.g.nodes[s]
                notes.append((producer.loc, f"'{producer.display}' makes {fmt_shape(producer.shape)}"))
        shapes = ", ".join(fmt_shape(s) for s in node.in_shapes)
        if not e.inputs and node.in_shapes:
            notes.append((None, f"its input is {shapes}, for a network input of {fmt_shape(self.g.input_shape)}"))
        notes.extend(site_notes(node.sites))
        hint = e.hint
        learned = [node.sources[i] for i in e.inputs if not self.batched(node.sources[i])]
        if learned and ops.REGISTRY[node.op].broadcast:  # the residual-sum hint would mislead
            param = self.g.nodes[learned[0]]
            others = {fmt_shape(self.shape_of(s)) for s in node.sources if self.batched(s)}
            hint = (f"'{param.display}' is a learnable tensor, sized by its own 'shape' ({fmt_shape(param.shape)} per "
                    f"sample); it must broadcast against {' and '.join(sorted(others))} (a position embedding has one row "
                    "per token)")
        return SpecShapeError(e.message, loc or node.loc, node=node.display, expected=e.expected, hint=hint, notes=notes)

    def run(self) -> Graph:
        g = self.g
        g.order = []
        for path in self.order():
            node = g.nodes[path]
            try:
                self.node(node)
            except SpecErrors as e:
                self.errors.extend(e.errors)
                self.failed.add(path)
            except SpecError as e:
                self.errors.append(e)
                self.failed.add(path)
            if self.errors.distinct >= MAX_ERRORS:
                break
            if node.enabled and path not in self.failed:
                g.order.append(path)
        if self.errors:
            raise_collected(self.errors, MAX_ERRORS)
        for path, c in g.containers.items():
            if path in self.disabled_containers or not self.container_enabled(path):
                c.enabled = False
                continue
            c.value = self.live(path)
            c.shape = self.shape_of(c.value)
        self.resolve_outputs()
        self.check_limits()
        self.check_init()
        g.inplace = inplace_plan(g)
        self.warn_off_joins()
        if not g.taps:  # a feature extractor leaves the head unused on purpose
            self.mark_usage()
        return g

    def warn_off_joins(self) -> None:
        """A switched-off add or mul passes its first input: warn where that input is smaller
        than what the join would have made (a gate written first is an easy trap)."""
        g = self.g
        joins = dict(g.off_joins)
        joins.update({p: (n.op, n.inputs) for p, n in g.nodes.items()
                      if not n.enabled and not n.implicit and ops.REGISTRY[n.op].broadcast})
        for path, (op, inputs) in joins.items():
            try:
                sources = [self.live(r, absent_ok=True) for r in inputs]
            except SpecError:
                continue
            shapes = [self.shape_of(s) for s in sources if s != ABSENT and (s == INPUT or g.nodes[s].enabled)]
            if len(shapes) < 2 or any(s is None for s in shapes) or sources[0] == ABSENT:
                continue
            from .ops._common import broadcast

            full = broadcast(shapes)
            if full is not None and shapes[0] != full:
                name = path.split("#", 1)[0]
                loc = g.alias_locs.get(path) or (g.nodes[path].loc if path in g.nodes else None)
                warnings.warn(SpecWarning(
                    f"'{name}' is switched off, so it passes its first input ({fmt_shape(shapes[0])}), not the "
                    f"{fmt_shape(full)} its {op} would make: write the main path first in 'from'", loc, name), stacklevel=3)

    def switched_off(self, ref: str) -> bool:
        """Whether ``ref`` (a node or container path) was left out by a shape-dependent `when`."""
        g = self.g
        if ref in g.nodes and not g.nodes[ref].enabled:
            return True
        parent = g.nodes[ref].parent if ref in g.nodes else ref
        return parent is not None and parent in g.containers and not self.container_enabled(parent)

    def resolve_outputs(self) -> None:
        g = self.g
        kept = []
        for output in g.outputs:
            if self.switched_off(output.ref) and not output.implicit:  # the graph's last node stands for its input
                if g.taps:
                    raise SpecReferenceError(f"the node '{output.ref}' is switched off ('when' is false), so it has no value",
                                             None)
                continue  # its node was left out: so is the output
            output.node = self.live(output.ref)
            if output.node != INPUT and not g.nodes[output.node].batched:
                node = g.nodes[output.node]
                raise SpecShapeError(
                    f"the network returns the learnable tensor '{node.display}' (output '{output.name}'), which has no "
                    "batch dimension", node.loc, node=node.display, expected="outputs computed from the network input",
                    hint="combine it with what the input computes (add, mul) before it is returned")
            kept.append(output)
        if not any(not o.training_only for o in kept):
            raise SpecReferenceError("every output that eval mode returns is switched off ('when' is false)",
                                     g.outputs[0].loc if g.outputs else None)
        g.outputs = kept

    def check_init(self) -> None:
        """Every initialiser fits its tensor, statically: those that need a fan (kaiming_*,
        xavier_*) only tensors of 2 or more dimensions, and no initialiser may make values
        float32 cannot hold (nothing is scanned after filling)."""
        g = self.g
        for rule in g.init:
            for tensor, spec in rule.tensors.items():
                fn = spec.get("fn", "") if isinstance(spec, dict) else ""
                for p, name in ((p, t) for p in g.order for t in rule.targets(g.nodes[p], tensor)):  # weight: also qkv.weight
                    node = g.nodes[p]
                    shape = node.tensors.get(name)
                    if shape is None or not rule.selects(node) or ops.REGISTRY[node.op].tensor:
                        continue
                    where = dict(node=f"init rule {rule.index + 1}")
                    if fn.startswith(("kaiming", "xavier")) and len(shape) < 2:
                        raise SpecSchemaError(
                            f"{fn} cannot initialise '{node.display}.{name}' ({fmt_shape(shape)}): it needs a tensor "
                            "of 2 or more dimensions", rule.loc, **where,
                            hint="select conv2d and linear nodes with 'ops' for fan-based initialisers")
                    if init_reach(spec, shape) > FLOAT32_MAX:
                        raise SpecSchemaError(
                            f"the rule makes '{node.display}.{name}' hold values beyond float32 (inf or nan)", rule.loc,
                            **where, expected="arguments whose values float32 can hold")
        for p in g.order:
            node = g.nodes[p]
            if ops.REGISTRY[node.op].tensor and init_reach(node.concrete.init, node.tensors[""]) > FLOAT32_MAX:
                raise SpecSchemaError(f"'init' makes '{node.display}' hold values beyond float32 (inf or nan)",
                                      node.loc, node=node.display, expected="arguments whose values float32 can hold")

    def container_enabled(self, path: str) -> bool:
        c = self.g.containers[path]
        while c is not None:
            if c.path in self.disabled_containers or c.when is False:
                return False
            c = self.g.containers.get(c.parent) if c.parent else None
        return True

    def check_limits(self) -> None:
        total = sum(self.g.nodes[p].n_params for p in self.g.order)
        if total > self.limits.max_parameters:
            biggest = max(self.g.order, key=lambda p: self.g.nodes[p].n_params)
            node = self.g.nodes[biggest]
            raise SpecLimitError(
                f"the network would have {total:,} parameters ({_bytes(total * 4)} in float32), over the limit of "
                f"{self.limits.max_parameters:,} (Limits.max_parameters)",
                node.loc, node=node.display,
                notes=[(node.loc, f"the largest node, '{node.display}', has {node.n_params:,}")],
            )

    def mark_usage(self) -> None:
        g = self.g
        consumers = readers(g, g.order)
        for p in g.order:
            node = g.nodes[p]
            if consumers[p] == 0 and not node.implicit:
                warnings.warn(SpecWarning("this node feeds nothing: no node reads it and it is not an output",
                                          node.loc, node.display), stacklevel=2)


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _stable_topo(paths: list[str], deps: dict[str, list[str]]) -> list[str]:
    position = {p: i for i, p in enumerate(paths)}
    indegree = {p: len(deps[p]) for p in paths}
    users: dict[str, list[str]] = {p: [] for p in paths}
    for p in paths:
        for d in deps[p]:
            users[d].append(p)
    heap = [(position[p], p) for p in paths if indegree[p] == 0]
    heapq.heapify(heap)
    out = []
    while heap:
        _, p = heapq.heappop(heap)
        out.append(p)
        for u in users[p]:
            indegree[u] -= 1
            if indegree[u] == 0:
                heapq.heappush(heap, (position[u], u))
    return out


def infer(graph: Graph, limits: Limits = DEFAULT_LIMITS) -> Graph:
    """Infer shapes and costs in place and return the graph (see the module docstring)."""
    return Inference(graph, limits).run()
