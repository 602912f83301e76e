"""The walk: bodies, the nodes in them, containers and block instances, recursively.

What it does: :class:`Walker` walks a body in document order: expands it, numbers a
list's entries, checks that siblings' names differ, wires each entry's inputs (the node
before it in a seq, its ``from:``, or the body's input in the branches of a concat, add
or dense), builds it (an op node, a container whose body it walks in turn, or a block
instance), and collects each node's errors so that one run reports many mistakes.

What it deliberately does not do: the rules of each step, which live in :mod:`.expand`,
:mod:`.refs`, :mod:`.nodes`, :mod:`.blocks` and :mod:`.joins`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .._errors import SpecError, SpecErrors, SpecExpressionError, SpecLimitError, SpecReferenceError, SpecSchemaError
from .._expr import is_expression, parse_value
from .._ir import Container, Deferred, Lazy, Renumbered, site_notes
from .._schema import CONTAINER_KINDS, MAX_ERRORS
from .._values import with_article
from .blocks import Blocks
from .context import Context
from .expand import expand
from .joins import close, dense_input, switch_off
from .nodes import checkpoint, chosen_op, op_node
from .refs import Siblings, from_refs, ref
from .state import BodySite, Entry, Site, State


class Walker:
    """Builds the nodes and containers of a spec's graph into a :class:`State`."""

    def __init__(self, ctx: Context, state: State) -> None:
        self.ctx = ctx
        self.state = state
        self.blocks = Blocks(ctx)

    def body(self, body: Any, at: BodySite) -> tuple[list[str], str]:
        """Build a body's children; return their paths and the ref of the body's output."""
        ctx, state, kind, parent = self.ctx, self.state, at.kind, at.parent
        where = parent
        entries = expand(ctx, state, body, at)
        prefix = at.prefix
        if isinstance(body, list):
            _number(ctx, state, entries, prefix, at)
        _check_unique(entries, prefix, where)
        if at.named:
            _check_not_inputs(ctx, entries, prefix, at)
        if not entries:
            raise SpecSchemaError("this body has no nodes", ctx.loc(at.raw), node=where, expected="at least one node")
        siblings = Siblings({e.name: prefix + e.name for e in entries if e.name is not None}, state)
        children: list[str] = []
        previous = at.input_ref
        branch_outputs: list[str] = []
        for k, entry in enumerate(entries):
            path = prefix + entry.name if entry.name is not None else None
            label = path or where or "graph"
            model = entry.model
            from_ = model.from_ if isinstance(model, BaseModel) else None
            if kind == "seq":
                # later copies of a repeat read the copy before them: as their only input, or as the
                # first of several (a block of several inputs), the others as 'from' names them for that copy
                several = isinstance(from_, list) and len(from_) > 1 or is_expression(from_)
                refs = from_refs(ctx, from_, entry.env, entry.raw + ("from",), label) if (
                    from_ is not None and (entry.copy == 0 or several)) else []
                if entry.copy > 0:
                    refs = [None, *refs[1:]]  # None: the copy before
                inputs = [previous if r is None else ref(ctx, r, siblings, at, entry.raw + ("from",), label)
                          for r in refs] or [previous]
            else:
                if from_ is not None:
                    raise SpecSchemaError(f"'from' is not allowed in the branches of {with_article(kind)}", ctx.key_loc(entry.raw + ("from",)),
                                          node=label, hint=f"every branch of {with_article(kind)} reads the {kind}'s input; use a seq to wire nodes by name")
                if isinstance(entry.when, Deferred) and kind == "dense":
                    raise SpecExpressionError(f"the 'when' of {with_article(kind)} branch cannot use the input shape", ctx.loc(entry.raw + ("when",)),
                                              node=label, hint="a dense layer's input depends on which layers before it exist; "
                                                               "decide with the block's parameters")
                if kind == "dense" and branch_outputs and entry.when is not False:
                    inputs = [dense_input(state, entry, path, at, branch_outputs)]
                else:
                    inputs = [at.input_ref]
            if entry.when is False:
                alias = path if path is not None else f"{prefix}#off{k}"
                switch_off(state, entry, alias, inputs[:1] if self._declares_inputs(model) else inputs)
                if kind == "seq":
                    previous = alias
                continue
            site = Site(path, entry.raw, parent, inputs, entry.env, entry.when, entry.loc, at.scope, siblings, at)
            if not self._build_collecting(entry, site):
                continue
            children.append(path)
            previous = path
            branch_outputs.append(path)
        if kind == "seq":
            return children, previous
        return children, close(ctx, state, at, entries, branch_outputs)

    def _declares_inputs(self, model: Any) -> bool:
        """Whether ``model`` uses a block that declares its ``inputs:`` (switched off, such
        an instance stands for its first input, as a join does)."""
        name = getattr(model, "use", None) if isinstance(model, BaseModel) else None
        block = self.ctx.spec.blocks.get(name) if isinstance(name, str) else None
        return getattr(block, "inputs", None) is not None

    def _build_collecting(self, entry: Entry, site: Site) -> bool:
        """Build ``entry`` at ``site``; collect its errors instead of stopping (a limit still
        stops). Whether it was built."""
        state = self.state
        try:
            self.build(entry, site)
        except SpecLimitError:
            raise  # a limit stops the work: going on would only repeat it (and cost the time it guards)
        except SpecErrors as e:
            state.errors.extend(e.errors)
            return False
        except SpecError as e:
            state.errors.append(e)
            if state.errors.distinct >= MAX_ERRORS:
                state.raise_errors()
            return False
        return True

    def build(self, entry: Entry, site: Site) -> None:
        """Build the node or container of ``entry``, then its ``checkpoint``."""
        model = entry.model
        if isinstance(model, list):
            self.container(site, "seq", model, entry.raw, model)
        elif hasattr(model, "op"):
            op_node(self.ctx, self.state, chosen_op(self.ctx, model, site, block=False), site)
        elif hasattr(model, "use"):
            self.use(model, site)
        else:
            kind = next((k for k in CONTAINER_KINDS if hasattr(model, k)), None)
            if kind is None:
                raise AssertionError(f"unexpected node model {type(model).__name__}")  # pragma: no cover
            self.container(site, kind, getattr(model, kind), entry.raw + (kind,), model)
        checkpoint(self.ctx, self.state, entry, site.path, site.scope)

    def container(self, site: Site, kind: str, body: Any, body_raw: tuple, model: Any, block: str | None = None,
                  args: dict[str, Any] | None = None, named: dict[str, str] | None = None) -> None:
        """A container of ``kind`` at ``site`` around ``body`` (at ``body_raw``); ``model``
        is the node that made it (its ``doc``), ``block`` the block it instantiates and
        ``named`` the refs of that block's declared inputs (its instance may read several)."""
        state, path, inputs = self.state, site.path, site.inputs
        if len(inputs) != 1 and not named:
            hint = "to join several nodes, use {op: concat, from: [...]} or {op: add, from: [...]}"
            if block is not None:
                hint += f"; for a block that reads several, declare them in block '{block}': inputs: [input, skip]"
            raise SpecReferenceError(f"{with_article(kind)} reads one input, but 'from' names {len(inputs)}", site.loc, node=path,
                                     hint=hint)
        doc = getattr(model, "doc", None) if isinstance(model, BaseModel) else None
        container = Container(path, kind, [], inputs[0], inputs[0], site.loc, block=block, parent=site.parent, when=site.when,
                              sites=site.scope.sites, doc=doc, args=args or {}, inputs=list(named.values()) if named else [])
        state.containers[path] = container
        if state.depth >= self.ctx.limits.max_nesting:
            raise SpecLimitError(f"containers nest deeper than {self.ctx.limits.max_nesting} levels (Limits.max_nesting)",
                                 site.loc, node=path, notes=site_notes(site.scope.sites))
        state.depth += 1
        try:
            children, output = self.body(body, BodySite(body_raw, path, inputs[0], site.env, kind, site.scope, named or {}))
        finally:
            state.depth -= 1
        container.children = children
        container.output = output

    def use(self, model: Any, site: Site) -> None:
        """The block instance ``model`` (a node with ``use:``) at ``site``."""
        bound = self.blocks.bind(model, site)
        block, inner = bound.block, bound.site
        if hasattr(block, "op"):
            op_node(self.ctx, self.state, chosen_op(self.ctx, block, inner, block=True), inner)
            node = self.state.nodes[site.path]
            node.doc = getattr(model, "doc", None) or node.doc
            return
        if hasattr(block, "use"):
            self.use(block, inner)
            return
        for kind in CONTAINER_KINDS:
            if hasattr(block, kind):
                shown_args = {k: v for k, v in bound.values.items() if not isinstance(v, Lazy)}
                self.container(inner, kind, getattr(block, kind), inner.raw + (kind,), model, block=bound.name,
                               args=shown_args, named=bound.inputs)
                if model.doc is None and block.doc:
                    self.state.containers[site.path].doc = block.doc
                return
        raise AssertionError("unexpected block model")  # pragma: no cover


