"""Stage 4, infer: static shapes, parameter, buffer and MAC counts, node by node.

What it does: orders the graph topologically (a cycle is an error that prints the
cycle), then walks it from the declared input shape: resolves each node's inputs to the
nodes that really produce them (a container stands for its output; a node switched off
stands for its input), evaluates the values left deferred by *resolve* (those using
``in_c``, ``in_h``, ``in_w``), validates the op's parameters, and applies the op's shape
rule. Shape problems become :class:`SpecShapeError` s located at the value at fault, with
the shapes involved; independent problems are reported together. It also finds nodes
that feed nothing (a :class:`SpecWarning`) and refuses networks over
``Limits.max_parameters``, ``max_weight_bytes`` (parameters and buffers at their dtypes)
or ``max_activation_bytes`` (what an eval forward holds at its peak, per sample) before
anything is allocated.

The parts: :mod:`.state` (what the parts share), :mod:`.refs` (reference chasing),
:mod:`.order` (the topological order), :mod:`.values` (deferred values), :mod:`.walk`
(the shape walk, node by node), :mod:`.checks` (whole-graph checks) and :mod:`.run`
(the run through them). Which nodes the eval and the train graphs need is a query of the
IR (:func:`archspec._ir.needed`).

What it deliberately does not do: build modules or touch torch.
"""

from .run import infer

__all__ = ["infer"]
