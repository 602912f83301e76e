"""Stage 3, resolve: a validated spec to the IR graph.

What it does, walking the spec once in document order:

- applies parameter overrides (``compile_spec(path, num_classes=10)``, ``--set``), checking
  each against the spec's declared parameters;
- instantiates blocks (``use:``), binding and type-checking their arguments; a block's
  body sees its own parameters, then the spec's;
- unrolls ``repeat`` (the index, ``i`` unless ``index:`` says otherwise, is visible to the
  copy's name and values) and splices ``inline`` sequences into their parent;
- evaluates ``when`` (a node switched off is left out, and whatever reads it reads its
  input instead; in a list, later items are numbered as if it were not there);
- names every node by its dotted path and resolves ``from:`` among its siblings (and
  ``input``; a dotted name reads a node nested in an earlier sibling container), builds the implicit joins of ``concat``, ``add`` and ``dense`` containers,
  and resolves ``outputs``;
- evaluates every expression that does not need a shape; those that use ``in_c``/``in_h``/
  ``in_w`` (directly or through a block argument) are left as :class:`Deferred` for infer.

What it deliberately does not do: look at shapes, detect cycles (infer orders the graph),
or touch torch.

Where each part lives: :mod:`.resolver` (the entry point and the walk's core),
:mod:`.context` (evaluating values, the notes on parameters), :mod:`.overrides`,
:mod:`.state` (the graph being built, the typed sites), :mod:`.names`, :mod:`.expand`
(repeat, when, inline), :mod:`.bodies` (the recursive walk), :mod:`.refs` (``from:``),
:mod:`.nodes` (op nodes, ``checkpoint``), :mod:`.joins`, :mod:`.blocks`,
:mod:`.outputs`, :mod:`.init_rules`.
"""

from .names import RESERVED_NAMES
from .overrides import apply_overrides
from .resolver import resolve

__all__ = ["resolve", "RESERVED_NAMES", "apply_overrides"]
