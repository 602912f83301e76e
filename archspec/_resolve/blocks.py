"""Blocks: a ``use:`` resolved to its block, and the block's parameters bound.

What it does: reads a block's declared parameters (a type, a mapping with a type and a
default, or a bare default) and its declared ``inputs:`` (names checked as node names
are, ``input`` only first); resolves a ``use:`` (possibly an expression) to a block,
refusing unknown blocks, a block that uses itself and blocks nested past the limit;
binds the instance's arguments, type-checks them and fills in the defaults (a default
that is an expression sees the arguments and the defaults before it; one that needs the
input shape becomes :class:`Lazy`, of the first input's shape); binds what the instance
reads to the block's declared inputs, in order, refusing another count; returns the
:class:`Site` the block's body is built at.

What it deliberately does not do: build the block's node or body (:mod:`.bodies` does,
with the site returned here).
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Any

from .. import ops
from .._errors import Loc, SpecExpressionError, SpecLimitError, SpecReferenceError, SpecSchemaError, did_you_mean, name_list
from .._expr import SHAPE_NAMES, is_expression
from .._ir import INPUT, Deferred, Lazy, UseSite, site_notes
from .._schema import COMMON_KEYS, PARAM_TYPES
from .._values import shown
from .context import Context
from .names import check_name
from .state import BodySite, Scope, Site


@dataclass
class ParamSpec:
    """A block parameter as declared."""

    name: str
    type: str
    required: bool
    default: Any
    loc: Loc | None
    raw: tuple = ()  # data path of the default value
    choices: list | None = None  # the values it may take, where the declaration lists them
    doc: str | None = None


@dataclass
class Instance:
    """A block bound at a ``use:``: its name, its model, its parameters' values, the site
    its body is built at (the block's data path, its parameters in scope) and, for a block
    that declares ``inputs:``, the ref each of those names stands for."""

    name: str
    block: Any
    values: dict[str, Any]
    site: Site
    inputs: dict[str, str]


def _has_expression(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return is_expression(value)


def _check_param_type(declared: str, value: Any) -> str | None:
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "size": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)),
        "list": lambda v: isinstance(v, (list, tuple)),
        "any": lambda v: True,
    }[declared]
    if isinstance(value, (Deferred, Lazy)) or ok(value):
        return None
    return {
        "int": "an integer", "float": "a number", "number": "a number", "bool": "true or false", "str": "a string",
        "size": "an integer or a pair [height, width]", "list": "a list", "any": "any value",
    }[declared]


def _check_choice(p: ParamSpec, value: Any, loc: Loc | None, block: str, path: str) -> None:
    """A value outside a declaration's ``choices`` is an error at the argument; a value
    known only with the input shape is not checked."""
    if p.choices is None or isinstance(value, (Deferred, Lazy)):
        return
    if any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in p.choices):
        return
    allowed = " or ".join(shown(c) for c in p.choices) if len(p.choices) <= 2 else "one of: " + ", ".join(shown(c) for c in p.choices)
    why = f": {p.doc}" if p.doc else ""
    raise SpecSchemaError(f"'{p.name}' is {shown(value)}", loc, node=path, expected=allowed,
                          notes=[(p.loc, f"block '{block}' allows '{p.name}' only {allowed}{why}")])


class Blocks:
    """The spec's blocks, their declared parameters read once each."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._params: dict[str, list[ParamSpec]] = {}
        self._inputs: dict[str, list[str]] = {}

    def params(self, name: str, block: Any) -> list[ParamSpec]:
        if name in self._params:
            return self._params[name]
        specs = []
        for pname, decl in block.params.items():
            raw = ("blocks", name, "params", pname)
            loc = self.ctx.key_loc(raw)
            if not pname.isidentifier() or not pname.isascii() or keyword.iskeyword(pname) or pname in COMMON_KEYS or pname == "use" or pname in SHAPE_NAMES:
                raise SpecSchemaError(f"'{pname}' cannot be a block parameter name", loc, node=f"block '{name}'",
                                      expected="an ASCII identifier other than use, " + ", ".join(COMMON_KEYS) + ", in_c, in_h, in_w")
            if isinstance(decl, str) and decl in PARAM_TYPES:
                specs.append(ParamSpec(pname, decl, True, None, loc, raw))
            elif isinstance(decl, dict):
                declared = decl.get("type", "any")
                specs.append(ParamSpec(pname, declared, "default" not in decl, decl.get("default"), loc, raw + ("default",),
                                       decl.get("choices"), decl.get("doc")))
            else:
                specs.append(ParamSpec(pname, "any", False, decl, loc, raw))
        self._params[name] = specs
        return specs

    def inputs(self, name: str, block: Any) -> list[str] | None:
        """The names block ``name`` declares its inputs by (``inputs: [input, skip]``),
        checked once; None where it declares none (it reads one input, ``input``)."""
        declared = getattr(block, "inputs", None)
        if declared is None or name in self._inputs:
            return self._inputs.get(name)
        where = f"block '{name}'"
        seen: dict[str, Loc | None] = {}
        for i, item in enumerate(declared):
            loc = self.ctx.loc(("blocks", name, "inputs", i))
            if item == INPUT and i:
                raise SpecSchemaError("'input' names a block's first input, but it is not first here", loc, node=where,
                                      hint="put 'input' first, or give this input another name")
            if item != INPUT:
                check_name(item, loc, where, what="input name")
            if item in seen:
                raise SpecSchemaError(f"block '{name}' declares the input '{item}' twice", loc, node=where,
                                      notes=[(seen[item], "the first is here")])
            seen[item] = loc
        self._inputs[name] = list(declared)
        return self._inputs[name]

    def _bind_inputs(self, name: str, block: Any, site: Site) -> dict[str, str]:
        """What each declared input of block ``name`` reads at ``site``, bound in order."""
        declared = self.inputs(name, block)
        if declared is None:
            return {}
        ctx, reads = self.ctx, site.inputs
        if len(reads) != len(declared):
            keys = ctx.raw_keys(site.raw)
            count = f"{len(declared)} input{'s' if len(declared) != 1 else ''}"
            message = f"block '{name}' takes {count} ({', '.join(declared)}), but it reads {len(reads)}"
            hint = f"give 'from' {len(declared)} nodes, bound in order to {', '.join(declared)}" if len(declared) > 1 else (
                "give 'from' one node")
            loc = ctx.loc(site.raw + ("from",)) if "from" in keys else site.loc
            raise SpecReferenceError(message, loc, node=site.path, hint=hint, notes=[
                (ctx.loc(("blocks", name, "inputs")), f"block '{name}' declares its inputs here"), *site_notes(site.scope.sites)])
        return dict(zip(declared, reads))

    def bind(self, model: Any, site: Site) -> Instance:
        """The block that the ``use:`` node ``model`` at ``site`` instantiates, bound."""
        ctx = self.ctx
        path, raw, env, inputs, loc, scope = site.path, site.raw, site.env, site.inputs, site.loc, site.scope
        blocks = ctx.spec.blocks
        name = model.use
        source = ""
        if is_expression(name):  # a block chosen by the parameters: use: "${'bottleneck' if deep else 'basic'}"
            source = f", from '{name}'"
            name = ctx.value(name, env, raw + ("use",), path, structural=True)
            if not isinstance(name, str):
                raise SpecSchemaError(f"'use' is {shown(name)}{source}", ctx.loc(raw + ("use",)), node=path,
                                      expected="the name of a block (a string)", notes=site_notes(scope.sites))
        if name not in blocks:
            hint = did_you_mean(name, blocks)
            if name in ops.REGISTRY:
                hint = f"'{name}' is an op: write 'op: {name}'"
            raise SpecReferenceError(f"unknown block '{name}'{source}", ctx.loc(raw + ("use",)), node=path,
                                     expected="one of: " + name_list(sorted(blocks)) if blocks else "a block defined under 'blocks:'",
                                     hint=hint, notes=site_notes(scope.sites))
        stack = [s.block for s in scope.sites]
        if name in stack:
            cycle = " -> ".join(stack[stack.index(name):] + [name])
            raise SpecReferenceError(f"block '{name}' uses itself ({cycle})", ctx.loc(raw + ("use",)), node=path,
                                     notes=site_notes(scope.sites))
        if len(stack) >= ctx.limits.max_block_depth:
            raise SpecLimitError(f"blocks nest deeper than {ctx.limits.max_block_depth} (Limits.max_block_depth)", loc, node=path)
        block = blocks[name]
        declared = self.params(name, block)
        known = [p.name for p in declared]
        args = dict(model.model_extra or {})
        bound: dict[str, Any] = {}
        for arg, value in args.items():
            arg_raw = raw + (arg,)
            if arg not in known:
                raise SpecReferenceError(
                    f"block '{name}' has no parameter '{arg}'", ctx.key_loc(arg_raw), node=path,
                    expected="one of: " + (", ".join(known) if known else f"(block '{name}' takes no parameters)"),
                    hint=did_you_mean(arg, known), notes=site_notes(scope.sites),
                )
            if is_expression(value) or isinstance(value, list):
                v = ctx.value(value, env, arg_raw, path)
                if isinstance(v, Deferred):
                    v = Lazy(v.expr, v.env, inputs[0] if inputs else INPUT, path)
                elif isinstance(v, list) and any(isinstance(x, Deferred) for x in v):
                    raise SpecExpressionError("a list argument cannot use the input shape", ctx.loc(arg_raw), node=path)
            else:
                v = value
            bound[arg] = (v, arg_raw)
        values: dict[str, Any] = {}
        for p in declared:
            if p.name in bound:
                v, arg_raw = bound[p.name]
                problem = _check_param_type(p.type, v)
                if problem:
                    raise SpecSchemaError(f"'{p.name}' is {shown(v)}", ctx.loc(arg_raw), node=path, expected=problem,
                                          notes=[(p.loc, f"block '{name}' declares '{p.name}' as {p.type}")])
                _check_choice(p, v, ctx.loc(arg_raw), name, path)
                values[p.name] = v
            elif p.required:
                raise SpecSchemaError(
                    f"block '{name}' needs the parameter '{p.name}' ({p.type})", ctx.key_loc(raw) or loc, node=path,
                    notes=[(p.loc, f"'{p.name}' is declared here"), *site_notes(scope.sites)],
                )
            elif not _has_expression(p.default):
                values[p.name] = p.default
        # derived defaults, in declaration order, see every argument and literal default (and the
        # derived ones before them); the block's own parameters shadow the spec's
        for p in declared:
            if p.name in values or p.required:
                continue
            default_env = dict(ctx.params)
            default_env.update(values)
            v = ctx.value(p.default, default_env, p.raw, path)
            if isinstance(v, list) and any(isinstance(x, Deferred) for x in v):
                raise SpecExpressionError("a list default cannot use the input shape", ctx.loc(p.raw), node=path)
            values[p.name] = Lazy(v.expr, v.env, inputs[0] if inputs else INPUT, path) if isinstance(v, Deferred) else v
        values = {p.name: values[p.name] for p in declared}  # declaration order
        block_env = dict(ctx.params)
        block_env.update(values)
        use_site = UseSite(name, path, ctx.loc(raw + ("use",)) or loc)
        inner = Scope(scope.sites + (use_site,))
        named = self._bind_inputs(name, block, site)
        # a block is a body of its own: an op block's 'like: input' names the instance's input
        body = BodySite(("blocks", name), site.parent, inputs[0] if inputs else INPUT, block_env, "seq", inner, named)
        return Instance(name, block, values, Site(path, ("blocks", name), site.parent, inputs, block_env, site.when, loc, inner,
                                                  body=body), named)
