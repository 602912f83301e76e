"""The JSON Schema (Draft 2020-12) of the spec language, for editors: the spec model's,
with the top level relaxed for a variant (a file with ``extends``).

What it deliberately does not do: describe the checks only :func:`~.validation.validate`
and the later stages make (names resolve, shapes fit).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic.json_schema import CoreModeRef, DefsRef, GenerateJsonSchema

from .. import ops
from .spec import spec_model


class _Names(GenerateJsonSchema):
    """Names the definitions as they were named while the models lived in one module.

    Pydantic names a definition by its class name, and where two share one (the ``add`` op's
    node model and the ``add`` container's, both ``AddNode``) by module and qualified name:
    the models' modules inside this package are read as the package itself, so that the
    schema keeps the names it has had (``archspec___schema__AddNode``) and editors' and
    users' references to them hold."""

    def get_defs_ref(self, core_mode_ref: CoreModeRef) -> DefsRef:
        core_ref, mode = core_mode_ref
        return super().get_defs_ref((_MODULE_IN_PACKAGE.sub(__package__ + ".", core_ref), mode))


_MODULE_IN_PACKAGE = re.compile(re.escape(__package__) + r"\.[a-z_]+\.")


def json_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of the spec language: the built-in ops, those
    registered from Python and those of every installed package (their entry points are
    loaded)."""
    ops.load_plugins()
    schema = spec_model().model_json_schema(by_alias=True, schema_generator=_Names)
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
