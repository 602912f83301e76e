"""The model of a whole spec, built from the op registry: the unions of nodes and
block definitions (tagged by what a node says it is, so that a wrong node gets one message),
tied to the top-level keys.

What it deliberately does not do: build every op's member when a spec names a few
(:func:`spec_model` covers what it is asked to, and grows), or report errors (that is
:mod:`.translate`).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from typing_extensions import TypeAliasType

from .. import ops
from .._values import Text
from .key_types import _InputShape, _Literal, _OpExpression, _Plain, _Requirement, _spec_name, _Version
from .nodes import (BlockCommon, ContainerBlockCommon, NodeCommon, _Invalid, _InvalidBody, _Model, _UseArgs, _block_tag, _body_tag,
                     _current, _node_tag, op_model)
from .rules import Extends, InitRule, KeyRule, Output, _output_tag


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


def _build_models(covered: frozenset[str]) -> type[BaseModel]:
    """The spec model whose node and block unions have a member for each op of ``covered``."""
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

    class SeqBlock(ContainerBlockCommon):
        seq: "Body"

    class ConcatBlock(ContainerBlockCommon):
        concat: "Body"

    class AddBlock(ContainerBlockCommon):
        add: "Body"

    class DenseBlock(ContainerBlockCommon):
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

    class Spec(_Model):
        """An archspec network spec."""

        model_config = ConfigDict(extra="forbid", populate_by_name=True, title="archspec spec",
                                  json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"})

        archspec: Annotated[Any, _Version(1)] = Field(description="the spec format version (1)")
        name: Annotated[Any, Text(_spec_name)] = Field(description="the network's name: letters, digits, '_', '-', '.'")
        description: Annotated[Any, Text()] = Field(None, description="one line: what the network is")
        extends: Union[Annotated[Any, Text()], Extends] = Field(None, description=(
            "a base spec this one is merged over (a path relative to this file), or {spec: base, nest: node}: the base "
            "nested as one node of this graph"))
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
        returns: Annotated[Any, _Literal("tuple", "dict")] = Field("tuple", description=(
            "how the forward returns its outputs: 'tuple' (one tensor, or a named tuple of several) or 'dict' (an "
            "OrderedDict by output name, in order, even of one, as torchvision's segmentation models return)"))
        init: list[InitRule] = Field(default_factory=list, description="weight initialisation rules, applied in order")
        checkpoint_keys: list[KeyRule] = Field(default_factory=list, description=(
            "rules that rename the keys of checkpoints written for another layout, tried in order on keys the model lacks"))

    return Spec
