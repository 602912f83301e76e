"""Stage 2, validate: the pydantic models of the spec language, and located errors.

The models say exactly which keys exist where (``extra="forbid"`` throughout) and which
values they take; the value types (:mod:`._values`) accept a literal or an expression.
Op nodes are generated from the op registry, so an op's parameters are declared once, in
its registry entry. :func:`validate` turns pydantic's errors into :class:`SpecError` s that
point at the offending key or value in the YAML, with the keys that would have been right.

What it deliberately does not do: resolve names (blocks, ``from:``), evaluate
expressions or check shapes; those are the next stages.

The language, in short (see the README for the reference)::

    archspec: 1                  # format version
    name: googlenet
    description: ...
    extends: base.yaml           # optional: merge this file over a base spec
    requires: [archspec-mish]    # optional: packages whose ops it uses
    input: [3, 224, 224]
    params: {num_classes: 1000}  # spec parameters (overridable)
    blocks: {name: {params: {...}, <node>}}   # parameterised templates
    graph: {name: <node>, ...}   # the network, in order
    outputs: {logits: fc, aux: {node: aux1, training_only: true}}
    init: [{ops: [conv2d], weight: {fn: kaiming_normal}}, ...]

A node is ``{op: ...}`` (an op of the registry), ``{use: block, ...args}``,
``{seq: body}``, ``{concat: body}``, ``{add: body}``, ``{dense: body}`` or a list (a
sequence named 0, 1, ...); a body is a map of named nodes or a list. Every node may carry
``from``, ``when``, ``repeat``, ``index``, ``inline``, ``checkpoint`` and ``doc``.
"""

from __future__ import annotations

import difflib
import keyword
import re
import re._constants as sre_constants  # the parsed form, to find nested repetition
import re._parser as sre_parse
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from . import ops
from ._errors import SpecError, SpecReferenceError, SpecSchemaError, camel_case, did_you_mean, name_list, raise_collected
from ._load import NODE_KIND_KEYS, Document
from ._expr import is_expression
from ._values import (EXPRESSION_SCHEMA, INIT_ARGS, INIT_FIELDS, INIT_WORDS, NUMBER_INIT_ARGS, POSITIVE_INIT_ARGS, Bool, Float, Int,
                      Text, init_args_error, shown)

__all__ = ["validate", "validate_op_node", "spec_model", "json_schema", "node_path_of", "COMMON_KEYS", "CONTAINER_KINDS",
           "INIT_FNS", "MAX_ERRORS", "NAME_RE", "NODE_NAME_RE", "PARAM_TYPES"]

MAX_ERRORS = 20

COMMON_KEYS = ("from", "when", "repeat", "index", "inline", "checkpoint", "doc")
CONTAINER_KINDS = ("seq", "concat", "add", "dense")
PARAM_TYPES = ("int", "float", "number", "bool", "str", "size", "list", "any")
INIT_FNS = tuple(INIT_ARGS)

NAME_RE = re.compile(r"[A-Za-z0-9_]+")  # use with fullmatch: "$" would let a final newline through
#: node names may also hold '-' after the first character (RegNet's ``block1-0``)
NODE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------------------------------
# Small value types that are not op parameters


def _spec_name(value: str) -> str | None:
    """Why ``value`` cannot name a network, or ``None``."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}", value):
        return f"invalid network name {shown(value)}: use letters, digits, '_', '-' and '.' (at most 100)"
    return None


class _Refs(Text):
    """``from:``: one name or a list of names."""

    expected = "a node name or a list of node names"
    json = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}

    def check(self, value: Any) -> Any:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return value
        raise self.fail(value)


class _Identifier(Text):
    def __init__(self, what: str) -> None:
        super().__init__()
        self.expected = what

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value.isidentifier() or not value.isascii() or keyword.iskeyword(value):
            raise self.fail(value)
        return value


class _Literal(Text):
    def __init__(self, *choices: Any) -> None:
        super().__init__()
        self.choices = choices
        shown_choices = [shown(c) for c in choices]
        self.expected = " or ".join(shown_choices) if len(choices) <= 2 else "one of: " + ", ".join(shown_choices)
        self.json = {"enum": list(choices)}

    def check(self, value: Any) -> Any:
        if value not in self.choices or isinstance(value, bool) != isinstance(self.choices[0], bool):
            hint = did_you_mean(value, [str(c) for c in self.choices]) if isinstance(value, str) else None
            raise PydanticCustomError("archspec_value", "expected {expected}, found {found}",
                                      {"expected": self.expected, "found": shown(value), "hint": hint, "why": ""})
        return value


class _Version(_Literal):
    def check(self, value: Any) -> Any:
        if value != 1 or not isinstance(value, int) or isinstance(value, bool):  # not 1.0: a version is a whole number
            raise PydanticCustomError("archspec_value", "unsupported spec format version {found}",
                                      {"expected": "archspec: 1, the format this version of archspec reads",
                                       "found": shown(value), "what": "unsupported spec format version", "why": ""})
        return value


class _InputShape(Text):
    """The input shape: 1 to 4 entries, each a positive integer or an expression of the
    spec's parameters (``[3, $image_size, $image_size]``), evaluated by *resolve*."""

    expected = ("a shape of 1 to 4 positive integers (or expressions of the parameters): [channels, height, width], "
                "[tokens, features] or [features]")
    json = {"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": 1}, EXPRESSION_SCHEMA]},
            "minItems": 1, "maxItems": 4}

    def check(self, value: Any) -> Any:
        if (isinstance(value, list) and 1 <= len(value) <= 4
                and all((isinstance(v, int) and not isinstance(v, bool) and v > 0) or is_expression(v) for v in value)):
            return tuple(value)
        raise self.fail(value)


