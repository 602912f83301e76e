"""Stage 3, resolve: a validated spec to the IR graph.

What it does, walking the spec once in document order:

- applies parameter overrides (``compile_spec(path, num_classes=10)``, ``--set``), checking
  each against the spec's declared parameters;
- instantiates blocks (``use:``), binding and type-checking their arguments; a block's
  body sees its own parameters, then the spec's;
- unrolls ``repeat`` (the index, ``i`` unless ``index:`` says otherwise, is visible to the
  copy's name and values) and splices ``inline`` sequences into their parent;
- evaluates ``when`` (a node switched off is left out, and whatever reads it reads its
  input instead; in a list, later items are numbered as if it were not there);
- names every node by its dotted path and resolves ``from:`` among its siblings (and
  ``input``), builds the implicit joins of ``concat``, ``add`` and ``dense`` containers,
  and resolves ``outputs``;
- evaluates every expression that does not need a shape; those that use ``in_c``/``in_h``/
  ``in_w`` (directly or through a block argument) are left as :class:`Deferred` for infer.

What it deliberately does not do: look at shapes, detect cycles (infer orders the graph),
or touch torch.
"""

from __future__ import annotations

import keyword
import warnings
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

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
    SpecWarning,
    did_you_mean,
    name_list,
    raise_collected,
)
from ._expr import SHAPE_NAMES, Expr, evaluate, is_expression, parse_name_template, parse_value
from ._ir import INPUT, Container, Deferred, Graph, InitRule, Lazy, Node, Output, UseSite, site_notes
from ._limits import DEFAULT_LIMITS, Limits
from ._load import Document
from ._schema import COMMON_KEYS, CONTAINER_KINDS, MAX_ERRORS, NAME_RE, NODE_NAME_RE, PARAM_TYPES, validate_op_node
from ._values import shown

__all__ = ["resolve", "RESERVED_NAMES", "apply_overrides"]

#: attribute names of torch.nn.Module that a node may not take (a test keeps this in sync)
RESERVED_NAMES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu",
    "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state",
    "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers",
    "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook",
    "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad",
    # the generated forward's own names, and the attributes of a compiled model
    "self", "code", "spec_name", "output_names", "Outputs", "load_report",
})


@dataclass
class _Entry:
    """One child of a body after repeat/when/inline expansion."""

    name: str | None  # None until a list body numbers it
    model: Any
    env: dict[str, Any]
    raw: tuple  # data path of the node
    when: bool | Deferred
    loc: Loc | None
    copy: int = 0  # the repeat index (later copies read the copy before them, not `from`)


class _Scope:
    """What a body's children can see: the block stack, for messages and recursion checks."""

    def __init__(self, sites: tuple[UseSite, ...] = ()) -> None:
        self.sites = sites


