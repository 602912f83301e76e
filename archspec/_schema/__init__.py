"""Stage 2, validate: the pydantic models of the spec language, and located errors.

The models say exactly which keys exist where (``extra="forbid"`` throughout) and which
values they take; the value types (:mod:`archspec._values`) accept a literal or an expression.
Op nodes are generated from the op registry, so an op's parameters are declared once, in
its registry entry. :func:`validate` turns pydantic's errors into :class:`SpecError` s that
point at the offending key or value in the YAML, with the keys that would have been right.

What it deliberately does not do: resolve names (blocks, ``from:``), evaluate
expressions or check shapes; those are the next stages.

The language, in short (see docs/language.md for the reference)::

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

The package, by job: :mod:`.key_types` (the keys' own value types and the language's
word lists), :mod:`.nodes` (the node and block models, one per op, built on first use),
:mod:`.rules` (outputs, init rules, checkpoint key rules), :mod:`.patterns` (the checks of
those rules' regular expressions), :mod:`.spec` (the whole spec's model),
:mod:`.validation` (:func:`validate` and the ``requires:`` look-up), :mod:`.translate`
(pydantic's errors as located :class:`SpecSchemaError` s) and :mod:`.json_export` (the
JSON Schema that editors read).
"""

from .json_export import json_schema
from .key_types import COMMON_KEYS, CONTAINER_KINDS, MAX_ERRORS, NAME_RE, NODE_NAME_RE, PARAM_TYPES
from .spec import spec_model
from .translate import node_path_of
from .validation import validate, validate_op_node

__all__ = ["validate", "validate_op_node", "spec_model", "json_schema", "node_path_of", "COMMON_KEYS", "CONTAINER_KINDS",
           "MAX_ERRORS", "NAME_RE", "NODE_NAME_RE", "PARAM_TYPES"]