class _Plain(Text):
    """A spec parameter value: a number, string, boolean, null or a list of them (lists may
    nest: a table of a family's stages is a list of rows)."""

    expected = "a number, string, boolean, null or a list of them"
    json = {"anyOf": [{"type": ["number", "string", "boolean", "null"]},
                      {"type": "array", "items": {"anyOf": [{"type": ["number", "string", "boolean", "null"]},
                                                            {"type": "array"}]}}]}

    def check(self, value: Any) -> Any:
        scalar = (int, float, str, bool, type(None))
        stack = [value]
        while stack:  # no recursion: the YAML depth limit bounds it anyway
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif not isinstance(item, scalar):
                raise self.fail(value)
        return value


class _ParamDecl(Text):
    """A block parameter: a type name (required), a default value, or {type, default, doc}."""

    expected = ("a type name (" + ", ".join(PARAM_TYPES) + ") for a required parameter, a default value, "
                "or {type: ..., default: ..., doc: ...}")
    json = {"anyOf": [
        {"enum": list(PARAM_TYPES)},
        {"type": ["number", "boolean", "null"]},
        {"type": "string"},
        {"type": "array"},
        {"type": "object", "properties": {"type": {"enum": list(PARAM_TYPES)}, "default": {}, "doc": {"type": "string"}},
         "additionalProperties": False},
    ]}

    def check(self, value: Any) -> Any:
        if isinstance(value, dict):
            extra = set(value) - {"type", "default", "doc"}
            if extra:
                key = sorted(extra)[0]
                raise PydanticCustomError("archspec_value", "unknown key '{key}' in a parameter declaration "
                                          "(expected type, default and doc)", {"key": key})
            if "type" in value and value["type"] not in PARAM_TYPES:
                raise PydanticCustomError("archspec_value", "unknown parameter type {t} (expected one of: {types})",
                                          {"t": shown(value["type"]), "types": ", ".join(PARAM_TYPES)})
            if "doc" in value and not isinstance(value["doc"], str):
                raise PydanticCustomError("archspec_value", "a parameter's doc must be a string")
            return value
        return value


class _Requirement(Text):
    """A ``requires:`` item: a distribution name, optionally with a minimum release."""

    expected = "a package name, optionally with a minimum version: 'archspec-mish' or 'archspec-mish>=1.2'"
    json = {"type": "string", "pattern": r"^\s*[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?\s*(>=\s*[0-9]+(\.[0-9]+)*)?\s*$"}

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or ops.parse_requirement(value) is None:
            raise self.fail(value)
        return value


class _OpExpression(Text):
    """``op:`` given by an expression (``$activation``): any op, chosen when it is evaluated."""

    expected = "an expression naming an op"
    json = dict(EXPRESSION_SCHEMA)


Refs = Annotated[Any, _Refs()]


# ---------------------------------------------------------------------------------------
# Nodes


class NodeCommon(_Model):
    """The keys every node may carry."""

    from_: Refs = Field(None, alias="from", description="the node(s) this one reads; default: the node before it")
    when: Annotated[Any, Bool()] = Field(True, description="false: the node is left out (readers read its input)")
    repeat: Annotated[Any, Int(ge=1)] = Field(None, description="make this many copies, in order; the index is `i`")
    index: Annotated[Any, _Identifier("a name for the repeat index")] = Field("i", description="the repeat index's name")
    inline: Annotated[Any, Bool()] = Field(False, description="place a seq's children directly in the enclosing body")
    checkpoint: Annotated[Any, Bool()] = Field(False, description=(
        "true: in training, recompute this block's activations in the backward pass instead of keeping them "
        "(activation checkpointing); for a block instance or a seq/concat/add/dense body"))
    doc: Annotated[Any, Text()] = Field(None, description="a note shown in summaries")


class BlockCommon(_Model):
    """The keys of a block definition beside its body."""

    params: dict[str, Annotated[Any, _ParamDecl()]] = Field(default_factory=dict, description="the block's parameters")
    doc: Annotated[Any, Text()] = None


class _Invalid(BaseModel):
    """A tagged member that always fails, to give a union a specific message."""

    model_config = ConfigDict(extra="allow", json_schema_extra=lambda schema: _matches_nothing(schema))

    @model_validator(mode="before")
    @classmethod
    def _fail(cls, value: Any) -> Any:
        raise _invalid_node_error(value)


def _matches_nothing(schema: dict) -> None:
    """The JSON Schema of an always-failing union member: it matches nothing."""
    schema.clear()
    schema["not"] = {}


