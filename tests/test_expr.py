"""The expression language: what it computes, what it refuses, where its errors point."""

from __future__ import annotations

import re

import pytest

from archspec import Loc, SpecExpressionError
from archspec._expr import evaluate, parse, parse_name_template, parse_value


def ev(text: str, **env):
    return evaluate(parse(text), env)


@pytest.mark.parametrize("text,env,expected", [
    ("1 + 2 * 3", {}, 7),
    ("in_c // 2", {"in_c": 1024}, 512),
    ("bn_size * growth", {"bn_size": 4, "growth": 32}, 128),
    ("7 / 2", {}, 3.5),
    ("-x ** 2", {"x": 3}, -9),
    ("min(a, b, 3)", {"a": 5, "b": 4}, 3),
    ("max([1, 5, 2])", {}, 5),
    ("int(2.9) + round(2.5) + ceil(0.1) + floor(-0.5)", {}, 2 + 2 + 1 - 1),
    ("out if grow_first or i == reps - 1 else in_c", {"out": 8, "grow_first": False, "i": 0, "reps": 2, "in_c": 4}, 4),
    ("cfg[2]", {"cfg": [6, 12, 24, 16]}, 24),
    ("cfg[-1]", {"cfg": (6, 12)}, 12),
    ("drop > 0 and not x", {"drop": 0.1, "x": False}, True),
    ("1 < 2 <= 2 != 3", {}, True),
    ("'a' == s", {"s": "a"}, True),
    ("(1, 7)", {}, (1, 7)),
    ("abs(-3)", {}, 3),
    # lists: comprehensions, slices, membership and the list functions
    ("[x * 2 for x in range(5) if x % 2 == 0]", {}, (0, 4, 8)),
    ("[[a, b] for a in range(3) for b in range(a)]", {}, ((1, 0), (2, 0), (2, 1))),
    ("sum(depths[:2])", {"depths": [1, 2, 3]}, 3),
    ("depths[::-1]", {"depths": [1, 2, 3]}, [3, 2, 1]),
    ("len(cfg) + len('ab')", {"cfg": [64, "M"]}, 4),
    ("sum([])", {}, 0),
    ("'HS' in row and 3 not in row", {"row": [16, "HS"]}, True),
    ("cfg == [1, 2]", {"cfg": [1, 2]}, True),  # a YAML list equals an expression's list
    ("range(2, 8, 3)", {}, [2, 5]),
    ("sqrt(16) + exp(0) + log(1) + log(8, 2)", {}, 4.0 + 1.0 + 0.0 + 3.0),
    # torchvision's _make_divisible: nearest multiple, at least the divisor, never 10 % below
    ("[make_divisible(c * 0.75, 8) for c in [32, 16, 24, 40, 80, 96, 192, 320]]", {}, (24, 16, 24, 32, 64, 72, 144, 240)),
    ("make_divisible(3, 8)", {}, 8),
    ("make_divisible(83, 8)", {}, 80),
    ("make_divisible(84, 8)", {}, 88),
    ("make_divisible(10, 8, 16)", {}, 16),
])
def test_evaluates(text, env, expected):
    assert ev(text, **env) == expected


def test_conditionals_are_lazy():
    assert ev("1 if True else 1 // 0") == 1


def test_comprehension_variables_are_not_free_names():
    # the names an expression reads decide when it is evaluated (in_c: by infer) and which
    # spec parameters a message mentions: loop variables are not among them
    assert parse("[x * k for x in xs if x > lo]").names == {"k", "xs", "lo"}
    assert parse("[[y for y in range(x)] for x in n]").names == {"n"}


def test_regnet_widths_as_an_expression():
    # RegNet's quantised linear widths (torchvision's BlockParams.from_init_params), for
    # regnet_y_400mf: depth 16, w_0 48, w_a 27.89, w_m 2.09
    text = "[round(w_0 * w_m ** round(log((w_0 + w_a * i) / w_0) / log(w_m)) / 8) * 8 for i in range(depth)]"
    widths = ev(text, w_0=48, w_a=27.89, w_m=2.09, depth=16)
    assert widths == (48, 104, 104, 104, 208, 208, 208, 208, 208, 208, 440, 440, 440, 440, 440, 440)


@pytest.mark.parametrize("text,message", [
    ("x.__class__", "attribute access ('.') is not allowed"),
    ("__import__('os')", "calling '__import__' is not allowed"),
    ("open('f')", "calling 'open' is not allowed"),
    ("{c for c in x}", "a lambda or set/dict comprehension is not allowed"),
    ("lambda: 1", "a lambda or set/dict comprehension is not allowed"),
    ("[a for a, b in z]", "unpacking in a comprehension is not allowed"),
    ("[1 for in_c in z]", "the loop name 'in_c' (it names the input shape or a function) is not allowed"),
    ("a is b", "the comparison 'is' is not allowed"),
    ("range(1, 2, 3, 4)", "'range' takes 1 to 3 arguments, found 4"),
    ("{1: 2}", "a dict or set literal is not allowed"),
    ("a & b", "the operator '&' is not allowed"),
    ("(y := 3)", "assignment with ':=' is not allowed"),
    ("f'{x}'", "an f-string is not allowed"),
    ("min(a, key=b)", "a keyword argument is not allowed"),
    ("abs(1, 2)", "'abs' takes 1 argument, found 2"),
    ("1 +", "invalid expression"),
    ("", "the expression is empty"),
])
def test_refuses_at_parse_time(text, message):
    with pytest.raises(SpecExpressionError) as e:
        parse(text)
    assert message in str(e.value)


