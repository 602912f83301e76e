"""archspec: declarative architecture specs compiled to PyTorch modules.

>>> from archspec import compile_spec
>>> model = compile_spec("densenet121")                       # doctest: +SKIP
>>> small = compile_spec("googlenet", num_classes=10, aux_logits=False)  # doctest: +SKIP
>>> mine = compile_spec("my_densenet.yaml")                  # doctest: +SKIP

A bundled spec is named by its file stem (``densenet121``); a file by its path. A spec
file may extend a bundled one by name: ``extends: archspec:densenet121``.

The pipeline (one private package or module per stage): ``_load`` (YAML with positions) ->
``_schema`` (pydantic validation) -> ``_resolve`` (templates, repeats, expressions ->
IR) -> ``_infer`` (static shapes and costs) -> ``_lower`` (module tree and generated
forward). ``load_spec`` stops before ``lower`` and needs no torch.

``register_op`` adds an op from Python (an ``nn.Module`` class, usually as a decorator);
installed packages provide ops through the entry-point group ``archspec.ops``.
``shard(model, ["dense_block"])`` applies FSDP2 to a compiled model by the spec's blocks.
"""

from ._compiler import compile_spec, load_spec
from ._errors import (
    Loc,
    SpecError,
    SpecErrors,
    SpecExpressionError,
    SpecLimitError,
    SpecReferenceError,
    SpecSchemaError,
    SpecShapeError,
    SpecSyntaxError,
    SpecWarning,
    WeightsError,
    WeightsWarning,
)
from ._ir import Container, Graph, Node, Output
from ._limits import Limits
from .ops import PluginError, register_op, unregister_op

__version__ = "0.1.0"

__all__ = [
    "Container",
    "Graph",
    "Limits",
    "Loc",
    "Node",
    "Output",
    "PluginError",
    "SpecError",
    "SpecErrors",
    "SpecExpressionError",
    "SpecLimitError",
    "SpecReferenceError",
    "SpecSchemaError",
    "SpecShapeError",
    "SpecSyntaxError",
    "SpecWarning",
    "WeightsError",
    "WeightsWarning",
    "__version__",
    "compile_spec",
    "load_spec",
    "register_op",
    "shard",
    "unregister_op",
]


def __getattr__(name: str):
    if name == "shard":  # imports torch: only when asked for (``archspec validate`` never imports torch)
        from ._distributed import shard

        return shard
    raise AttributeError(f"module 'archspec' has no attribute {name!r}")
