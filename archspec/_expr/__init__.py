"""The expression language: small, safe arithmetic over parameters and shapes.

A spec value is an expression when it is a string that starts with ``$``:

- ``$name`` reads one name: a block parameter, a spec parameter, the repeat index ``i``;
- ``${...}`` evaluates an expression: ``${bn_size * growth}``, ``${in_c // 2}``,
  ``${out if grow_first or i == reps - 1 else in_c}``, ``${block_config[2]}``.

Node names may hold ``{...}`` parts, evaluated the same way: ``denselayer{i+1}``.

The language is a whitelist over Python's expression syntax, evaluated here node by node
(never by ``eval``): numbers, strings, booleans, lists; ``+ - * / // % **``; comparisons
(``in`` and ``not in`` too); ``and or not``; ``a if c else b``; indexing and slicing a
list (``cfg[2]``, ``depths[:s]``); list comprehensions (``[ceil(n * d) for n in depths]``,
with ``if`` filters); and the functions in :data:`FUNCTIONS` (``min max abs int float
round ceil floor sqrt log exp len sum range str make_divisible``). There is no attribute
access, no other calls, no lambda, no assignment; integers and powers are bounded
(``Limits.max_int``), lists by ``Limits.max_repeat`` items and every evaluation by
:data:`MAX_STEPS` loop iterations, so an expression can neither reach Python objects nor
run away with time or memory.

The shape of a node's input is visible as ``in_c`` (channels or features), ``in_h`` and
``in_w``; expressions that use them are evaluated by the *infer* stage, once shapes are
known; all others by *resolve*.

The parts: :mod:`.language` (what an expression may use, and :class:`Expr`),
:mod:`.parse` (text to a checked tree) and :mod:`.evaluate` (a tree to a value).
"""

from .evaluate import evaluate
from .language import FUNCTIONS, MAX_STEPS, SHAPE_NAMES, Expr, describe, is_expression, make_divisible
from .parse import names_used, parse, parse_name_template, parse_value

__all__ = ["Expr", "SHAPE_NAMES", "FUNCTIONS", "MAX_STEPS", "parse_value", "is_expression", "evaluate", "parse_name_template",
           "describe", "make_divisible", "names_used"]