def _invalid_node_error(value: Any) -> PydanticCustomError:
    if not isinstance(value, dict):
        return PydanticCustomError(
            "archspec_node", "expected a node (a mapping with one of op, use, seq, concat, add, dense; or a list), found {found}",
            {"found": shown(value)})
    kinds = [k for k in NODE_KIND_KEYS if k in value]
    if len(kinds) > 1:
        return PydanticCustomError("archspec_node", "a node has exactly one of op, use, seq, concat, add, dense; found {kinds}",
                                   {"kinds": " and ".join(kinds)})
    if not kinds:
        keys = ", ".join(str(k) for k in value) or "none"
        return PydanticCustomError(
            "archspec_node", "this node says neither what it computes nor what it contains (keys: {keys})",
            {"keys": keys, "expected": "one of op, use, seq, concat, add, dense"})
    op = value.get("op")
    if not isinstance(op, str):
        return PydanticCustomError("archspec_node", "'op' must name an op, found {found}", {"found": shown(op)})
    hint = did_you_mean(op, ops.names()) or _NOT_INSTALLED
    return PydanticCustomError("archspec_unknown_op", "unknown op '{op}' (expected {known}){hint}",
                               {"op": op, "known": ops.known(), "hint": f"; {hint}" if hint else ""})


_NOT_INSTALLED = ("an op from a package needs that package installed; name it under 'requires:' so that a missing one "
                  "is reported as such")


def _node_tag(value: Any) -> str:
    if isinstance(value, list):
        return "<list>"
    if not isinstance(value, dict):
        return "<invalid>"
    kinds = [k for k in NODE_KIND_KEYS if k in value]
    if len(kinds) != 1:
        return "<invalid>"
    if kinds[0] == "op":
        op = value["op"]
        if is_expression(op):
            return "<op-expr>"
        return f"<op:{op}>" if isinstance(op, str) and op in ops.REGISTRY else "<invalid>"
    return f"<{kinds[0]}>"


def _body_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "<map>"
    if isinstance(value, list):
        return "<list>"
    return "<invalid>"


class _InvalidBody(BaseModel):
    model_config = ConfigDict(json_schema_extra=lambda schema: _matches_nothing(schema))

    @model_validator(mode="before")
    @classmethod
    def _fail(cls, value: Any) -> Any:
        raise PydanticCustomError("archspec_value", "expected a body: a mapping of named nodes or a list of nodes, found {found}",
                                  {"found": shown(value)})


class _UseArgs(_Model):
    model_config = ConfigDict(extra="allow", populate_by_name=True, json_schema_extra={
        "additionalProperties": {"anyOf": [{"type": ["number", "string", "boolean", "null"]}, {"type": "array"}]}})


def _op_model(op: ops.OpDef, base: type[BaseModel], suffix: str) -> type[BaseModel]:
    clash = sorted(set(op.params.model_fields) & {*COMMON_KEYS, "op", "use", "params", *CONTAINER_KINDS})
    if clash:  # a registration mistake, not a spec's: the key would mean two things in a node
        raise ValueError(f"op '{op.name}' has a parameter named '{clash[0]}', which every node uses for itself; rename it")
    namespace = {
        "__annotations__": {"op": Literal[op.name]},
        "op": Field(..., description=op.doc.split("\n\n")[0].replace("\n", " ")),
        # built now (the op's params model defers its own build): the spec models reuse it
        "model_config": ConfigDict(extra="forbid", populate_by_name=True, validate_default=False, frozen=False,
                                   title=f"{op.name} {suffix}", defer_build=False),
        "__module__": __name__,
        "__doc__": op.doc,
    }
    return type(f"{camel_case(op.name, 'Op')}{suffix.title()}", (base, op.params), namespace)


_CACHE: dict[str, Any] = {}


def _current() -> dict[str, Any]:
    """The cache, emptied when the op registry has changed since it was filled."""
    if _CACHE.get("version") != ops.version():
        _CACHE.clear()
        _CACHE["version"] = ops.version()
        _CACHE["op_nodes"], _CACHE["op_blocks"] = {}, {}
    return _CACHE


def op_model(name: str, block: bool = False) -> type[BaseModel]:
    """The model of a node (or block definition) of the op ``name`` (built once, on first use)."""
    cache = _current()["op_blocks" if block else "op_nodes"]
    if name not in cache:
        cache[name] = _op_model(ops.REGISTRY[name], BlockCommon if block else NodeCommon, "block" if block else "node")
    return cache[name]


def spec_model(used: Any = None) -> type[BaseModel]:
    """The pydantic model of a whole spec, built from the op registry (and cached).

    With ``used`` (op names), a model whose op nodes cover at least those ops may do:
    building the members of every op costs far more than validating a spec, and a spec
    names a few ops. Nodes of the covered ops validate exactly as in the whole model (the
    same member models, tags and messages); a spec naming only covered ops cannot tell
    the difference. Without ``used``, every op is covered (the JSON Schema needs that).
    """
    cache = _current()
    want = frozenset(ops.REGISTRY) if used is None else frozenset(n for n in used if n in ops.REGISTRY)
    have = cache.get("covered")
    if have is None or not want <= have:
        covered = want | (have or frozenset())  # grows, so that a run over many specs builds it a few times
        cache["spec"] = _build_models(covered)
        cache["covered"] = covered
    return cache["spec"]


def _ops_named(data: Any) -> set[str]:
    """Every string under an ``op`` key anywhere in ``data`` (the ops a spec may name), and
    the ops its init rules name."""
    found: set[str] = set()
    rules = data.get("init") if isinstance(data, dict) else None
    for rule in rules if isinstance(rules, list) else ():
        names = rule.get("ops") if isinstance(rule, dict) else None
        if isinstance(names, list):
            found.update(n for n in names if isinstance(n, str))
    stack = [data]
    while stack:  # no recursion: the YAML depth limit bounds it anyway
        item = stack.pop()
        if isinstance(item, dict):
            op = item.get("op")
            if isinstance(op, str):
                found.add(op)
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))
    return found


