"""The checks of a checkpoint key rule's regular expressions: ``match`` compiles, is
short and has no nested repetition (which backtracks exponentially: a spec must not be able
to hang a load), and ``replace`` fits it as an ``re.sub`` template.

What it deliberately does not do: judge whether a pattern matches the keys it is meant for.
"""

from __future__ import annotations

import re
import re._constants as sre_constants  # the parsed form, to find nested repetition
import re._parser as sre_parse
from typing import Any


def _regex_problem(text: str) -> str | None:
    if len(text) > 200:
        return f"the regular expression is {len(text):,} characters long; at most 200"
    try:
        re.compile(text)
    except re.error as e:
        return f"'{text}' is not a regular expression (Python re): {e}"
    except RecursionError:
        return "the regular expression nests too deeply"
    if _nested_repeat(sre_parse.parse(text)):
        # (a+)+ and its kind backtrack exponentially on a near miss: a spec must not be able to hang a load
        return (f"'{text}' repeats a repeated part (such as '(a+)+'), which can take exponential time; "
                "write it without the nested repetition")
    return None


def _nested_repeat(parsed: Any, inside: bool = False) -> bool:
    """Whether a parsed pattern has an unbounded repeat inside another repeat."""
    for op, arg in parsed:
        if op in _REPEATS:
            low, high, body = arg
            unbounded = high == sre_constants.MAXREPEAT or high > 10
            if unbounded and inside:
                return True
            if _nested_repeat(body, inside or unbounded):
                return True
        elif op is sre_constants.SUBPATTERN:
            if _nested_repeat(arg[-1], inside):
                return True
        elif op is sre_constants.BRANCH:
            if any(_nested_repeat(branch, inside) for branch in arg[1]):
                return True
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            if _nested_repeat(arg[1], inside):
                return True
    return False


_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}


def _replace_problem(text: str) -> str | None:
    return f"'replace' is {len(text):,} characters long; at most 200" if len(text) > 200 else None


def _template_problem(match: str, replace: str) -> str | None:
    """What is wrong with ``replace`` as an ``re.sub`` template for ``match``, if anything."""
    try:
        re.compile(match).sub(replace, "")  # Python checks the template (escapes, group references) here
    except (re.error, IndexError) as e:  # IndexError: an unknown group name
        return f"'replace' '{replace}' does not fit 'match' '{match}': {e}"
    return None