def _number(ctx: Context, state: State, entries: list[Entry], prefix: str, at: BodySite) -> None:
    """Number a list body's entries that are on (one switched off by ``when: false`` takes
    no number, so those after it are numbered lower than their place), and record, for
    *infer*'s warning, the items that a switch-off the spec as written does not make moves."""
    number = 0
    planned = 0  # the number the item has in the spec as written: only its own design's switch-offs count
    off: Renumbered | None = None
    for place, entry in enumerate(entries):
        if entry.when is False:
            why = _off_by_whom(ctx, entry)
            if why is not None:
                if off is None:
                    off = Renumbered(prefix + str(planned), why, ctx.loc(entry.raw + ("when",)) or entry.loc, [])
                planned += 1
            continue
        entry.name = str(number)
        if number != planned and off is not None:
            off.moved.append((prefix + entry.name, prefix + str(planned)))
        number += 1
        planned += 1
    if off is not None and off.moved:
        state.renumbered.append(off)


def _off_by_whom(ctx: Context, entry: Entry) -> str | None:
    """Why ``entry`` is off, where that is not the spec's design: a literal ``when: false``
    (a layer left out for now), or a ``when`` that the spec's own parameter values make
    true and an override makes false. None for a ``when`` false by the spec's own values:
    numbering only the items that are on is how a spec reproduces torchvision's keys
    (VGG's optional batch norm, MobileNet's expansion layer). An override that reaches a
    block only through its arguments is not traced."""
    written = ctx.raw(entry.raw + ("when",))
    if written is False:
        return "'when' is false"
    if not is_expression(written) or not ctx.overridden:
        return None
    names = [n for n in sorted(parse_value(written, None, ctx.limits).names & ctx.overridden)
             if n in ctx.params and entry.env.get(n) is ctx.params[n]]
    if not names:
        return None
    own = {**entry.env, **{n: ctx.spec.params[n] for n in names}}
    try:
        on_by_design = ctx.value(written, own, entry.raw + ("when",), "") is True
    except SpecError:
        return None
    return f"'when' is false with {', '.join(repr(n) for n in names)} set by an override" if on_by_design else None