def _build_models(covered: frozenset[str]) -> type[BaseModel]:
    names = sorted(covered)
    op_nodes = {name: op_model(name) for name in names}
    op_blocks = {name: op_model(name, block=True) for name in names}

    class OpExprNode(NodeCommon, _UseArgs):
        """A node whose op is chosen by an expression (`op: $activation`); its other keys are
        checked against that op once the expression is evaluated."""

        op: Annotated[Any, _OpExpression()]

    class OpExprBlock(BlockCommon, _UseArgs):
        op: Annotated[Any, _OpExpression()]

    class UseNode(NodeCommon, _UseArgs):
        """An instance of a block: `use: <block>` and the block's arguments."""

        use: Annotated[Any, Text()]

    class SeqNode(NodeCommon):
        """Children in order, each reading the one before it (or what its `from` names)."""

        seq: "Body"

    class ConcatNode(NodeCommon):
        """Parallel branches on the same input, concatenated on channels."""

        concat: "Body"

    class AddNode(NodeCommon):
        """Parallel branches on the same input, summed (a residual connection)."""

        add: "Body"

    class DenseNode(NodeCommon):
        """Dense connectivity: each child reads the concat of the input and every earlier child's output."""

        dense: "Body"

    class UseBlock(BlockCommon, _UseArgs):
        use: Annotated[Any, Text()]

    class SeqBlock(BlockCommon):
        seq: "Body"

    class ConcatBlock(BlockCommon):
        concat: "Body"

    class AddBlock(BlockCommon):
        add: "Body"

    class DenseBlock(BlockCommon):
        dense: "Body"

    node_members = [Annotated[m, Tag(f"<op:{n}>")] for n, m in op_nodes.items()] + [
        Annotated[OpExprNode, Tag("<op-expr>")],
        Annotated[UseNode, Tag("<use>")], Annotated[SeqNode, Tag("<seq>")], Annotated[ConcatNode, Tag("<concat>")],
        Annotated[AddNode, Tag("<add>")], Annotated[DenseNode, Tag("<dense>")],
        Annotated[list["Node"], Tag("<list>")], Annotated[_Invalid, Tag("<invalid>")],
    ]
    Node = TypeAliasType("Node", Annotated[Union[tuple(node_members)], Discriminator(_node_tag)])  # type: ignore[misc]
    Body = TypeAliasType("Body", Annotated[Union[  # type: ignore[misc]
        Annotated[dict[str, Node], Tag("<map>")], Annotated[list[Node], Tag("<list>")], Annotated[_InvalidBody, Tag("<invalid>")],
    ], Discriminator(_body_tag)])
    block_members = [Annotated[m, Tag(f"<op:{n}>")] for n, m in op_blocks.items()] + [
        Annotated[OpExprBlock, Tag("<op-expr>")],
        Annotated[UseBlock, Tag("<use>")], Annotated[SeqBlock, Tag("<seq>")], Annotated[ConcatBlock, Tag("<concat>")],
        Annotated[AddBlock, Tag("<add>")], Annotated[DenseBlock, Tag("<dense>")], Annotated[_Invalid, Tag("<invalid>")],
    ]
    Block = Annotated[Union[tuple(block_members)], Discriminator(_block_tag)]  # type: ignore[misc]
    namespace = {"Body": Body, "Node": Node}
    for model in (SeqNode, ConcatNode, AddNode, DenseNode, SeqBlock, ConcatBlock, AddBlock, DenseBlock):
        model.model_rebuild(_types_namespace=namespace)

    class Output(_Model):
        """A named output of the network."""

        node: Annotated[Any, Text()] = Field(description="the node (or block) whose value this output is, by dotted path")
        training_only: Annotated[Any, Bool()] = Field(False, description="computed and returned only in train() mode")
        loss_weight: Annotated[Any, Float(ge=0)] = Field(
            None, description="the weight of this output's loss in model.loss() (default 1 for the main output, 0 otherwise)")

    InitValue = Annotated[Any, _InitValue(InitFn)]

    class InitRule(_Model):
        """Set parameters of the nodes this rule selects (by op and/or path; rules apply in order)."""

        ops: list[Annotated[Any, _OpName()]] = Field(None, description="select nodes of these ops")
        paths: list[Annotated[Any, Text()]] = Field(None, description="select nodes by dotted path, with * and ? wildcards")
        weight: InitValue = None
        bias: InitValue = None

        @model_validator(mode="after")
        def _selects_and_sets(self) -> "InitRule":
            if self.ops is None and self.paths is None:
                raise PydanticCustomError("archspec_value", "an init rule needs 'ops' or 'paths' to select nodes")
            if self.weight is None and self.bias is None:
                raise PydanticCustomError("archspec_value", "an init rule needs 'weight' or 'bias' to set")
            return self

    class KeyRule(_Model):
        """Rename checkpoint keys written for another layout: keys the model lacks are
        rewritten by the first rule whose ``match`` (a regular expression) they match, with
        ``re.sub`` and ``replace`` (``\\1`` or ``\\g<name>`` refer to groups)."""

        match: Annotated[Any, Text(_regex_problem)] = Field(description="a regular expression (Python re) for keys to rename")
        replace: Annotated[Any, Text(_replace_problem)] = Field(description="what a matching part becomes; \\1, \\g<name>: its groups")

        @model_validator(mode="after")
        def _groups_exist(self) -> "KeyRule":
            problem = _template_problem(self.match, self.replace)
            if problem:
                raise PydanticCustomError("archspec_value", problem)
            return self

    class Spec(_Model):
        """An archspec network spec."""

        model_config = ConfigDict(extra="forbid", populate_by_name=True, title="archspec spec",
                                  json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"})

        archspec: Annotated[Any, _Version(1)] = Field(description="the spec format version (1)")
        name: Annotated[Any, Text(_spec_name)] = Field(description="the network's name: letters, digits, '_', '-', '.'")
        description: Annotated[Any, Text()] = Field(None, description="one line: what the network is")
        extends: Annotated[Any, Text()] = Field(None, description="a base spec this one is merged over (a path relative to this file)")
        requires: list[Annotated[Any, _Requirement()]] = Field(
            default_factory=list, description="the packages whose ops this spec uses (names as pip installs them, "
                                              "optionally with '>=' a version)")
        input: Annotated[Any, _InputShape()] = Field(description="the input shape per sample: [channels, height, width] (or "
                                                                  "[tokens, features], [features])")
        params: dict[str, Annotated[Any, _Plain()]] = Field(default_factory=dict, description="the spec's parameters and their defaults")
        blocks: dict[str, Block] = Field(default_factory=dict, description="parameterised templates, used by `use:`")
        graph: dict[str, Node] = Field(description="the network's nodes, in order")
        outputs: dict[str, Annotated[Union[Annotated[Any, Text(), Tag("<path>")], Annotated[Output, Tag("<output>")]],
                                     Discriminator(_output_tag)]] = Field(
            None, description="named outputs (default: the last node)")
        init: list[InitRule] = Field(default_factory=list, description="weight initialisation rules, applied in order")
        checkpoint_keys: list[KeyRule] = Field(default_factory=list, description=(
            "rules that rename the keys of checkpoints written for another layout, tried in order on keys the model lacks"))

    _CACHE["models"] = {"Node": Node, "Body": Body, "InitRule": InitRule, "Output": Output, "InitFn": InitFn}
    return Spec


def _regex_problem(text: str) -> str | None:
    if len(text) > 200:
        return f"the regular expression is {len(text):,} characters long; at most 200"
    try:
        re.compile(text)
    except re.error as e:
        return f"'{text}' is not a regular expression (Python re): {e}"
    except RecursionError:
        return "the regular expression nests too deeply"
    if _nested_repeat(sre_parse.parse(text)):
        # (a+)+ and its kind backtrack exponentially on a near miss: a spec must not be able to hang a load
        return (f"'{text}' repeats a repeated part (such as '(a+)+'), which can take exponential time; "
                "write it without the nested repetition")
    return None


def _nested_repeat(parsed: Any, inside: bool = False) -> bool:
    """Whether a parsed pattern has an unbounded repeat inside another repeat."""
    for op, arg in parsed:
        if op in _REPEATS:
            low, high, body = arg
            unbounded = high == sre_constants.MAXREPEAT or high > 10
            if unbounded and inside:
                return True
            if _nested_repeat(body, inside or unbounded):
                return True
        elif op is sre_constants.SUBPATTERN:
            if _nested_repeat(arg[-1], inside):
                return True
        elif op is sre_constants.BRANCH:
            if any(_nested_repeat(branch, inside) for branch in arg[1]):
                return True
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            if _nested_repeat(arg[1], inside):
                return True
    return False


_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}


