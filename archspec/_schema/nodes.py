"""The models of nodes and block definitions: the keys every node carries, one model
per op (generated from its registry entry, built on first use and cached until the registry
changes), and the union members that fail with a specific message.

What it deliberately does not do: tie the members into the unions of a whole spec (that is
:mod:`.spec`, which knows which ops a spec names).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .. import ops
from .._errors import camel_case
from .._expr import is_expression
from .._load import NODE_KIND_KEYS
from .._values import Bool, Int, Text, shown
from .key_types import COMMON_KEYS, CONTAINER_KINDS, InputNames, Refs, _Identifier, _ParamDecl


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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


class ContainerBlockCommon(BlockCommon):
    """The keys of a block whose body is a ``seq``, ``concat``, ``add`` or ``dense``."""

    inputs: InputNames = Field(None, description=(
        "the names the body reads its inputs by, bound in order to a use's `from` (default: one, `input`)"))


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
    hint = ops.unknown_hint(op)
    return PydanticCustomError("archspec_unknown_op", "unknown op '{op}' (expected {known}){hint}",
                               {"op": op, "known": ops.known(), "hint": f"; {hint}" if hint else ""})


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


def _block_tag(value: Any) -> str:
    tag = _node_tag(value)
    return "<invalid>" if tag == "<list>" else tag
