"""Resource limits: what a spec may ask for before archspec refuses it.

Specs come from colleagues and from the internet, so every stage bounds the work a file
can cause: its size, how far YAML aliases may expand it, how deeply it nests, how large a
``repeat`` may be, how many nodes the expanded graph may hold, how many parameters and how
many bytes of parameters and buffers the compiled network may allocate, and how much
activation memory a forward would need. Each limit is refused early, with a
:class:`SpecLimitError` that names the limit, before the expensive work starts.

The defaults are generous for real networks (of the bundled specs, DenseNet-264 has the
most nodes, about 1,800; RegNetY-128GF the most weights, 645 million parameters in 2.6 GB,
and the most activations, 177 MB per sample at its 224x224 input) and can be raised per
call::

    compile_spec(path, limits=Limits(max_parameters=10**10, max_weight_bytes=4 * 10**10))
    archspec build big.yaml --limit max_parameters=10e9 --limit max_weight_bytes=40e9
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

__all__ = ["Limits", "DEFAULT_LIMITS"]


@dataclass(frozen=True)
class Limits:
    #: bytes in one spec file
    max_file_bytes: int = 1_000_000
    #: YAML values in one file after anchors and aliases are expanded ("billion laughs")
    max_yaml_values: int = 200_000
    #: nesting depth of maps and lists in one file
    max_yaml_depth: int = 100
    #: length of one ``extends`` chain
    max_extends_depth: int = 32
    #: the count of one ``repeat``
    max_repeat: int = 10_000
    #: nodes of the expanded graph (templates instantiated, repeats unrolled)
    max_nodes: int = 50_000
    #: nesting depth of block instances (a block using a block using ...)
    max_block_depth: int = 64
    #: nesting depth of containers (seq, concat, add, dense, block instances) in the expanded graph
    max_nesting: int = 100
    #: inputs over all nodes of the expanded graph (dense blocks grow it quadratically)
    max_edges: int = 250_000
    #: characters in one expression
    max_expression_chars: int = 1_000
    #: magnitude of any integer an expression computes
    max_int: int = 10**18
    #: parameters of the compiled network (4 bytes each in float32)
    max_parameters: int = 2_000_000_000
    #: bytes of the compiled network's parameters and buffers, each at its dtype (an int64 index: 8 a value)
    max_weight_bytes: int = 10_000_000_000
    #: bytes of activations an eval forward holds at its peak, per sample, in float32 (the input included)
    max_activation_bytes: int = 16_000_000_000

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_overrides(self, **values: int) -> Limits:
        for name, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, found {value!r}")
        return replace(self, **values)


DEFAULT_LIMITS = Limits()