def _replace_problem(text: str) -> str | None:
    return f"'replace' is {len(text):,} characters long; at most 200" if len(text) > 200 else None


def _template_problem(match: str, replace: str) -> str | None:
    """What is wrong with ``replace`` as an ``re.sub`` template for ``match``, if anything."""
    try:
        re.compile(match).sub(replace, "")  # Python checks the template (escapes, group references) here
    except (re.error, IndexError) as e:  # IndexError: an unknown group name
        return f"'replace' '{replace}' does not fit 'match' '{match}': {e}"
    return None


def _output_tag(value: Any) -> str:
    return "<output>" if isinstance(value, dict) else "<path>"


def _block_tag(value: Any) -> str:
    tag = _node_tag(value)
    return "<invalid>" if tag == "<list>" else tag


class _OpName(Text):
    expected = "the name of an op"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or value not in ops.REGISTRY:
            hint = did_you_mean(value, ops.names()) if isinstance(value, str) else None
            raise PydanticCustomError("archspec_value", "unknown op {found}",
                                      {"found": shown(value), "expected": ops.known(), "hint": hint,
                                       "why": "", "what": "unknown op"})
        return value


class _InitFnChecks(_Model):
    @model_validator(mode="after")
    def _args_fit(self) -> "_InitFnChecks":
        error = init_args_error(self.fn, {name: getattr(self, name) for name in INIT_FIELDS if getattr(self, name) is not None})
        if error is not None:  # (with expressions, resolve checks the evaluated values)
            raise error
        return self


