"""The models of a spec's sections beside its nodes: outputs, init rules (with their
initialisers, whose fields come from the table in :mod:`archspec._init_fns`) and the
checkpoint key rules.

What it deliberately does not do: evaluate the expressions an initialiser may hold (resolve
checks their values with the same :func:`~archspec._init_fns.init_args_error`), or check that
an init rule's ops or paths select anything.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError
from .._init_fns import INIT_ARGS, INIT_FIELDS, INIT_WORDS, POSITIVE_INIT_ARGS, init_args_error, initialiser_json

from .._values import EXPRESSION_SCHEMA, Bool, Float, Text
from .key_types import _Literal, _OpName
from .nodes import _Model
from .patterns import _regex_problem, _replace_problem, _template_problem


class Output(_Model):
    """A named output of the network."""

    node: Annotated[Any, Text()] = Field(description="the node (or block) whose value this output is, by dotted path")
    training_only: Annotated[Any, Bool()] = Field(False, description="computed and returned only in train() mode")
    loss_weight: Annotated[Any, Float(ge=0)] = Field(
        None, description="the weight of this output's loss in model.loss() (default 1 for the main output, 0 otherwise)")


class _InitFnChecks(_Model):
    """What :class:`InitFn` checks of its arguments together, once each has passed its type."""

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


#: its fields are those of the table in :mod:`archspec._init_fns`, in its order
InitFn = type("InitFn", (_InitFnChecks,), {
    "__annotations__": {"fn": Annotated[Any, _Literal(*INIT_ARGS)], **{name: _init_arg_type(name) for name in INIT_FIELDS}},
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
        return {"anyOf": [{"type": "number"}, EXPRESSION_SCHEMA, initialiser_json({"type": "number"})]}


InitOrNumber = Annotated[Any, _InitValue(InitFn)]


class InitRule(_Model):
    """Set parameters of the nodes this rule selects (by op and/or path; rules apply in order)."""

    ops: list[Annotated[Any, _OpName()]] = Field(None, description="select nodes of these ops")
    paths: list[Annotated[Any, Text()]] = Field(None, description="select nodes by dotted path, with * and ? wildcards")
    within: Annotated[Any, Text()] = Field(None, description=(
        "select only nodes inside this node (a dotted path): a base nested by 'extends' keeps its rules there"))
    weight: InitOrNumber = None
    bias: InitOrNumber = None

    @model_validator(mode="after")
    def _selects_and_sets(self) -> "InitRule":
        if self.ops is None and self.paths is None:
            raise PydanticCustomError("archspec_value", "an init rule needs 'ops' or 'paths' to select nodes")
        if self.weight is None and self.bias is None:
            raise PydanticCustomError("archspec_value", "an init rule needs 'weight' or 'bias' to set")
        return self


class Extends(_Model):
    """``extends:`` as a mapping: the base, and the node of this graph it becomes (the load
    stage reads it; it is here for the JSON schema)."""

    spec: Annotated[Any, Text()] = Field(description="the base spec: a path relative to this file, or 'archspec:' and a bundled name")
    nest: Union[Annotated[Any, Text()], dict[str, Annotated[Any, Text()]]] = Field(None, description=(
        "a node name: the base's graph becomes that node (a seq of its nodes); {name: node}: the base's node becomes it"))


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


def _output_tag(value: Any) -> str:
    return "<output>" if isinstance(value, dict) else "<path>"