@pytest.mark.parametrize("text,env,message", [
    ("growht * 2", {"growth": 1}, "unknown name 'growht'"),
    ("a // b", {"a": 1, "b": 0}, "division by zero: 'b' is 0"),
    ("a % 0", {"a": 1}, "division by zero"),
    ("10 ** 100", {}, "the power 100 is too large"),
    ("2 ** 60 * 2 ** 60", {}, "the integer result is larger than"),
    ("1e308 * 10", {}, "not a finite number"),
    ("'a' * 3", {}, "'*' needs numbers"),
    ("cfg[9]", {"cfg": [1, 2]}, "index 9 is out of range for a list of 2"),
    ("x[0]", {"x": 3}, "only lists can be indexed"),
    ("'a' < 1", {}, "cannot order a string and an integer"),
    ("1 if 'x' else 2", {}, "a condition must be a boolean or a number"),
    ("range(10 ** 6)", {}, "range of 1,000,000 items, over the limit of 10,000 (Limits.max_repeat)"),
    ("[1 for a in range(10000) for b in range(10000) if a < 0]", {}, "the expression loops more than 1,000,000 times"),
    ("[b for a in range(10000) for b in range(2)]", {}, "the list would have more than 10,000 items"),
    ("len(3)", {}, "'len' needs a list or a string, but '3' is an integer"),
    ("sum(3)", {}, "'sum' of one argument needs a list, found an integer"),
    ("x[::0]", {"x": [1]}, "a slice step cannot be zero"),
    ("x['a':]", {"x": [1]}, "a slice bound must be an integer, found a string"),
    ("1 in 2", {}, "'in' needs a list (or a string in a string) on its right, found an integer"),
    ("[a for a in 3]", {}, "a comprehension loops over a list, but '3' is an integer"),
    ("log(0)", {}, "'log' cannot compute this (math domain error)"),
    ("make_divisible(10, 0)", {}, "'make_divisible' needs a positive integer divisor"),
])
def test_evaluation_errors(text, env, message):
    with pytest.raises(SpecExpressionError) as e:
        evaluate(parse(text), env)
    assert message in str(e.value)


def test_unknown_name_suggests_and_lists():
    with pytest.raises(SpecExpressionError) as e:
        evaluate(parse("growht * 2"), {"growth": 1, "bn_size": 4})
    assert e.value.hint == "did you mean 'growth'?"
    assert e.value.expected == "one of: bn_size, growth"


def test_error_points_at_the_failing_part():
    loc = Loc("f.yaml", 3, 10)
    expr = parse_value("${a + b // c}", loc)
    with pytest.raises(SpecExpressionError) as e:
        evaluate(expr, {"a": 1, "b": 2, "c": 0})
    # '${' is 2 columns, then 'a + b // ' is 9: the divisor 'c' is at column 10 + 2 + 9
    assert (e.value.loc.line, e.value.loc.col) == (3, 21)
    assert e.value.loc.end_col == 22


def test_value_forms():
    assert evaluate(parse_value("$growth"), {"growth": 32}) == 32
    assert evaluate(parse_value("${growth * 2}"), {"growth": 32}) == 64
    with pytest.raises(SpecExpressionError, match="is not a name reference"):
        parse_value("$growth * 2")
    with pytest.raises(SpecExpressionError, match="has no closing"):
        parse_value("${growth")


def test_length_limit():
    with pytest.raises(SpecExpressionError, match="Limits.max_expression_chars"):
        parse("1+" * 600 + "1")


def test_name_templates():
    parts = parse_name_template("denselayer{i+1}")
    assert parts[0] == "denselayer" and evaluate(parts[1], {"i": 2}) == 3
    with pytest.raises(SpecExpressionError, match="unclosed"):
        parse_name_template("layer{i")
    with pytest.raises(SpecExpressionError, match="unmatched"):
        parse_name_template("layer}i")


# -- regressions from review --------------------------------------------------------------
# Defects found in review, each pinned by a test (the spec that showed it, and what must
# happen instead): moved here from tests/test_regressions.py, beside the stage they guard.

from archspec import load_spec

H = "archspec: 1\nname: t\ninput: [3, 8, 8]\n"


def spec(write_spec, text, **kw):
    return load_spec(write_spec(H + text), **kw)


@pytest.mark.parametrize("text", ["${1e308 ** 2}", "${0.0 ** -1}", "${(-8) ** 0.5}", "${99999999999999999999999}"])
def test_arithmetic_errors_are_expression_errors(write_spec, text):
    with pytest.raises(SpecExpressionError):
        spec(write_spec, f'graph:\n  c: {{op: conv2d, out: "{text}", kernel: 1}}\n')


def test_names_are_made_of_parts_with_str_and_plus():
    assert ev("'down' + str(n + 1)", n=3) == "down4"
    assert list(ev("['up' + str(i) for i in range(1, 3)]")) == ["up1", "up2"]
    assert ev("str('inc')") == "inc"
    for text, message in (("str(1.5)", "'str' needs an integer or a string"), ("str(true)", "'str' needs an integer or a string"),
                          ("'a' + 1", "'+' needs numbers"), ("'ab' * 2", "'*' needs numbers")):
        with pytest.raises(SpecExpressionError, match=re.escape(message)):
            ev(text)
    with pytest.raises(SpecExpressionError, match="longer than 1,024 characters"):
        ev("a + a", a="x" * 600)