def _init_arg_type(name: str) -> Any:
    if name in INIT_WORDS:
        return Annotated[Any, _Literal(*INIT_WORDS[name])]
    return Annotated[Any, Float(gt=0) if name in POSITIVE_INIT_ARGS else Float()]


#: an initialiser: ``fn`` and its arguments (those of the torch.nn.init function of that name),
#: its fields from the table in :mod:`._values`
InitFn = type("InitFn", (_InitFnChecks,), {
    "__annotations__": {"fn": Annotated[Any, _Literal(*INIT_FNS)], **{name: _init_arg_type(name) for name in INIT_FIELDS}},
    **dict.fromkeys(INIT_FIELDS), "__module__": __name__,
    "__doc__": "An initialiser: `fn` and its arguments (those of the torch.nn.init function of that name)."})


class _InitValue(Float):
    """A number (a constant) or an initialiser {fn: ..., ...}."""

    def __init__(self, fn_model: type[BaseModel]) -> None:
        super().__init__()
        self.fn_model = fn_model
        self.expected = "a number (a constant) or an initialiser {fn: ...}"

    def check(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self.fn_model.model_validate(value)
        return super().check(value)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict:
        return {"anyOf": [{"type": "number"}, EXPRESSION_SCHEMA, {
            "type": "object", "required": ["fn"], "additionalProperties": False,
            "properties": {"fn": {"enum": list(INIT_FNS)}, **{k: {"type": "number"} for k in NUMBER_INIT_ARGS},
                           **{k: {"enum": list(words)} for k, words in INIT_WORDS.items()}}}]}


# ---------------------------------------------------------------------------------------
# Validation with located errors


def validate(doc: Document) -> Any:
    """Validate a loaded document; raise located :class:`SpecError` s for every problem.

    First the packages of ``requires:`` are looked up (metadata only), and ops the spec
    names that are not registered are looked for among the installed packages' entry
    points (:func:`archspec.ops.ensure_ops`): a spec of built-in ops loads none."""
    missing, installed = _requirements(doc)
    named = _ops_named(doc.data)
    unknown = sorted(n for n in named if n not in ops.REGISTRY and not is_expression(n))
    if unknown:
        ops.ensure_ops(unknown, installed)
    model = spec_model(named)
    try:
        spec = model.model_validate(doc.data)
        errors: list[SpecError] = []
    except ValidationError as e:
        errors = _translate(e, doc)
    if missing:
        packages = " ".join(dist for _, dist in missing)
        for err in errors:
            if err.message.startswith("unknown op"):
                named_too = f"; or {err.hint}" if err.hint and err.hint.startswith("did you mean") else ""
                err.hint = (f"it may come from a package this spec requires that is not installed: pip install {packages}"
                            + named_too)
        errors = [err for err, _ in missing] + errors
    if not errors:
        return spec
    errors.sort(key=lambda err: (err.loc.file, err.loc.line, err.loc.col) if err.loc else ("", 0, 0))
    raise_collected(errors, MAX_ERRORS)


def _requirements(doc: Document) -> tuple[list[tuple[SpecError, str]], list[str]]:
    """The packages of ``requires:`` that are missing (an error at each, with the name) and
    those installed. Reads their metadata only: nothing is imported. Items that are not
    package names are left to the schema."""
    data = doc.data.get("requires") if isinstance(doc.data, dict) else None
    missing: list[tuple[SpecError, str]] = []
    installed: list[str] = []
    for i, item in enumerate(data if isinstance(data, list) else []):
        parsed = ops.parse_requirement(item) if isinstance(item, str) else None
        if parsed is None:
            continue
        dist, least = parsed
        version = ops.installed_version(dist)
        loc = doc.locs.value(("requires", i))
        if version is None:
            missing.append((SpecReferenceError(f"this spec needs the package '{dist}', which is not installed", loc,
                                               hint=f"install it: pip install {dist}"), dist))
        elif least is not None and not ops.version_at_least(version, least):
            missing.append((SpecReferenceError(f"this spec needs {dist}>={least}, but {dist} {version} is installed", loc,
                                               hint=f"upgrade it: pip install -U '{dist}>={least}'"), f"'{dist}>={least}'"))
        else:
            installed.append(dist)
    return missing, installed


def validate_op_node(doc: Document, raw: tuple, op: str, block: bool = False) -> Any:
    """Check the node at ``raw`` (whose ``op`` is an expression that evaluated to ``op``)
    against that op's model; raise located :class:`SpecError` s as :func:`validate` does."""
    model = op_model(op, block)
    data: Any = doc.data
    for key in raw:
        data = data[key]
    try:
        return model.model_validate({**data, "op": op})
    except ValidationError as e:
        errors = _translate(e, doc, prefix=raw, op=op)
    raise_collected(errors, MAX_ERRORS)


def _translate(exc: ValidationError, doc: Document, prefix: tuple = (), op: str | None = None) -> list[SpecError]:
    seen: set[tuple] = set()
    out: list[SpecError] = []
    errors = [(err, *_raw_path(doc.data, prefix + tuple(err["loc"]))) for err in exc.errors(include_url=False)]
    # a misspelt key reports as "unknown key" *and* "missing key"; keep the first only
    misspelt = set()
    for err, path, _ in errors:
        if err["type"] == "extra_forbidden":
            what, known = _context(doc, path[:-1], op)
            for guess in difflib.get_close_matches(str(path[-1]), known, n=1, cutoff=0.6):
                misspelt.add(path[:-1] + (guess,))
            if _TORCH_NAMES.get(str(path[-1])) in known:
                misspelt.add(path[:-1] + (_TORCH_NAMES[str(path[-1])],))
    for err, path, raw in errors:
        if err["type"] == "missing" and path in misspelt:
            continue
        # a failure inside a nested init function arrives as a ValidationError message; keep it short
        key = (path, err["type"], err["msg"])
        if key in seen:
            continue
        seen.add(key)
        out.append(_one_error(err, path, raw, doc, op))
    return out


def _raw_path(data: Any, loc: tuple) -> tuple[tuple, Any]:
    """The path into the raw data that a pydantic error location names (tags skipped)."""
    path: list = []
    node = data
    for item in loc:
        if isinstance(node, dict) and isinstance(item, str) and item in node:
            path.append(item)
            node = node[item]
        elif isinstance(node, dict) and item == "from_" and "from" in node:
            path.append("from")
            node = node["from"]
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            path.append(item)
            node = node[item]
        elif isinstance(node, dict) and isinstance(item, str) and not item.startswith("<") and item not in node:
            # a key that is not there: 'extra' errors name the key, 'missing' errors too
            path.append(item)
            node = _MISSING
        # union tags and pydantic's own type labels are skipped
    return tuple(path), node


_MISSING = object()


def node_path_of(data: Any, path: tuple) -> str | None:
    """The node path (``features.denseblock1.denselayer2``) that a data path lies in."""
    if not path:
        return None
    head = path[0]
    if head == "init" and len(path) > 1:
        return f"init rule {path[1] + 1 if isinstance(path[1], int) else path[1]}"
    if head == "checkpoint_keys" and len(path) > 1:
        return f"checkpoint_keys rule {path[1] + 1 if isinstance(path[1], int) else path[1]}"
    if head == "outputs" and len(path) > 1:
        return f"output {path[1]}"
    if head == "params" and len(path) > 1:
        return f"param {path[1]}"
    if head == "graph":
        names, rest, node = [], path[1:], data.get("graph") if isinstance(data, dict) else None
        prefix = ""
        in_body = True
    elif head == "blocks" and len(path) > 1:
        blocks = data.get("blocks") if isinstance(data, dict) else None
        node = blocks.get(path[1]) if isinstance(blocks, dict) else None
        names, rest, prefix, in_body = [], path[2:], f"block '{path[1]}'", False
    else:
        return None
    # walk: in a body the next item names a child; in a node it is a key (a container's body or a field)
    for item in rest:
        if in_body:
            names.append(str(item))
            node = node[item] if isinstance(node, (dict, list)) and _has(node, item) else None
            in_body = isinstance(node, list)
            continue
        if isinstance(node, dict) and item in CONTAINER_KINDS:
            node = node.get(item)
            in_body = True
            continue
        break
    inner = ".".join(names)
    if prefix:
        return f"{prefix} at {inner}" if inner else prefix
    return inner or None


def _has(container: Any, item: Any) -> bool:
    if isinstance(container, dict):
        return item in container
    return isinstance(item, int) and 0 <= item < len(container)


def _context(doc: Document, path: tuple, op: str | None = None) -> tuple[str, list[str]]:
    """What kind of mapping ``path`` (a key's parent) is, and the keys it may hold (``op``:
    the op an ``op:`` expression evaluated to, for a node whose op is an expression)."""
    raw: Any = doc.data
    for p in path:
        raw = raw[p] if isinstance(raw, (dict, list)) else None
    if not path:
        return "the spec", list(spec_model(()).model_fields)
    head = path[0]
    if head == "init":
        if len(path) == 2:
            return "an init rule", ["ops", "paths", "weight", "bias"]
        if isinstance(raw, dict) and "fn" in raw and raw["fn"] in INIT_ARGS:
            return f"the initialiser '{raw['fn']}'", ["fn", *INIT_ARGS[raw["fn"]]]
        return "an initialiser", ["fn", *INIT_FIELDS]
    if head == "outputs":
        return "an output", ["node", "training_only", "loss_weight"]
    if head == "checkpoint_keys":
        return "a checkpoint_keys rule", ["match", "replace"]
    is_block = head == "blocks" and len(path) == 2
    extra = ["params", "doc"] if is_block else list(COMMON_KEYS)
    if isinstance(raw, dict):
        name = op if op is not None and is_expression(raw.get("op")) else raw.get("op")
        if isinstance(name, str) and name in ops.REGISTRY:
            fields = ops.REGISTRY[name].params.model_fields
            return f"a{'n' if name[0] in 'aeiou' else ''} {name} {'block' if is_block else 'node'}", ["op", *fields, *extra]
        for kind in CONTAINER_KINDS:
            if kind in raw:
                return f"a {kind} {'block' if is_block else 'node'}", [kind, *extra]
    return ("a block" if is_block else "a node"), [*NODE_KIND_KEYS, *extra]


# PyTorch's argument names, which people write from habit
_TORCH_NAMES = {"out_channels": "out", "out_features": "out", "kernel_size": "kernel", "output_size": "size"}
_INFERRED = ("in_channels", "in_features", "num_features")


def _torch_name_hint(key: str, known: list[str]) -> str | None:
    if key in _INFERRED:
        return f"'{key}' is never written: archspec infers it from the node's input shape"
    ours = _TORCH_NAMES.get(key)
    if ours and ours in known:
        return f"archspec calls PyTorch's '{key}' '{ours}'"
    return None


def _one_error(err: dict, path: tuple, raw: Any, doc: Document, op: str | None = None) -> SpecError:
    etype = err["type"]
    node = node_path_of(doc.data, path)
    locs = doc.locs
    if etype == "extra_forbidden":
        key = path[-1]
        what, known = _context(doc, path[:-1], op)
        return SpecSchemaError(
            f"unknown key '{key}' for {what}", locs.key(path), node=node,
            expected="one of: " + name_list(known, 20), hint=_torch_name_hint(str(key), known) or did_you_mean(str(key), known),
        )
    if etype == "missing":
        key = path[-1]
        what, _ = _context(doc, path[:-1], op)
        hint = "a spec starts with 'archspec: 1', the format version" if path == ("archspec",) else None
        return SpecSchemaError(f"missing key '{key}' for {what}", locs.key(path[:-1]) if path[:-1] else locs.value(()), node=node,
                               hint=hint)
    ctx = err.get("ctx") or {}
    if etype in ("archspec_value", "archspec_node", "archspec_unknown_op"):
        loc = locs.value(path)
        if etype == "archspec_unknown_op":
            loc = locs.value(path + ("op",))
        message = err["msg"]
        expected = None
        hint = None
        if etype == "archspec_value" and "expected" in ctx and "found" in ctx:
            message = f"found {ctx['found']}{ctx.get('why', '')}"
            expected = ctx["expected"]
            hint = ctx.get("hint")
            key = path[-1] if path else None
            if "what" in ctx:
                message = f"{ctx['what']} {ctx['found']}"
            elif isinstance(key, str):
                message = f"'{key}': " + message
                if key == "repeat" and not hint and isinstance(raw, (int, float)) and raw <= 0:
                    hint = "to leave a node out, use 'when: false'"
            if not hint and (is_expression(raw) or isinstance(raw, list) and any(is_expression(v) for v in raw)):
                hint = (f"'{key}' cannot be an expression: it is read as it is written, before any parameter is known"
                        if isinstance(key, str) else "this value cannot be an expression: it is read as it is written")
                if path == ("input",):
                    hint += "; give another input with --input C,H,W or compile_spec(..., input_shape=...)"
        elif etype == "archspec_unknown_op":
            message = f"unknown op '{ctx['op']}'"
            expected = ctx["known"]
            hint = ctx["hint"][2:] if ctx["hint"] else None
        elif "expected" in ctx:
            expected = ctx["expected"]
        return SpecSchemaError(message, loc, node=node, expected=expected, hint=hint)
    if etype in ("dict_type", "model_type", "model_attributes_type"):
        return SpecSchemaError(f"found {shown(raw)}", locs.value(path), node=node, expected=_expected_container(path))
    if etype in ("list_type",):
        return SpecSchemaError(f"found {shown(raw)}", locs.value(path), node=node, expected="a list")
    if etype in ("string_type",):
        return SpecSchemaError(f"'{path[-1]}': found {shown(raw)}", locs.value(path), node=node, expected="a string")
    if etype == "value_error" or etype.startswith("assertion"):
        return SpecSchemaError(err["msg"].removeprefix("Value error, "), locs.value(path), node=node)
    return SpecSchemaError(f"{err['msg']} (found {shown(raw) if raw is not _MISSING else 'nothing'})", locs.value(path), node=node)


def _expected_container(path: tuple) -> str:
    if not path:
        return "a mapping"
    last = path[-1]
    return {
        "params": "a mapping of parameter names to values",
        "blocks": "a mapping of block names to block definitions",
        "graph": "a mapping of node names to nodes",
        "outputs": "a mapping of output names to node paths",
        "init": "a list of init rules",
        "checkpoint_keys": "a list of {match, replace} rules",
    }.get(str(last), "a mapping")


def json_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of the spec language: the built-in ops, those
    registered from Python and those of every installed package (their entry points are
    loaded)."""
    ops.load_plugins()
    schema = spec_model().model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    # A variant (a file with `extends`) is merged over its base before it is checked, so on
    # its own it may leave out what the base provides and hold partial nodes (`{kernel: 3}`
    # changes one setting of a base node) and nulls (removals): for a variant, the schema
    # checks the top level and leaves node contents to `archspec validate`.
    props = schema["properties"]
    strict = {key: props[key] for key in ("graph", "blocks", "outputs")}
    for key, sub in strict.items():
        props[key] = {k: sub[k] for k in ("title", "description", "type") if k in sub}
    partial = {"anyOf": [{"type": "object"}, {"type": "null"}], "description": "merged over the base's entry; null removes it"}
    required = schema.pop("required", [])
    schema["required"] = ["archspec", "name"]
    schema["if"] = {"required": ["extends"]}
    schema["then"] = {"properties": {key: {"additionalProperties": partial} for key in ("graph", "blocks")}
                      | {"outputs": {"additionalProperties": {"anyOf": [strict["outputs"]["additionalProperties"],
                                                                         {"type": "null"}]}}}}
    schema["else"] = {"required": sorted(set(required) - {"archspec", "name"}), "properties": strict}
    return schema