def apply_overrides(doc: Document, spec: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's parameters with ``overrides`` applied; unknown names and wrong types are errors.

    A dotted name reaches into a list or mapping parameter: ``block_config.2=36``.
    """
    params = dict(spec.params)
    for name in params:
        if not name.isascii() or not name.isidentifier():
            raise SpecSchemaError(f"'{name}' cannot be a spec parameter name", doc.locs.key(("params", name)),
                                  expected="an ASCII identifier: letters, digits and '_', not starting with a digit")
        if name in SHAPE_NAMES:
            raise SpecSchemaError(f"'{name}' cannot be a spec parameter: it names the input shape in expressions",
                                  doc.locs.key(("params", name)), expected="another name")
        values = params[name] if isinstance(params[name], list) else [params[name]]
        if any(is_expression(v) for v in values):
            raise SpecSchemaError(f"the spec parameter '{name}' is the expression {shown(params[name])}",
                                  doc.locs.value(("params", name)), node=f"param {name}", expected="a plain value",
                                  hint="spec parameters are values that users override; compute derived values where "
                                       "they are used (out: '${2 * width}'), or write '$$' for a literal '$'")
    for raw_name, value in overrides.items():
        name, _, rest = str(raw_name).partition(".")
        if name not in params:
            known = sorted(params)
            raise SpecReferenceError(
                f"unknown parameter '{name}' (set to {shown(value)})",
                None,
                expected="one of: " + (", ".join(known) if known else "(this spec declares no params)"),
                hint=did_you_mean(name, known),
            )
        default = params[name]
        loc = doc.locs.value(("params", name))
        if rest:
            params[name] = _set_dotted(name, default, rest.split("."), value, loc)
            continue
        problem = _type_mismatch(default, value)
        if problem:
            raise SpecSchemaError(
                f"parameter '{name}' set to {shown(value)}", None, expected=problem,
                notes=[(loc, f"'{name}' is declared here with the default {shown(default)}")],
            )
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise SpecSchemaError(f"parameter '{name}' set to {value}", None, expected="a number of float range") from None
        params[name] = value
    return params


def _set_dotted(name: str, container: Any, keys: list[str], value: Any, loc: Loc | None, at: str = "") -> Any:
    """``container`` with the entry at ``keys`` set to ``value`` (``at``: the dotted path so
    far, for messages: ``setting.1``)."""
    at = at or name
    key = keys[0]
    here = f"{at}.{key}"
    declared = [(loc, f"'{name}' is declared here")]
    if isinstance(container, list):
        try:
            index = int(key)
        except ValueError:
            index = None
        if index is None or not -len(container) <= index < len(container):
            raise SpecReferenceError(f"'{at}' has {len(container)} entries; there is no entry '{key}'", None,
                                     expected=f"an index from 0 to {len(container) - 1}", notes=declared)
        out = list(container)
        out[index] = _set_dotted(name, out[index], keys[1:], value, loc, here) if len(keys) > 1 else value
        if len(keys) == 1 and _type_mismatch(container[index], value):
            raise SpecSchemaError(f"'{here}' set to {shown(value)}", None, expected=_type_mismatch(container[index], value),
                                  notes=[(loc, f"'{name}' is declared here; '{here}' is {shown(container[index])}")])
        return out
    if isinstance(container, dict):
        out = dict(container)
        out[key] = _set_dotted(name, out.get(key), keys[1:], value, loc, here) if len(keys) > 1 else value
        return out
    raise SpecReferenceError(f"'{at}' is {shown(container)}, which has no entries to set", None, notes=declared)


def _type_mismatch(default: Any, value: Any) -> str | None:
    """What ``value`` should have been, given the type of ``default``; ``None`` if it fits."""
    if default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, list):
        return None if isinstance(value, list) else "a list"
    return None


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


@dataclass
class _ParamSpec:
    name: str
    type: str
    required: bool
    default: Any
    loc: Loc | None
    raw: tuple = ()  # data path of the default value


class Resolver:
    def __init__(self, doc: Document, spec: Any, params: dict[str, Any], input_shape: tuple[int, ...], limits: Limits) -> None:
        self.doc = doc
        self.spec = spec
        self.params = params
        self.limits = limits
        self.input_shape = input_shape
        self.nodes: dict[str, Node] = {}
        self.containers: dict[str, Container] = {}
        self.aliases: dict[str, list[str]] = {}
        self.alias_locs: dict[str, Loc] = {}
        self.off_joins: dict[str, tuple[str, list[str]]] = {}
        self.errors = ErrorList()  # counts distinct mistakes: one in many copies is one
        self.count = 0
        self.edges = 0
        self.depth = 0
        self._block_params: dict[str, list[_ParamSpec]] = {}
        self.taps: list[str] | None = None
        self.overridden: set[str] = set()  # parameters set by --set or keyword arguments

    # -- helpers ---------------------------------------------------------------------------

    def loc(self, raw: tuple) -> Loc | None:
        return self.doc.locs.value(raw)

    def key_loc(self, raw: tuple) -> Loc | None:
        return self.doc.locs.key(raw)

    def value(self, value: Any, env: Mapping[str, Any], raw: tuple, where: str, structural: bool = False) -> Any:
        """Evaluate a spec value: literals pass, expressions are evaluated or deferred."""
        if isinstance(value, list):
            items = [self.value(v, env, raw + (i,), where, structural) for i, v in enumerate(value)]
            return items
        if isinstance(value, dict):  # an initialiser {fn: normal, std: $std}
            return {k: self.value(v, env, raw + (k,), where, structural) for k, v in value.items()}
        if isinstance(value, str) and value.startswith("$$"):
            return value[1:]
        if not is_expression(value):
            return value
        try:
            expr = parse_value(value, self.loc(raw), self.limits)
        except SpecExpressionError as e:
            raise e.at_node(where) from None
        lazy = {n for n in expr.names if isinstance(env.get(n), Lazy)}
        if expr.names & SHAPE_NAMES - set(env) or lazy:
            if structural:
                through = f" (through the block parameter '{sorted(lazy)[0]}')" if lazy else ""
                raise SpecExpressionError(
                    f"'{expr.text}' uses the input shape{through}, but this value decides the graph's structure",
                    expr.loc, node=where,
                    hint="'repeat', names, 'op', 'use', 'from' and 'when' in a list are fixed before shapes are known: "
                         "give them a parameter instead (a 'when' that needs the shape can stand in a mapping body)",
                )
            return Deferred(expr, env)
        try:
            return evaluate(expr, env, self.limits, where)
        except SpecError as e:
            raise self.with_param_notes(e, expr, env) from None

    def with_param_notes(self, error: SpecError, expr: Expr, env: Mapping[str, Any]) -> SpecError:
        """``error`` with a note for each spec parameter in ``expr`` whose value was set
        elsewhere (a variant file, ``--set``, a keyword argument): the value that broke
        an expression is often not written where the expression is."""
        for name in sorted(expr.names):
            if name not in self.params or env.get(name) is not self.params[name]:
                continue  # not a spec parameter here (a block parameter, the repeat index)
            value = shown(self.params[name])
            if name in self.overridden:
                error.notes.append((None, f"'{name}' is {value}, set by an override (--set or a keyword argument)"))
                continue
            loc = self.loc(("params", name))
            if loc is not None and error.loc is not None and loc.file != error.loc.file:
                error.notes.append((loc, f"'{name}' is {value}, set here"))
        return error

    def spec_input(self) -> tuple[int, ...]:
        """The spec's ``input``, its expressions evaluated with the spec's parameters
        (``[3, $image_size, $image_size]``)."""
        shape = []
        for i, item in enumerate(self.spec.input):
            value = self.value(item, self.params, ("input", i), "input", structural=True)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= self.limits.max_int:
                raise SpecSchemaError(f"the input's dimension {i} is {shown(value)}, from '{item}'", self.loc(("input", i)),
                                      node="input", expected=f"a positive integer up to {self.limits.max_int:.0e}")
            shape.append(value)
        return tuple(shape)

    # -- the walk --------------------------------------------------------------------------

    def run(self) -> Graph:
        env = dict(self.params)
        spec = self.spec
        top, output = self.body(spec.graph, ("graph",), None, INPUT, env, "seq", _Scope())
        outputs = self.outputs(output)
        init = self.init_rules(env)
        if self.errors:
            self.raise_errors()
        return Graph(
            name=spec.name, description=spec.description, input_shape=self.input_shape, params=self.params,
            nodes=self.nodes, containers=self.containers, top=top, outputs=outputs, init=init,
            aliases=self.aliases, source=self.doc.path, files=self.doc.files, taps=self.taps is not None,
            alias_locs=self.alias_locs, checkpoint_keys=[(r.match, r.replace) for r in spec.checkpoint_keys],
            off_joins=self.off_joins,
        )

    def raise_errors(self) -> None:
        raise_collected(self.errors, MAX_ERRORS)

    def expand(self, body: Any, raw: tuple, env: dict[str, Any], kind: str, where: str | None) -> list[_Entry]:
        """Unroll repeats, evaluate static `when`, splice inline seqs: the body's entries."""
        items = list(body.items()) if isinstance(body, dict) else list(enumerate(body))
        entries: list[_Entry] = []
        for key, model in items:
            item_raw = raw + (key,)
            entries.extend(self.expand_item(key if isinstance(body, dict) else None, model, item_raw, env, kind, where))
        return entries

    def expand_item(self, name: str | None, model: Any, raw: tuple, env: dict[str, Any], kind: str,
                    where: str | None) -> list[_Entry]:
        here = self.key_loc(raw) if name is not None else self.loc(raw)
        label = f"{where}.{name}" if where and name else (name or where or "graph")
        common = model if isinstance(model, BaseModel) else None
        count, index = 1, "i"
        repeated = False
        if common is not None and common.repeat is not None:
            count = self.value(common.repeat, env, raw + ("repeat",), label, structural=True)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                leave_out = isinstance(count, (int, float)) and not isinstance(count, bool) and count <= 0
                raise SpecSchemaError(f"'repeat' is {shown(count)}", self.loc(raw + ("repeat",)), node=label,
                                      expected="a positive integer", hint="to leave a node out, use 'when: false'" if leave_out else None)
            if count > self.limits.max_repeat:
                raise SpecLimitError(f"'repeat' is {count:,}, over the limit of {self.limits.max_repeat:,} (Limits.max_repeat)",
                                     self.loc(raw + ("repeat",)), node=label)
            index = common.index
            repeated = True
        if repeated and index in SHAPE_NAMES:
            raise SpecSchemaError(f"'{index}' names the input shape; the repeat index needs another name",
                                  self.loc(raw + ("index",)), node=label)
        out: list[_Entry] = []
        for copy in range(count):
            self.count += 1
            if self.count > self.limits.max_nodes:
                raise SpecLimitError(f"the graph has more than {self.limits.max_nodes:,} nodes (Limits.max_nodes)", here,
                                     node=label)
            sub_env = dict(env, **{index: copy}) if repeated else env
            when: bool | Deferred = True
            if common is not None and common.when is not True:
                in_list = name is None or kind == "dense"  # a list numbers its items; a dense layer's input follows its siblings
                when = self.value(common.when, sub_env, raw + ("when",), label, structural=in_list)
                if not isinstance(when, (bool, Deferred)):  # a number is refused as a literal is: write a comparison
                    raise SpecSchemaError(f"'when' is {shown(when)}, from '{common.when}'", self.loc(raw + ("when",)),
                                          node=label, expected="true or false",
                                          hint="compare it: when: \"${stride > 1}\"" if isinstance(when, (int, float)) else None)
            node_name = None
            if name is not None:
                node_name = self.node_name(name, sub_env, raw, label)
            inline = common.inline if common is not None else False
            if is_expression(inline):
                inline = self.value(inline, sub_env, raw + ("inline",), label, structural=True)
                if not isinstance(inline, bool):
                    raise SpecSchemaError(f"'inline' is {shown(inline)}", self.loc(raw + ("inline",)), node=label,
                                          expected="true or false")
            if inline:
                if not hasattr(model, "seq"):
                    raise SpecSchemaError("'inline: true' is only for a seq node", self.loc(raw + ("inline",)), node=label,
                                          expected="a node with 'seq:' whose children join the enclosing body")
                if kind != "seq":
                    raise SpecSchemaError(f"an inline seq cannot stand in the branches of a {kind}", self.loc(raw + ("inline",)),
                                          node=label, hint="inline splices layers into a sequence; give each branch its own name")
                if name is not None and isinstance(model.seq, list):
                    raise SpecSchemaError("an inline seq in a mapping needs named children", self.key_loc(raw + ("seq",)),
                                          node=label, expected="its body written as a mapping of names to nodes",
                                          hint="its children join this mapping, so each needs a name (use {i} with repeat)")
                if common.from_ is not None:
                    raise SpecSchemaError("an inline seq cannot have 'from'", self.key_loc(raw + ("from",)), node=label,
                                          hint="put 'from' on its first child")
                if when is False:
                    continue
                if isinstance(when, Deferred):
                    raise SpecExpressionError("the 'when' of an inline seq cannot use the input shape", self.loc(raw + ("when",)), node=label)
                out.extend(self.expand(model.seq, raw + ("seq",), dict(sub_env), kind, where))
                continue
            out.append(_Entry(node_name, model, sub_env, raw, when, here, copy))
        return out

    def node_name(self, template: str, env: Mapping[str, Any], raw: tuple, where: str) -> str:
        loc = self.key_loc(raw)
        if "{" in template or "}" in template:
            try:
                parts = parse_name_template(template, loc, self.limits)
            except SpecExpressionError as e:
                raise e.at_node(where) from None
            text = ""
            for part in parts:
                if isinstance(part, str):
                    text += part
                    continue
                if part.names & SHAPE_NAMES:
                    raise SpecExpressionError(f"the name '{template}' uses the input shape", part.loc, node=where,
                                              hint="names are fixed before shapes are known")
                v = evaluate(part, env, self.limits, where)
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise SpecExpressionError(f"'{{{part.text}}}' in the name '{template}' is {shown(v)}", part.loc, node=where,
                                              expected="an integer or a string")
                text += str(v)
            name = text
        else:
            name = template
        self.check_name(name, loc, where, template)
        return name

    def check_name(self, name: str, loc: Loc | None, where: str, template: str | None = None) -> None:
        made = f" (made from '{template}')" if template and template != name else ""
        if not NODE_NAME_RE.fullmatch(name):
            raise SpecSchemaError(f"invalid node name {shown(name)}{made}", loc,
                                  node=where if where.isprintable() else ascii(where)[1:-1],
                                  expected="letters, digits, '_' and '-' (not first)")
        if name == INPUT:
            raise SpecSchemaError("'input' is reserved: it names the body's input", loc, node=where,
                                  hint="rename the node")
        if name.startswith("_") or name in RESERVED_NAMES or keyword.iskeyword(name):
            raise SpecSchemaError(f"the node name '{name}'{made} is reserved", loc, node=where,
                                  expected="a name that is not a Python keyword, not an attribute of torch.nn.Module or of "
                                           "the compiled model, and does not start with '_'")

    def body(self, body: Any, raw: tuple, parent: str | None, input_ref: str, env: dict[str, Any], kind: str,
             scope: _Scope) -> tuple[list[str], str]:
        """Build a body's children; return their paths and the ref of the body's output."""
        where = parent
        entries = self.expand(body, raw, env, kind, where)
        numbered = isinstance(body, list)
        number = 0
        for entry in entries:
            if numbered:
                if entry.when is False:
                    continue
                entry.name = str(number)
                number += 1
        prefix = f"{parent}." if parent else ""
        # names must be unique among the siblings
        seen: dict[str, _Entry] = {}
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
        if not entries:
            raise SpecSchemaError("this body has no nodes", self.loc(raw), node=where, expected="at least one node")
        siblings = {e.name: prefix + e.name for e in entries if e.name is not None}
        children: list[str] = []
        previous = input_ref
        branch_outputs: list[str] = []
        for k, entry in enumerate(entries):
            path = prefix + entry.name if entry.name is not None else None
            label = path or where or "graph"
            model = entry.model
            from_ = model.from_ if isinstance(model, BaseModel) else None
            if kind == "seq":
                if from_ is not None and entry.copy == 0:  # later copies of a repeat read the copy before them
                    refs = self.from_refs(from_, entry.env, entry.raw + ("from",), label)
                    inputs = [self.ref(r, siblings, prefix, input_ref, entry.raw + ("from",), label, scope) for r in refs]
                else:
                    inputs = [previous]
            else:
                if from_ is not None:
                    raise SpecSchemaError(f"'from' is not allowed in the branches of a {kind}", self.key_loc(entry.raw + ("from",)),
                                          node=label, hint=f"every branch of a {kind} reads the {kind}'s input; use a seq to wire nodes by name")
                if isinstance(entry.when, Deferred) and kind == "dense":
                    raise SpecExpressionError(f"the 'when' of a {kind} branch cannot use the input shape", self.loc(entry.raw + ("when",)),
                                              node=label, hint="a dense layer's input depends on which layers before it exist; "
                                                               "decide with the block's parameters")
                if kind == "dense" and branch_outputs and entry.when is not False:
                    join = f"{path}#in"
                    self.add_node(Node(join, *ops.join_for(kind), [input_ref, *branch_outputs], entry.loc, parent=parent,
                                       implicit=True, sites=scope.sites, env=entry.env))
                    inputs = [join]
                else:
                    inputs = [input_ref]
            if entry.when is False:
                # left out: whatever reads it reads its input (the next node in a seq, too); a
                # join (add, mul, concat) left out passes its first input through
                alias = path if path is not None else f"{prefix}#off{k}"
                op = ops.REGISTRY.get(getattr(model, "op", None)) if isinstance(getattr(model, "op", None), str) else None
                if op is not None and op.arity[1] == 0:
                    inputs = []  # a param stands for nothing: a join reading it leaves it out
                self.aliases[alias] = inputs[:1] if op is not None and op.category == "join" else inputs
                if op is not None and op.broadcast:
                    self.off_joins[alias] = (op.name, list(inputs))
                self.alias_locs[alias] = entry.loc
                if kind == "seq":
                    previous = alias
                continue
            try:
                self.build(entry, path, parent, inputs, scope)
            except SpecLimitError:
                raise  # a limit stops the work: going on would only repeat it (and cost the time it guards)
            except SpecErrors as e:
                self.errors.extend(e.errors)
                continue
            except SpecError as e:
                self.errors.append(e)
                if self.errors.distinct >= MAX_ERRORS:
                    self.raise_errors()
                continue
            children.append(path)
            previous = path
            branch_outputs.append(path)
        if kind == "seq":
            return children, previous
        join_path = f"{parent}#{kind}"
        join_inputs = [input_ref, *branch_outputs] if kind == "dense" else branch_outputs
        op, params = ops.join_for(kind)
        if kind == "add" and len(entries) < 2:
            raise SpecSchemaError(f"an add needs at least 2 branches, found {len(entries)}", self.loc(raw), node=where,
                                  hint="a branch switched off by 'when' drops out of the sum; an add of one branch is that branch")
        if not join_inputs:
            what = f"every branch of this {kind} is switched off ('when' is false)" if entries else f"a {kind} needs at least one branch"
            raise SpecSchemaError(what, self.loc(raw), node=where, expected="at least one branch")
        container = self.containers.get(parent) if parent else None
        self.add_node(Node(join_path, op, params, join_inputs,
                           container.loc if container else self.loc(raw), parent=parent, implicit=True, sites=scope.sites, env=env))
        return children, join_path

    def from_refs(self, from_: Any, env: Mapping[str, Any], raw: tuple, where: str) -> list[str]:
        """The names a ``from:`` reads; it may be an expression (``"${'skip' if proj else 'input'}"``)
        or a list whose items are, evaluated before shapes are known."""
        items = from_ if isinstance(from_, list) else [from_]
        if not isinstance(from_, list) and is_expression(from_):
            value = self.value(from_, env, raw, where, structural=True)
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            if not items:
                raise SpecSchemaError("'from' is an empty list", self.loc(raw), node=where, expected="a node name or a list of them")
            raws = [raw] * len(items)
        else:
            raws = [raw + (i,) if isinstance(from_, list) else raw for i in range(len(items))]
        names = []
        for item, item_raw in zip(items, raws):
            value = self.value(item, env, item_raw, where, structural=True) if is_expression(item) else item
            if not isinstance(value, str) or not value:
                raise SpecSchemaError(f"'from' is {shown(value)}", self.loc(item_raw), node=where,
                                      expected="a node name (a string) or a list of them")
            names.append(value)
        return names

    def ref(self, name: str, siblings: Mapping[str, str], prefix: str, input_ref: str, raw: tuple, where: str,
            scope: _Scope) -> str:
        if name == INPUT:
            return input_ref
        if name in siblings:
            return siblings[name]
        known = [INPUT, *(n for n, p in siblings.items() if p != where)]
        inside = f" in block '{scope.sites[-1].block}'" if scope.sites else ""
        hint = did_you_mean(name, known)
        if "." in name:
            hint = "'from' names a sibling (a node of the same body) or 'input'; read a nested node through its container's output"
        raise SpecReferenceError(
            f"'from' names '{name}', which is not a node here{inside}", self._from_loc(raw, name), node=where,
            expected="one of: " + name_list(known), hint=hint, notes=site_notes(scope.sites),
        )

    def _from_loc(self, raw: tuple, name: str) -> Loc | None:
        """The position of ``name`` in a ``from:`` value (the item, when it is a list)."""
        value = self._raw(raw)
        if isinstance(value, list) and name in value:
            return self.loc(raw + (value.index(name),))
        return self.loc(raw)

    def _raw(self, raw: tuple) -> Any:
        value: Any = self.doc.data
        for p in raw:
            try:
                value = value[p]
            except (KeyError, IndexError, TypeError):
                return None
        return value

    def add_node(self, node: Node) -> None:
        self.edges += len(node.inputs)
        if self.edges > self.limits.max_edges:
            raise SpecLimitError(f"the graph has more than {self.limits.max_edges:,} connections (Limits.max_edges)", node.loc,
                                 node=node.display, hint="a dense body of n children makes about n*n/2 of them")
        if node.implicit:
            self.count += 1
            if self.count > self.limits.max_nodes:
                raise SpecLimitError(f"the graph has more than {self.limits.max_nodes:,} nodes (Limits.max_nodes)", node.loc,
                                     node=node.display)
        self.nodes[node.path] = node

    def build(self, entry: _Entry, path: str, parent: str | None, inputs: list[str], scope: _Scope) -> None:
        self.build_node(entry, path, parent, inputs, scope)
        wanted = getattr(entry.model, "checkpoint", False) if isinstance(entry.model, BaseModel) else False
        if wanted is False:
            return
        raw = entry.raw + ("checkpoint",)
        if is_expression(wanted):
            value = self.value(wanted, entry.env, raw, path, structural=True)
            if not isinstance(value, bool):
                raise SpecSchemaError(f"'checkpoint' is {shown(value)}, from '{wanted}'", self.loc(raw), node=path,
                                      expected="true or false", notes=site_notes(scope.sites))
            wanted = value
        if not wanted:
            return
        if path not in self.containers:
            raise SpecSchemaError("'checkpoint' is for a block instance or a seq, concat, add or dense body, not one op",
                                  self.key_loc(raw), node=path, expected="checkpoint on the block or body around it",
                                  notes=site_notes(scope.sites))
        self.containers[path].checkpoint = True

    def build_node(self, entry: _Entry, path: str, parent: str | None, inputs: list[str], scope: _Scope) -> None:
        model = entry.model
        if isinstance(model, list):
            self.container(path, "seq", model, entry.raw, parent, inputs, entry, scope, block=None, env=entry.env)
            return
        if hasattr(model, "op"):
            model = self.chosen_op(model, entry.raw, entry.env, path, scope, block=False)
            self.op_node(model, path, parent, inputs, entry.raw, entry.env, entry.when, entry.loc, scope)
            return
        if hasattr(model, "use"):
            self.use(model, path, parent, inputs, entry.raw, entry.env, entry.when, entry.loc, scope)
            return
        for kind in CONTAINER_KINDS:
            if hasattr(model, kind):
                self.container(path, kind, getattr(model, kind), entry.raw + (kind,), parent, inputs, entry, scope,
                               block=None, env=entry.env)
                return
        raise AssertionError(f"unexpected node model {type(model).__name__}")  # pragma: no cover

    def chosen_op(self, model: Any, raw: tuple, env: Mapping[str, Any], path: str, scope: _Scope, block: bool) -> Any:
        """A node whose ``op`` is an expression (``op: $activation``), checked against the op
        it names once evaluated; other nodes as they are."""
        if not is_expression(model.op):
            return model
        name = self.value(model.op, env, raw + ("op",), path, structural=True)
        if isinstance(name, str) and name not in ops.REGISTRY:
            ops.ensure_ops([name])  # an op of an installed package, loaded on first use
        if not isinstance(name, str) or name not in ops.REGISTRY:
            hint = did_you_mean(name, ops.names()) if isinstance(name, str) else None
            if isinstance(name, str) and name in self.spec.blocks:
                hint = f"'{name}' is a block: write 'use: {model.op}'"
            raise SpecSchemaError(f"'op' is {shown(name)}, from '{model.op}'", self.loc(raw + ("op",)), node=path,
                                  expected=ops.known(), hint=hint, notes=site_notes(scope.sites))
        try:
            return validate_op_node(self.doc, raw, name, block=block)
        except SpecError as e:
            for err in e.errors if isinstance(e, SpecErrors) else [e]:
                err.notes.append((self.loc(raw + ("op",)), f"'op' is '{name}' here, from '{model.op}'"))
            raise

    def container(self, path: str, kind: str, body: Any, raw: tuple, parent: str | None, inputs: list[str], entry: _Entry,
                  scope: _Scope, block: str | None, env: dict[str, Any], args: dict[str, Any] | None = None) -> None:
        if len(inputs) != 1:
            raise SpecReferenceError(f"a {kind} reads one input, but 'from' names {len(inputs)}", entry.loc, node=path,
                                     hint="to join several nodes, use {op: concat, from: [...]} or {op: add, from: [...]}")
        doc = getattr(entry.model, "doc", None) if isinstance(entry.model, BaseModel) else None
        container = Container(path, kind, [], inputs[0], inputs[0], entry.loc, block=block, parent=parent, when=entry.when,
                              sites=scope.sites, doc=doc, args=args or {})
        self.containers[path] = container
        if self.depth >= self.limits.max_nesting:
            raise SpecLimitError(f"containers nest deeper than {self.limits.max_nesting} levels (Limits.max_nesting)",
                                 entry.loc, node=path, notes=site_notes(scope.sites))
        self.depth += 1
        try:
            children, output = self.body(body, raw, path, inputs[0], env, kind, scope)
        finally:
            self.depth -= 1
        container.children = children
        container.output = output

    def op_node(self, model: Any, path: str, parent: str | None, inputs: list[str], raw: tuple, env: dict[str, Any],
                when: bool | Deferred, loc: Loc | None, scope: _Scope) -> None:
        op = ops.REGISTRY[model.op]
        least, most = op.arity
        if most == 0:  # a learnable tensor: it reads nothing (in a seq, not even the node before it)
            if "from" in self._raw_keys(raw):
                raise SpecReferenceError(f"{op.name} reads no input, but it has 'from'", self.loc(raw + ("from",)), node=path,
                                         hint="leave 'from' out; nodes that use it name it in their own 'from'",
                                         notes=site_notes(scope.sites))
            inputs = []
        if len(inputs) < least or (most is not None and len(inputs) > most):
            wanted = str(least) if least == most else (f"at least {least}" if most is None else f"{least} to {most}")
            raise SpecReferenceError(
                f"{op.name} takes {wanted} input{'s' if least != 1 or most != 1 else ''}, but it reads {len(inputs)}",
                self.loc(raw + ("from",)) if "from" in self._raw_keys(raw) else loc, node=path,
                hint="give 'from: [a, b]' to name its inputs" if least > 1 else "give 'from' one node", notes=site_notes(scope.sites),
            )
        params: dict[str, Any] = {}
        param_locs: dict[str, Loc] = {}
        for field_name in op.params.model_fields:
            value = getattr(model, field_name)
            field_raw = raw + (field_name,)
            param_locs[field_name] = self.loc(field_raw) or loc
            params[field_name] = self.value(value, env, field_raw, path)
        self.add_node(Node(path, op.name, params, inputs, loc, param_locs=param_locs, env=env, when=when, parent=parent,
                           sites=scope.sites, doc=model.doc))

    def _raw_keys(self, raw: tuple) -> set:
        value = self._raw(raw)
        return set(value) if isinstance(value, dict) else set()

    # -- blocks ----------------------------------------------------------------------------

    def block_params(self, name: str, block: Any) -> list[_ParamSpec]:
        if name in self._block_params:
            return self._block_params[name]
        specs = []
        for pname, decl in block.params.items():
            raw = ("blocks", name, "params", pname)
            loc = self.key_loc(raw)
            if not pname.isidentifier() or not pname.isascii() or keyword.iskeyword(pname) or pname in COMMON_KEYS or pname == "use" or pname in SHAPE_NAMES:
                raise SpecSchemaError(f"'{pname}' cannot be a block parameter name", loc, node=f"block '{name}'",
                                      expected="an ASCII identifier other than use, " + ", ".join(COMMON_KEYS) + ", in_c, in_h, in_w")
            if isinstance(decl, str) and decl in PARAM_TYPES:
                specs.append(_ParamSpec(pname, decl, True, None, loc, raw))
            elif isinstance(decl, dict):
                declared = decl.get("type", "any")
                specs.append(_ParamSpec(pname, declared, "default" not in decl, decl.get("default"), loc, raw + ("default",)))
            else:
                specs.append(_ParamSpec(pname, "any", False, decl, loc, raw))
        self._block_params[name] = specs
        return specs

    def use(self, model: Any, path: str, parent: str | None, inputs: list[str], raw: tuple, env: dict[str, Any],
            when: bool | Deferred, loc: Loc | None, scope: _Scope, entry_model: Any = None) -> None:
        blocks = self.spec.blocks
        name = model.use
        source = ""
        if is_expression(name):  # a block chosen by the parameters: use: "${'bottleneck' if deep else 'basic'}"
            source = f", from '{name}'"
            name = self.value(name, env, raw + ("use",), path, structural=True)
            if not isinstance(name, str):
                raise SpecSchemaError(f"'use' is {shown(name)}{source}", self.loc(raw + ("use",)), node=path,
                                      expected="the name of a block (a string)", notes=site_notes(scope.sites))
        if name not in blocks:
            hint = did_you_mean(name, blocks)
            if name in ops.REGISTRY:
                hint = f"'{name}' is an op: write 'op: {name}'"
            raise SpecReferenceError(f"unknown block '{name}'{source}", self.loc(raw + ("use",)), node=path,
                                     expected="one of: " + name_list(sorted(blocks)) if blocks else "a block defined under 'blocks:'",
                                     hint=hint, notes=site_notes(scope.sites))
        stack = [s.block for s in scope.sites]
        if name in stack:
            cycle = " -> ".join(stack[stack.index(name):] + [name])
            raise SpecReferenceError(f"block '{name}' uses itself ({cycle})", self.loc(raw + ("use",)), node=path,
                                     notes=site_notes(scope.sites))
        if len(stack) >= self.limits.max_block_depth:
            raise SpecLimitError(f"blocks nest deeper than {self.limits.max_block_depth} (Limits.max_block_depth)", loc, node=path)
        block = blocks[name]
        declared = self.block_params(name, block)
        known = [p.name for p in declared]
        args = dict(model.model_extra or {})
        bound: dict[str, Any] = {}
        for arg, value in args.items():
            arg_raw = raw + (arg,)
            if arg not in known:
                raise SpecReferenceError(
                    f"block '{name}' has no parameter '{arg}'", self.key_loc(arg_raw), node=path,
                    expected="one of: " + (", ".join(known) if known else f"(block '{name}' takes no parameters)"),
                    hint=did_you_mean(arg, known), notes=site_notes(scope.sites),
                )
            if is_expression(value) or isinstance(value, list):
                v = self.value(value, env, arg_raw, path)
                if isinstance(v, Deferred):
                    v = Lazy(v.expr, v.env, inputs[0] if len(inputs) == 1 else INPUT, path)
                elif isinstance(v, list) and any(isinstance(x, Deferred) for x in v):
                    raise SpecExpressionError("a list argument cannot use the input shape", self.loc(arg_raw), node=path)
            else:
                v = value
            bound[arg] = (v, arg_raw)
        values: dict[str, Any] = {}
        for p in declared:
            if p.name in bound:
                v, arg_raw = bound[p.name]
                problem = _check_param_type(p.type, v)
                if problem:
                    raise SpecSchemaError(f"'{p.name}' is {shown(v)}", self.loc(arg_raw), node=path, expected=problem,
                                          notes=[(p.loc, f"block '{name}' declares '{p.name}' as {p.type}")])
                values[p.name] = v
            elif p.required:
                raise SpecSchemaError(
                    f"block '{name}' needs the parameter '{p.name}' ({p.type})", self.key_loc(raw) or loc, node=path,
                    notes=[(p.loc, f"'{p.name}' is declared here"), *site_notes(scope.sites)],
                )
            elif not _has_expression(p.default):
                values[p.name] = p.default
        # derived defaults, in declaration order, see every argument and literal default (and the
        # derived ones before them); the block's own parameters shadow the spec's
        for p in declared:
            if p.name in values or p.required:
                continue
            default_env = dict(self.params)
            default_env.update(values)
            v = self.value(p.default, default_env, p.raw, path)
            if isinstance(v, list) and any(isinstance(x, Deferred) for x in v):
                raise SpecExpressionError("a list default cannot use the input shape", self.loc(p.raw), node=path)
            values[p.name] = Lazy(v.expr, v.env, inputs[0] if len(inputs) == 1 else INPUT, path) if isinstance(v, Deferred) else v
        values = {p.name: values[p.name] for p in declared}  # declaration order
        block_env = dict(self.params)
        block_env.update(values)
        site = UseSite(name, path, self.loc(raw + ("use",)) or loc)
        inner = _Scope(scope.sites + (site,))
        block_raw = ("blocks", name)
        if hasattr(block, "op"):
            block = self.chosen_op(block, block_raw, block_env, path, inner, block=True)
            self.op_node(block, path, parent, inputs, block_raw, block_env, when, loc, inner)
            node = self.nodes[path]
            node.doc = getattr(model, "doc", None) or node.doc
            return
        if hasattr(block, "use"):
            self.use(block, path, parent, inputs, block_raw, block_env, when, loc, inner)
            return
        for kind in CONTAINER_KINDS:
            if hasattr(block, kind):
                entry = _Entry(path.rsplit(".", 1)[-1], model, block_env, raw, when, loc)
                shown_args = {k: v for k, v in values.items() if not isinstance(v, Lazy)}
                self.container(path, kind, getattr(block, kind), block_raw + (kind,), parent, inputs, entry, inner,
                               block=name, env=block_env, args=shown_args)
                if model.doc is None and block.doc:
                    self.containers[path].doc = block.doc
                return
        raise AssertionError("unexpected block model")  # pragma: no cover

    # -- outputs and init ------------------------------------------------------------------

    def tap_outputs(self, taps: list[str]) -> list[Output]:
        """Outputs asked for by path (a feature extractor), checked against the graph."""
        candidates = [p for p in [*self.containers, *self.nodes] if "#" not in p]
        if not taps:
            example = next((p for p in candidates if "." not in p), "a node path")
            raise SpecReferenceError("'outputs' is empty", None,
                                     expected=f"one or more node or block paths of {self.spec.name}, such as '{example}'")
        out = []
        for path in taps:
            if path in self.aliases or any(path.startswith(a + ".") for a in self.aliases):
                raise SpecReferenceError(f"the node '{path}' is switched off ('when' is false), so it has no value", None)
            if path not in self.nodes and path not in self.containers or "#" in path:
                raise SpecReferenceError(
                    f"outputs: '{path}' is not a node of {self.spec.name}", None,
                    expected="node or block paths such as " + ", ".join(candidates[:3]),
                    hint=did_you_mean(path, candidates), notes=[(self.loc(("graph",)), "the graph is defined here")],
                )
            out.append(Output(path, path, False, None))
        return out

    def outputs(self, last: str) -> list[Output]:
        if self.taps is not None:
            return self.tap_outputs(self.taps)
        declared = self.spec.outputs
        if declared is None:
            return [Output("output", last, False, self.loc(("graph",)), implicit=True)]
        out: list[Output] = []
        for name, decl in declared.items():
            raw = ("outputs", name)
            if not name.isidentifier() or not name.isascii() or keyword.iskeyword(name) or name.startswith("_"):
                raise SpecSchemaError(f"invalid output name '{name}'", self.key_loc(raw), node=f"output {name}",
                                      expected="an ASCII Python identifier not starting with '_' (it becomes a named-tuple field)")
            weight = None
            if isinstance(decl, str):
                ref, training_only, ref_raw = decl, False, raw
            else:
                ref, training_only, ref_raw = decl.node, decl.training_only, raw + ("node",)
                if decl.loss_weight is not None:
                    weight = self.value(decl.loss_weight, self.params, raw + ("loss_weight",), f"output {name}", structural=True)
                    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
                        raise SpecSchemaError(f"'loss_weight' is {shown(weight)}", self.loc(raw + ("loss_weight",)),
                                              node=f"output {name}", expected="a number >= 0")
                    weight = float(weight)
                if is_expression(training_only):
                    training_only = self.value(training_only, self.params, raw + ("training_only",), f"output {name}", structural=True)
                    if not isinstance(training_only, bool):
                        raise SpecSchemaError(f"'training_only' is {shown(training_only)}", self.loc(raw + ("training_only",)),
                                              node=f"output {name}", expected="true or false")
            if ref in self.aliases or any(ref.startswith(a + ".") for a in self.aliases):
                continue  # its node is switched off: the output is left out
            if ref not in self.nodes and ref not in self.containers or "#" in ref:
                candidates = [p for p in [*self.containers, *self.nodes] if "#" not in p]
                raise SpecReferenceError(
                    f"output '{name}' names '{ref}', which is not a node", self.loc(ref_raw), node=f"output {name}",
                    expected="a node or block path such as " + ", ".join(candidates[-3:]),
                    hint=did_you_mean(ref, candidates),
                )
            out.append(Output(name, ref, bool(training_only), self.loc(ref_raw), loss_weight=weight))
        if not out:
            what = "'outputs' is empty" if not declared else "every output is switched off"
            raise SpecSchemaError(what, self.loc(("outputs",)), expected="at least one output",
                                  hint="leave 'outputs' out to return the last node" if not declared else None)
        if all(o.training_only for o in out):
            raise SpecSchemaError("every output is training_only", self.loc(("outputs",)),
                                  expected="at least one output that eval mode returns")
        return out

    def init_number(self, value: Any, env: dict[str, Any], raw: tuple, where: str) -> float:
        v = self.value(value, env, raw, where)
        if isinstance(v, Deferred):
            raise SpecExpressionError(f"'{v.expr.text}' uses the input shape, which an init rule cannot see",
                                      v.expr.loc, node=where, hint="init rules apply to many nodes; use the spec's params")
        if not _init_number_check(v):
            raise SpecSchemaError(f"found {shown(v)}", self.loc(raw), node=where, expected="a finite number")
        if abs(v) > FLOAT32_MAX:  # the weights are float32: this would make them inf
            raise SpecSchemaError(f"found {shown(v)}", self.loc(raw), node=where,
                                  expected=f"a number a float32 weight can hold (at most {FLOAT32_MAX:.4g} in size)")
        return float(v)

    def init_rules(self, env: dict[str, Any]) -> list[InitRule]:
        rules = []
        for i, rule in enumerate(self.spec.init):
            raw = ("init", i)
            tensors: dict[str, Any] = {}
            where = f"init rule {i + 1}"
            for tensor in ("weight", "bias"):
                value = getattr(rule, tensor)
                if value is None:
                    continue
                if isinstance(value, BaseModel):
                    args = {}
                    for k, v in value.model_dump(exclude_none=True).items():
                        args[k] = v if k in ("fn", "mode", "nonlinearity") else self.init_number(v, env, raw + (tensor, k), where)
                    lo, hi = args.get("a"), args.get("b")
                    if args["fn"] in ("uniform", "trunc_normal") and lo is not None and hi is not None and lo >= hi:
                        raise SpecSchemaError(f"'{args['fn']}' needs a < b, found a={lo} and b={hi}", self.loc(raw + (tensor,)),
                                              node=where)
                    tensors[tensor] = args
                else:
                    tensors[tensor] = self.init_number(value, env, raw + (tensor,), where)
            rules.append(InitRule(rule.ops, rule.paths, tensors, self.loc(raw), i))
        return rules


FLOAT32_MAX = 3.4028234663852886e38


def _init_number_check(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def resolve(doc: Document, spec: Any, overrides: Mapping[str, Any] | None = None,
            input_shape: tuple[int, ...] | None = None, limits: Limits = DEFAULT_LIMITS,
            outputs: list[str] | None = None) -> Graph:
    """Resolve a validated spec into the IR graph (see the module docstring).

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
    resolver = Resolver(doc, spec, params, (), limits)
    resolver.input_shape = tuple(input_shape) if input_shape is not None else resolver.spec_input()
    resolver.taps = outputs
    resolver.overridden = {str(name).partition(".")[0] for name in overrides or {}}
    graph = resolver.run()
    _warn_unused_params(doc, params, limits)
    return graph


def _warn_unused_params(doc: Document, params: Mapping[str, Any], limits: Limits) -> None:
    """A spec parameter that no expression of the spec (or of its bases) names is usually a
    misspelt one, such as a variant's ``patch_sise: 8`` that leaves ``patch_size`` as it
    was: warn, with the nearest name that is used."""
    used: set[str] = set()
    stack: list[Any] = [doc.data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(key, str) and "{" in key:  # a name template: "encoder_layer_{i}"
                    try:
                        used.update(n for part in parse_name_template(key, None, limits) if isinstance(part, Expr)
                                    for n in part.names)
                    except SpecError:
                        pass
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and is_expression(item):
            try:
                used.update(parse_value(item, None, limits).names)
            except SpecError:
                pass  # reported where the value is evaluated
    for name in params:
        if name not in used:
            hint = did_you_mean(name, sorted(used & set(params)))
            warnings.warn(SpecWarning(f"the parameter '{name}' is never used: no expression names it"
                                      + (f"; {hint}" if hint else ""),
                                      doc.locs.key(("params", name)), f"params.{name}"), stacklevel=4)
