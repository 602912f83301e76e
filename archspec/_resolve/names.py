"""Node names: name templates evaluated, and the names a node may not take.

What it does: evaluates a node's name template (``layer{i+1}``, ``{kind}_proj``) with
the names in scope, and checks every node name: its characters, ``input``, and the names
reserved by torch.nn.Module, Python and the compiled model (:data:`RESERVED_NAMES`: the
compiled model's own names come from :data:`archspec._ir.MODEL_ATTRIBUTES`, which a test
holds equal to the class, so that no name validates and then fails to build).

What it deliberately does not do: check that siblings' names differ (the body does, as
it knows them all) or resolve ``from:`` (:mod:`.refs`).
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from typing import Any

from .._errors import Loc, SpecExpressionError, SpecSchemaError
from .._expr import SHAPE_NAMES, evaluate, parse_name_template
from .._ir import INPUT, MODEL_ATTRIBUTES
from .._schema import NODE_NAME_RE
from .._values import shown
from .context import Context

#: attribute names of torch.nn.Module that a node may not take (torch is not imported here:
#: tests/test_resolve.py checks the list covers the installed torch's)
TORCH_MODULE_NAMES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu",
    "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state",
    "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers",
    "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook",
    "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad",
})

#: every name a node may not take: torch.nn.Module's, the compiled model's and the generated
#: forward's own ``self``
RESERVED_NAMES = TORCH_MODULE_NAMES | MODEL_ATTRIBUTES | {"self"}


def node_name(ctx: Context, template: str, env: Mapping[str, Any], raw: tuple, where: str) -> str:
    """The name ``template`` makes with the names in ``env``, checked."""
    loc = ctx.key_loc(raw)
    if "{" in template or "}" in template:
        try:
            parts = parse_name_template(template, loc, ctx.limits)
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
            v = evaluate(part, env, ctx.limits, where)
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise SpecExpressionError(f"'{{{part.text}}}' in the name '{template}' is {shown(v)}", part.loc, node=where,
                                          expected="an integer or a string")
            text += str(v)
        name = text
    else:
        name = template
    check_name(name, loc, where, template)
    return name


def check_name(name: str, loc: Loc | None, where: str, template: str | None = None, what: str = "node name") -> None:
    """Refuse a name a node cannot take (``what`` says what the name is: a block's declared
    input is checked as a node name is)."""
    made = f" (made from '{template}')" if template and template != name else ""
    if not NODE_NAME_RE.fullmatch(name):
        raise SpecSchemaError(f"invalid {what} {shown(name)}{made}", loc,
                              node=where if where.isprintable() else ascii(where)[1:-1],
                              expected="letters, digits, '_' and '-' (not first)")
    if name == INPUT:
        raise SpecSchemaError("'input' is reserved: it names the body's input", loc, node=where,
                              hint="rename the node")
    if name.startswith("_") or name in RESERVED_NAMES or keyword.iskeyword(name):
        raise SpecSchemaError(f"the {what} '{name}'{made} is reserved", loc, node=where,
                              expected="a name that is not a Python keyword, not an attribute of torch.nn.Module or of "
                                       "the compiled model, and does not start with '_'")
