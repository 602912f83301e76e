"""Defects found in review, each pinned by a test (the spec that showed it, and what
must happen instead)."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from archspec import (
    Limits,
    SpecError,
    SpecErrors,
    SpecExpressionError,
    SpecLimitError,
    SpecReferenceError,
    SpecSchemaError,
    SpecShapeError,
    SpecSyntaxError,
    WeightsError,
    compile_spec,
    load_spec,
)
from archspec._load import load_text
from archspec.cli import main
from reference import SPECS

H = "archspec: 1\nname: t\ninput: [3, 8, 8]\n"


def spec(write_spec, text, **kw):
    return load_spec(write_spec(H + text), **kw)


def test_a_spec_name_cannot_inject_code(write_spec, tmp_path):
    marker = tmp_path / "PWNED"
    text = f"archspec: 1\nname: \"x\\nopen('{marker}', 'w').write('ran')\\n#\"\ninput: [3, 8, 8]\ngraph:\n  r: {{op: relu}}\n"
    with pytest.raises(SpecSchemaError, match="invalid network name"):
        compile_spec(write_spec(text))
    assert not marker.exists()
    odd = tmp_path / "we\nird.yaml"  # a file name with a line break reaches the generated code only escaped
    odd.write_text(H + "graph:\n  r: {op: relu}\n")
    model = compile_spec(odd)
    assert "we\\nird.yaml" in model.code.splitlines()[0]


def test_add_with_a_repeated_operand_is_computed_right(write_spec):
    model = compile_spec(write_spec(H + "graph:\n  a: {op: conv2d, out: 2, kernel: 1}\n"
                                        "  b: {op: conv2d, out: 2, kernel: 1, from: input}\n  s: {op: add, from: [a, b, a]}\n")).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        a, b = model.a(x), model.b(x)
        assert torch.allclose(model(x), a + b + a)


def test_a_join_of_one_input_is_a_view_of_it(write_spec):
    model = compile_spec(write_spec(H + "graph:\n  br: {concat: {only: {op: identity}}}\n  r: {op: relu}\n")).eval()
    x = torch.randn(1, 3, 8, 8)
    before = x.clone()
    model(x)
    assert torch.equal(x, before) and model.r.inplace is False


def test_switched_off_list_items_with_outputs(write_spec):
    g = spec(write_spec, "graph:\n  body: [{op: relu}, {op: identity, when: false}]\n  head: {op: relu}\noutputs: {o: head}\n")
    assert [o.name for o in g.outputs] == ["o"]


def test_a_switched_off_node_in_a_seq_passes_its_input_on(write_spec):
    g = spec(write_spec, "graph:\n  a: {op: conv2d, out: 4, kernel: 1}\n  b: {op: conv2d, out: 5, kernel: 1, from: input}\n"
                         "  c: {op: relu, from: a, when: false}\n  d: {op: identity}\noutputs: {o: d, p: b}\n")
    assert g.nodes["d"].sources == ["a"]


def test_inline_list_in_a_mapping_is_refused(write_spec):
    with pytest.raises(SpecSchemaError, match="an inline seq in a mapping needs named children"):
        spec(write_spec, "graph:\n  conv: {op: conv2d, out: 4, kernel: 1}\n  grp: {seq: [{op: relu}], inline: true}\n")


def test_cycles_and_long_chains_through_switched_off_nodes(write_spec):
    with pytest.raises(SpecReferenceError, match="cycle through nodes that are switched off"):
        spec(write_spec, "graph:\n  a: {op: relu, when: false, from: b}\n  b: {op: relu, when: false, from: a}\n"
                         "  c: {op: relu, from: a}\n")
    chain = "graph:\n  n0: {op: relu}\n" + "".join(f"  n{i}: {{op: relu, when: false}}\n" for i in range(1, 3000)) + "  end: {op: relu}\n"
    g = spec(write_spec, chain)
    assert g.nodes["end"].sources == ["n0"]


def test_nesting_is_bounded(write_spec):
    body = "{op: relu}"
    for _ in range(150):
        body = "{seq: {x: " + body + "}}"
    with pytest.raises(SpecLimitError, match="Limits.max_nesting|Limits.max_yaml_depth"):
        spec(write_spec, "graph:\n  deep: " + body + "\n")
    blocks = "blocks:\n" + "".join(f"  b{i}: {{seq: {{a: {{seq: {{b: {{use: b{i + 1}}}}}}}}}}}\n" for i in range(60)) + "  b60: {op: relu}\n"
    with pytest.raises(SpecLimitError, match="Limits.max_nesting"):
        spec(write_spec, blocks + "graph:\n  n: {use: b0}\n")


def test_alias_expansion_depth_is_bounded():
    lines = ["p0: &a0 " + "[" * 60 + "1" + "]" * 60]
    lines += [f"p{k}: &a{k} " + "[" * 30 + f"*a{k - 1}" + "]" * 30 for k in range(1, 4)]
    with pytest.raises(SpecLimitError, match="deeper than 100 levels"):
        load_text("\n".join(lines) + "\n", "f.yaml")


def test_work_is_bounded(write_spec):
    with pytest.raises(SpecLimitError, match="Limits.max_nodes"):
        spec(write_spec, 'graph:\n  "x{i}": {op: relu, when: false, repeat: 5000}\n  y: {op: identity}\n',
             limits=Limits(max_nodes=1000))
    with pytest.raises(SpecLimitError, match="Limits.max_edges"):
        spec(write_spec, 'graph:\n  d: {dense: {"l{i}": {op: conv2d, out: 1, kernel: 1, repeat: 4000}}}\n')
    with pytest.raises(SpecLimitError, match="Limits.max_int"):
        spec(write_spec, 'graph:\n  d: {dense: {"l{i}": {op: identity, repeat: 100}}}\n')


@pytest.mark.parametrize("text,error", [
    ("a: !!map foo\n", "the tag '!!map' does not fit a plain value"),
    ("a: !!str [1, 2]\n", "the tag '!!str' does not fit a list"),
    ("a: !!seq {b: 1}\n", "the tag '!!seq' does not fit a mapping"),
])
def test_tags_must_fit_their_value(text, error):
    with pytest.raises(SpecSyntaxError, match=error):
        load_text(text, "f.yaml")


@pytest.mark.parametrize("name", ["class", "self", "code", "output_names", "load_report"])
def test_names_that_would_break_the_module_are_refused(write_spec, name):
    with pytest.raises(SpecSchemaError, match=f"the node name '{name}' is reserved"):
        spec(write_spec, f"graph:\n  {name}: {{op: relu}}\n")


def test_nodes_may_be_called_kind_or_block(write_spec):
    model = compile_spec(write_spec(H + "graph:\n  s: {seq: {kind: {op: relu}, block: {op: identity}}}\n"))
    assert isinstance(model.s.kind, torch.nn.ReLU)


def test_a_spec_name_starting_with_a_digit(write_spec):
    model = compile_spec(write_spec("archspec: 1\nname: 3d-net\ninput: [3, 8, 8]\ngraph:\n  r: {op: relu}\n  "
                                    "q: {op: identity, from: input}\noutputs: {a: r, b: {node: q, training_only: true}}\n"))
    assert type(model.train()(torch.randn(1, 3, 8, 8))).__name__ == "Net3dNetOutputs"


def test_derived_defaults_see_all_arguments_and_shadow_spec_params(write_spec):
    g = spec(write_spec, "params: {width: 64}\nblocks:\n  blk:\n    params: {wide: \"${width * 2}\", width: 16, ks: [\"$k\", 1], k: 3}\n"
                         "    op: conv2d\n    out: $wide\n    kernel: $ks\ngraph:\n  c: {use: blk, width: 4}\n")
    assert g.nodes["c"].shape == (8, 6, 8)


def test_extends_merges_graphs_with_nodes_named_like_kinds(tmp_path):
    (tmp_path / "base.yaml").write_text(H + "graph:\n  c: {op: conv2d, out: 4, kernel: 1}\n  concat: {op: concat, from: [c, input]}\n"
                                            "  add: {op: conv2d, out: 2, kernel: 1}\n")
    (tmp_path / "child.yaml").write_text("archspec: 1\nextends: base.yaml\nname: c\ngraph:\n  add: {op: conv2d, out: 3}\n")
    g = load_spec(tmp_path / "child.yaml")
    assert list(g.nodes) == ["c", "concat", "add"] and g.nodes["add"].shape == (3, 8, 8)
    (tmp_path / "typo.yaml").write_text("archspec: 1\nextends: base.yaml\nname: c\ngraph:\n  ad: null\n")
    with pytest.raises(SpecReferenceError) as e:
        load_spec(tmp_path / "typo.yaml")
    assert "'ad: null' removes nothing" in str(e.value) and e.value.hint == "did you mean 'add'?" and e.value.loc.line == 5


def test_an_output_of_a_node_switched_off_by_shape_is_left_out(write_spec):
    g = spec(write_spec, "graph:\n  conv: {op: conv2d, out: 4, kernel: 1}\n  extra: {op: relu, when: \"${in_c == 3}\"}\n"
                         "outputs: {main: conv, aux: {node: extra, training_only: true}}\n")
    assert [o.name for o in g.outputs] == ["main"]


@pytest.mark.parametrize("shape", [(0, 8, 8), (-3, 8, 8), (3.0, 8, 8), ("3", 8, 8), (3, 8, 8, 8, 8), ()])
def test_input_shape_is_validated(shape):
    with pytest.raises(SpecSchemaError, match="input_shape is"):
        load_spec(SPECS / "alexnet.yaml", input_shape=shape)


@pytest.mark.parametrize("value,error", [
    ("{fn: normal, std: $s}", "found 'x'"),
    ('"${in_c}"', "uses the input shape, which an init rule cannot see"),
    ('"${[1, 2]}"', "expected a finite number"),
])
def test_init_values_are_checked(write_spec, value, error):
    with pytest.raises(SpecError, match=error):
        spec(write_spec, f"params: {{s: x}}\ngraph:\n  c: {{op: conv2d, out: 4, kernel: 1}}\ninit:\n  - {{ops: [conv2d], weight: {value}}}\n")


def test_init_bounds_from_expressions(write_spec):
    g = spec(write_spec, "params: {hi: 5.0}\ngraph:\n  c: {op: conv2d, out: 4, kernel: 1}\n"
                         "init:\n  - {ops: [conv2d], weight: {fn: uniform, a: 2.0, b: $hi}}\n")
    assert g.init[0].tensors["weight"] == {"fn": "uniform", "a": 2.0, "b": 5.0}


def test_validate_finds_what_build_would(write_spec):
    with pytest.raises(SpecShapeError, match="cannot run in place"):
        spec(write_spec, "graph:\n  r: {op: relu, inplace: true}\n")
    with pytest.raises(SpecSchemaError, match="kaiming_normal cannot initialise 'bn.weight'"):
        spec(write_spec, "graph:\n  bn: {op: batchnorm2d}\ninit:\n  - {ops: [batchnorm2d], weight: {fn: kaiming_normal}}\n")


def test_shape_names_cannot_be_params_or_indices(write_spec):
    with pytest.raises(SpecSchemaError, match="'in_c' cannot be a spec parameter"):
        spec(write_spec, "params: {in_c: 100}\ngraph:\n  c: {op: conv2d, out: \"${in_c // 2}\", kernel: 1}\n")
    with pytest.raises(SpecSchemaError, match="names the input shape"):
        spec(write_spec, 'graph:\n  "c{in_h}": {op: relu, repeat: 2, index: in_h}\n')


def test_repeat_with_from_chains_the_copies(write_spec):
    g = spec(write_spec, 'graph:\n  a: {op: conv2d, out: 4, kernel: 1}\n  b: {op: relu, from: input}\n'
                         '  "l{i}": {op: conv2d, out: 4, kernel: 1, from: a, repeat: 3}\noutputs: {o: l2, p: b}\n')
    assert [g.nodes[f"l{i}"].sources for i in range(3)] == [["a"], ["l0"], ["l1"]]


def test_one_mistake_in_outputs_is_one_error(write_spec):
    with pytest.raises(SpecSchemaError) as e:
        spec(write_spec, "graph:\n  r: {op: relu}\noutputs:\n  p: {node: 5, training_only: true}\n")
    assert str(e.value).splitlines()[0].endswith("in output p: 'node': found 5 (expected a string)")


@pytest.mark.parametrize("text", ["${1e308 ** 2}", "${0.0 ** -1}", "${(-8) ** 0.5}", "${99999999999999999999999}"])
def test_arithmetic_errors_are_expression_errors(write_spec, text):
    with pytest.raises(SpecExpressionError):
        spec(write_spec, f'graph:\n  c: {{op: conv2d, out: "{text}", kernel: 1}}\n')


def test_huge_integers_for_numbers(write_spec):
    with pytest.raises(SpecError, match="has 400 characters; integers in a spec have at most 40"):
        spec(write_spec, f"graph:\n  d: {{op: dropout, p: {'9' * 400}}}\n")
    with pytest.raises(SpecSchemaError, match=r"found 9{39} \(expected a number >= 0 and <= 1\)"):
        spec(write_spec, f"graph:\n  d: {{op: dropout, p: {'9' * 39}}}\n")
    with pytest.raises(SpecLimitError):
        load_spec(SPECS / "densenet121.yaml", drop_rate=10**400)
    with pytest.raises(SpecSchemaError, match="input_shape is \\[3, an integer of about 6,020 digits, 3\\]"):
        load_spec(SPECS / "densenet121.yaml", input_shape=(3, 2 ** 20000, 3))


def test_weights_edge_cases(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({1: torch.zeros(2)}, bad)
    with pytest.raises(WeightsError, match="mapping of names to tensors"):
        compile_spec(SPECS / "alexnet.yaml", weights=bad, strict=False)
    good = tmp_path / "good.pt"
    torch.save(compile_spec(SPECS / "densenet121.yaml", init=False, block_config=[1, 1, 1, 1]).state_dict(), good)
    with pytest.raises(WeightsError, match="meta"):
        compile_spec(SPECS / "densenet121.yaml", weights=good, device="meta", block_config=[1, 1, 1, 1])


@pytest.mark.parametrize("args,error", [
    (["--limit", "max_parameters=inf"], "needs a finite number"),
    (["--set", "block_config.--1=5"], "there is no entry '--1'"),
    (["--set", "block_config.x=5"], "there is no entry 'x'"),
])
def test_cli_arguments_fail_cleanly(capsys, args, error):
    assert main(["validate", str(SPECS / "densenet121.yaml"), *args]) == 2
    assert error in capsys.readouterr().err


def test_diff_folds_only_consecutive_numbers():
    from archspec._diff import diff

    d = diff(load_spec(SPECS / "densenet121.yaml"), load_spec(SPECS / "densenet161.yaml"))
    paths = [c.path for c in d.changes]
    assert "features.denseblock1.denselayer{1..6}.conv1" in paths
    assert not any("norm{0..5}" in p for p in paths)
    assert math.isclose(sum(c.params_delta for c in d.changes), 28_681_000 - 7_978_856)


# -- second review (an adversarial audit of the messages) --------------------------------


def test_a_node_name_with_a_final_newline_is_refused(write_spec):
    with pytest.raises(SpecSchemaError, match=r"invalid node name 'r\\n'") as e:
        spec(write_spec, 'graph:\n  "r\\n": {op: relu}\n')
    assert e.value.node == "r\\n"  # printable in the message


@pytest.mark.parametrize("literal", ["0x" + "f" * 3600, "9" * 5000])
def test_integer_literals_past_python_digit_limits(write_spec, literal):
    with pytest.raises(SpecSyntaxError, match="integers in a spec have at most 40") as e:
        spec(write_spec, f"graph:\n  c: {{op: conv2d, out: {literal}, kernel: 1}}\n")
    assert e.value.loc.line == 5


def test_huge_python_integers_are_shown_briefly():
    with pytest.raises(SpecLimitError, match="parameter 'growth_rate' set to an integer of about 6,020 digits, over the limit"):
        load_spec(SPECS / "densenet121.yaml", growth_rate=2 ** 20000)


@pytest.mark.parametrize("escape,code", [("\\ud800", "D800"), ("\\x1b[31m", "001B"), ("\\x00", "0000")])
def test_control_characters_and_surrogates_from_escapes_are_refused(write_spec, escape, code):
    with pytest.raises(SpecSyntaxError, match=f"a string holds the character U\\+{code}"):
        spec(write_spec, f'description: "{escape}x"\ngraph:\n  r: {{op: relu}}\n')


def test_pipes_and_devices_are_not_read(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SpecReferenceError, match="not a regular file"):
        load_spec(fifo)  # would block forever if opened
    with pytest.raises(SpecReferenceError, match="not a regular file"):
        load_spec("/dev/zero")
    with pytest.raises(SpecReferenceError, match="the spec path is empty"):
        load_spec("")


@pytest.mark.parametrize("rule,message", [
    ({"match": "(?P<n>a)", "replace": "\\g<m>"}, "unknown group name 'm'"),
    ({"match": "^([a-z0-9_]+\\.?)+!$", "replace": "x"}, "repeats a repeated part"),
    ({"match": "(?:(?:a{1000}){1000}){1000}", "replace": "x"}, "repeats a repeated part"),
    ({"match": "a" * 201, "replace": "x"}, "at most 200"),
    ({"match": "a", "replace": "x" * 201}, "at most 200"),
])
def test_checkpoint_key_rules_that_could_crash_or_hang_are_refused(write_spec, rule, message):
    text = json.dumps({"checkpoint_keys": [rule]})[1:-1]
    with pytest.raises(SpecSchemaError, match=message) as e:
        spec(write_spec, f"graph:\n  r: {{op: relu}}\n{text}\n")
    assert e.value.node == "checkpoint_keys rule 1"


@pytest.mark.parametrize("init", [
    "{fn: kaiming_uniform, a: 1e300}", "{fn: normal, std: 1e300}", "{fn: xavier_normal, gain: 1e300}", "1e300",
    "{fn: normal, mean: 3e38, std: 3e38}",
])
def test_init_rules_cannot_make_weights_float32_cannot_hold(write_spec, init):
    path = write_spec(H + f"graph:\n  c: {{op: conv2d, out: 2, kernel: 1}}\ninit:\n  - {{ops: [conv2d], weight: {init}}}\n")
    with pytest.raises(SpecSchemaError, match="float32") as e:
        compile_spec(path)
    assert e.value.node == "init rule 1"


def test_names_that_python_normalises_alike_are_refused(write_spec):
    with pytest.raises(SpecSchemaError, match="invalid output name 'ﬁ'"):
        spec(write_spec, "graph:\n  a: {op: relu}\n  b: {op: relu}\noutputs: {ﬁ: a, fi: b}\n")
    with pytest.raises(SpecSchemaError, match="'ﬁ' cannot be a spec parameter name"):
        spec(write_spec, "params: {ﬁ: 2}\ngraph:\n  a: {op: relu}\n")


def test_a_limit_stops_the_work_at_once(write_spec):
    """Exceeding max_nodes inside nested blocks is one error, not one per enclosing copy."""
    blocks = "".join(f"  b{k}:\n    seq:\n      x: {{use: b{k + 1}}}\n      y: {{use: b{k + 1}}}\n" for k in range(14))
    with pytest.raises(SpecLimitError, match="more than 5,000 nodes"):
        spec(write_spec, f"blocks:\n{blocks}  b14: {{op: relu}}\ngraph:\n  top: {{use: b0}}\n", limits=Limits(max_nodes=5000))


@pytest.mark.parametrize("copies", [30, 100])
def test_one_mistake_in_many_copies_is_one_error(write_spec, copies):
    """The note counts every copy, not only those met before the cap of 20 errors shown."""
    with pytest.raises(SpecExpressionError) as e:
        spec(write_spec, f'graph:\n  "c{{i}}": {{op: conv2d, out: "${{undefined_thing}}", kernel: 1, repeat: {copies}}}\n')
    assert e.value.node == "c0"
    assert e.value.notes[-1][1] == f"the same mistake in {copies - 1} more copies: c1, c2, c3, c4, c5 and {copies - 6} more"


def test_an_alias_as_a_mapping_key_is_refused(write_spec):
    with pytest.raises(SpecSyntaxError, match="the alias '\\*k' is used as a mapping key") as e:
        spec(write_spec, "params: {a: &k 5}\ngraph:\n  *k : {op: relu}\n")
    assert (e.value.loc.line, e.value.loc.col) == (6, 3)


def test_training_only_from_a_parameter_must_be_a_boolean(write_spec):
    with pytest.raises(SpecSchemaError, match="'training_only' is 'no' \\(expected true or false\\)"):
        spec(write_spec, "params: {t: 'no'}\ngraph:\n  a: {op: relu}\n  b: {op: relu}\n"
                         "outputs:\n  main: a\n  side: {node: b, training_only: $t}\n")


def test_empty_outputs_and_nonpositive_limits(write_spec, capsys):
    with pytest.raises(SpecSchemaError, match="'outputs' is empty") as e:
        spec(write_spec, "graph:\n  a: {op: relu}\noutputs: {}\n")
    assert e.value.hint == "leave 'outputs' out to return the last node"
    with pytest.raises(ValueError, match="Limits.max_int must be a positive integer, found -5"):
        Limits().with_overrides(max_int=-5)
    assert main(["validate", str(SPECS / "alexnet.yaml"), "--limit", "max_nodes=0"]) == 2
    assert "--limit max_nodes needs a positive number, found '0'" in capsys.readouterr().err


def test_spec_parameters_are_values_and_block_names_are_names(write_spec):
    with pytest.raises(SpecSchemaError, match="the spec parameter 'w' is the expression") as e:
        spec(write_spec, "params: {w: '${4*2}'}\ngraph:\n  a: {op: conv2d, out: $w, kernel: 1}\n")
    assert e.value.loc.line == 4
    with pytest.raises(SpecSchemaError, match="invalid block name 'a b'"):
        spec(write_spec, "blocks:\n  a b: {op: relu}\ngraph:\n  a: {op: relu}\n")
    with pytest.raises(SpecSchemaError, match="unsupported spec format version 1.0"):
        one_point_oh = write_spec("archspec: 1.0\nname: t\ninput: [3, 8, 8]\ngraph:\n  a: {op: relu}\n")
        load_spec(one_point_oh)


@pytest.mark.parametrize("target,message", [("", "cannot write to an empty file name"), (".", "cannot write .: it is a folder")])
def test_outputs_to_a_folder_or_no_name(capsys, target, message):
    assert main(["export", str(SPECS / "alexnet.yaml"), "--format", "state_dict", "-o", target]) == 1
    assert capsys.readouterr().err == f"archspec: error: {message}\n"


def test_errors_collected_inside_a_nested_body_are_reported_once(write_spec):
    with pytest.raises(SpecExpressionError) as e:
        spec(write_spec, 'graph:\n  outer:\n    seq:\n      "c{i}": {op: conv2d, out: "${nope}", kernel: 1, repeat: 30}\n')
    assert [text for _, text in e.value.notes if text.startswith("the same mistake")] == [
        "the same mistake in 29 more copies: outer.c1, outer.c2, outer.c3, outer.c4, outer.c5 and 24 more"]
    body = "".join(f"      c{k}: {{op: conv2d, out: '${{u{k}}}', kernel: 1}}\n" for k in range(25))
    with pytest.raises(SpecErrors) as e:
        spec(write_spec, f"graph:\n  outer:\n    seq:\n{body}")
    nodes = [err.node for err in e.value.errors]
    assert len(nodes) == len(set(nodes)) == 20 and not any(n for err in e.value.errors for n in err.notes)
