"""Stage 1, load: YAML text to plain data plus the source position of every key and value.

What it does: reads one spec file with PyYAML's *event* parser (no object construction,
so no tag can run code), builds plain ``dict``/``list``/scalar data iteratively (no
recursion, so no nesting can overflow the stack), and records a :class:`Loc` for every
value and every key in a :class:`Locations` table addressed by path
(``("graph", "conv1", "out")``). It follows ``extends:`` chains and merges a variant over
its base (see :func:`merge`), so that every merged value keeps the position in the file
it came from.

Scalars follow the YAML 1.2 core schema: ``true``/``false`` are booleans, ``yes``/``no``/
``on``/``off`` are strings, ``1e-5`` is a float. Map keys are always strings.

What it refuses: duplicate keys, ``<<`` merge keys (YAML 1.1), keys over 1,024 characters,
tags other than the core ones (``!!python/...`` among them), a top level that is not a mapping, several documents, files over the size limit,
aliases that expand past the value limit and nesting past the depth limit.

What it deliberately does not do: check keys or types (that is :mod:`archspec._schema`), or
evaluate anything.

The parts: :mod:`.locations` (``Locations``, ``Document``), :mod:`.scalars` (the core
schema), :mod:`.builder` (parser events to data), :mod:`.yaml_text` (:func:`load_text`:
one text, and the parser's errors), :mod:`.extends` (:func:`merge`) and :mod:`.chain`
(:func:`load_document`: a file and its ``extends`` chain).
"""

from .chain import display_path, load_document
from .extends import NODE_KIND_KEYS, merge
from .locations import Document, Locations
from .yaml_text import load_text

__all__ = ["Document", "Locations", "load_document", "load_text", "merge", "display_path", "NODE_KIND_KEYS"]
