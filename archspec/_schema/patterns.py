"""The checks of a checkpoint key rule's regular expressions: ``match`` compiles, is
short and has no nested repetition (which backtracks exponentially: a spec must not be able
to hang a load), and ``replace`` fits it as an ``re.sub`` template.

The nesting is found by :class:`_Scanner`, a reader of the few things of the pattern
syntax it needs (tokens, groups, repeats, verbose mode), so that no private module of
:mod:`re` is imported; it gives the verdicts that walking ``re._parser``'s parse gave.

What it deliberately does not do: judge whether a pattern matches the keys it is meant for.
"""

from __future__ import annotations

import re


def _regex_problem(text: str) -> str | None:
    if len(text) > 200:
        return f"the regular expression is {len(text):,} characters long; at most 200"
    try:
        re.compile(text)
    except re.error as e:
        return f"'{text}' is not a regular expression (Python re): {e}"
    except RecursionError:
        return "the regular expression nests too deeply"
    if _nested_repeat(text):
        # (a+)+ and its kind backtrack exponentially on a near miss: a spec must not be able to hang a load
        return (f"'{text}' repeats a repeated part (such as '(a+)+'), which can take exponential time; "
                "write it without the nested repetition")
    return None


def _nested_repeat(pattern: str) -> bool:
    """Whether ``pattern`` (one that compiles) has an unbounded repeat (``*``, ``+``,
    ``{n,}`` or more than 10) inside the body of another, through groups, alternatives,
    lookarounds and bounded repeats. The bodies of atomic groups, conditionals and
    possessive repeats, which do not backtrack into themselves, are not looked into."""
    return _has_nested(_Scanner(pattern).alternatives(verbose=False, top=True), inside=False)


def _has_nested(branches: list[list[tuple]], inside: bool) -> bool:
    for items in branches:
        for item in items:
            if item[0] == "repeat":
                _, unbounded, possessive, body = item
                if possessive:
                    continue
                if unbounded and inside:
                    return True
                if _has_nested([[body]], inside or unbounded):
                    return True
            elif item[0] == "group" and _has_nested(item[1], inside):
                return True
    return False


_WHITESPACE = frozenset(" \t\n\r\v\f")


class _Scanner:
    """Reads a pattern that compiles into what the repeat check needs: ``("leaf",)`` for
    what matches without a choice inside it, ``("group", branches)``, ``("opaque",)`` and
    ``("repeat", unbounded, possessive, body)``. It reads the pattern as Python's own parser
    does (a backslash and the character after it are one token; a ``{`` is a repeat only as
    ``{m}``, ``{m,}``, ``{,n}``, ``{m,n}``; verbose mode, from ``(?x)`` at the start or a
    ``(?x:...)`` group, skips whitespace and ``#`` comments); a pattern that does not compile
    is never given to it."""

    def __init__(self, pattern: str) -> None:
        self.tokens: list[str] = []
        i = 0
        while i < len(pattern):
            size = 2 if pattern[i] == "\\" else 1
            self.tokens.append(pattern[i:i + size])
            i += size
        self.at = 0
        self.verbose = False  # switched on for the whole pattern by (?x) at its start

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str | None:
        token = self.peek()
        self.at += 1
        return token

    def match(self, token: str) -> bool:
        if self.peek() == token:
            self.at += 1
            return True
        return False

    def skip_past(self, end: str) -> None:
        while self.take() not in (end, None):
            pass

    def alternatives(self, verbose: bool, top: bool = False) -> list[list[tuple]]:
        branches = [self.sequence(verbose)]
        while self.match("|"):
            branches.append(self.sequence(verbose or (top and self.verbose)))
        return branches

    def sequence(self, verbose: bool) -> list[tuple]:
        items: list[tuple] = []
        while self.peek() not in ("|", ")", None):
            token = self.take()
            if verbose and token in _WHITESPACE:
                continue
            if verbose and token == "#":
                self.skip_past("\n")
                continue
            bounds = self.repeat_bounds(token)
            if bounds is not None:
                possessive = not self.match("?") and self.match("+")
                items[-1] = ("repeat", bounds, possessive, items[-1])
            elif token == "(":
                item = self.group(verbose)
                if item == "verbose":
                    verbose = self.verbose = True
                elif item is not None:
                    items.append(item)
            elif token == "[":
                self.match("^")
                self.take()  # the first item of a set may be ']'
                self.skip_past("]")
                items.append(("leaf",))
            else:
                if token == "\\N" and self.peek() == "{":
                    self.skip_past("}")
                items.append(("leaf",))
        return items

    def repeat_bounds(self, token: str | None) -> bool | None:
        """Whether the repeat ``token`` starts is unbounded, or None where it starts none."""
        if token in ("*", "+"):
            return True
        if token == "?":
            return False
        if token != "{" or self.peek() == "}":
            return None
        here = self.at
        low = high = ""
        while (self.peek() or "x") in "0123456789":
            low += self.take() or ""
        if self.match(","):
            while (self.peek() or "x") in "0123456789":
                high += self.take() or ""
        else:
            high = low
        if not self.match("}"):
            self.at = here  # a literal '{'
            return None
        return not high or int(high) > 10

    def group(self, verbose: bool) -> tuple | str | None:
        """The group after '(' (None for a comment or global flags; "verbose" for (?x))."""
        if not self.match("?"):
            return ("group", self.closed(verbose))
        kind = self.take()
        if kind == "P":
            if self.match("="):  # a back reference
                self.skip_past(")")
                return ("leaf",)
            self.skip_past(">")  # a named group
            return ("group", self.closed(verbose))
        if kind == "#":
            self.skip_past(")")
            return None
        if kind in (":", "=", "!"):
            return ("group", self.closed(verbose))
        if kind == "<":  # a lookbehind
            self.take()
            return ("group", self.closed(verbose))
        if kind == "(":  # a conditional
            self.skip_past(")")
            self.closed(verbose)
            return ("opaque",)
        if kind == ">":  # an atomic group
            self.closed(verbose)
            return ("opaque",)
        flags = kind or ""  # (?imsx) for the whole pattern, or (?i-s:...) for a group
        while self.peek() not in (")", ":"):
            flags += self.take() or ""
        on, _, off = flags.partition("-")
        if self.take() == ")":
            return "verbose" if "x" in on else None
        return ("group", self.closed((verbose or "x" in on) and "x" not in off))

    def closed(self, verbose: bool) -> list[list[tuple]]:
        branches = self.alternatives(verbose)
        self.match(")")
        return branches


def _replace_problem(text: str) -> str | None:
    return f"'replace' is {len(text):,} characters long; at most 200" if len(text) > 200 else None


def _template_problem(match: str, replace: str) -> str | None:
    """What is wrong with ``replace`` as an ``re.sub`` template for ``match``, if anything."""
    try:
        re.compile(match).sub(replace, "")  # Python checks the template (escapes, group references) here
    except (re.error, IndexError) as e:  # IndexError: an unknown group name
        return f"'replace' '{replace}' does not fit 'match' '{match}': {e}"
    return None