def _check_unique(entries: list[Entry], prefix: str, where: str | None) -> None:
    """Names must be unique among the siblings."""
    seen: dict[str, Entry] = {}
    for entry in entries:
        if entry.name is None:
            continue
        if entry.name in seen:
            first = seen[entry.name]
            repeated = entry.raw == first.raw
            raise SpecReferenceError(
                f"{'repeat makes several' if repeated else 'two'} nodes named '{prefix}{entry.name}'", entry.loc, node=where,
                notes=[] if repeated else [(first.loc, "the first is defined here")],
                hint="put the repeat index in the name, as in 'layer{i+1}'" if repeated else None)
        seen[entry.name] = entry


def _check_not_inputs(ctx: Context, entries: list[Entry], prefix: str, at: BodySite) -> None:
    """A block's own nodes may not take the names of its declared inputs."""
    block = at.scope.sites[-1].block
    for entry in entries:
        if entry.name in at.named:
            place = list(at.named).index(entry.name)
            raise SpecReferenceError(
                f"the node '{prefix}{entry.name}' has the name of an input of block '{block}'", entry.loc, node=at.parent,
                hint="rename the node or the input: in 'from', the name would mean both",
                notes=[(ctx.loc(("blocks", block, "inputs", place)), f"block '{block}' declares the input '{entry.name}' here"),
                       *site_notes(at.scope.sites)])
