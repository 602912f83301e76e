"""Stage 2, validate: what a spec may hold (the pydantic models), the located errors their
refusals become, and the JSON Schema editors check a spec file against."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from archspec import SpecError, SpecLimitError, SpecSchemaError, compile_spec, load_spec
from archspec._load import load_document
from archspec._schema import json_schema
from archspec.cli import main
from reference import SPECS

H = "archspec: 1\nname: t\ninput: [3, 8, 8]\n"
LANGUAGE_HEAD = "archspec: 1\nname: t\ninput: [8, 6, 6]\n"
SCHEMA_FILE = SPECS / "archspec.schema.json"


def spec(write_spec, text, head=H, **kw):
    return load_spec(write_spec(head + text), **kw)


# -- the models: values, nodes, init rules -----------------------------------------------


@pytest.mark.parametrize("value,message", [("0", "'repeat': found 0"), ("-1", "'repeat': found -1"), ("2.5", "'repeat': found 2.5")])
def test_bad_repeat_counts(write_spec, value, message):
    with pytest.raises(SpecSchemaError, match=message):
        spec(write_spec, f"graph:\n  c: {{op: relu, repeat: {value}}}\n")


def test_an_expression_op_is_checked_against_the_op_it_names(write_spec):
    with pytest.raises(SpecError) as e:
        spec(write_spec, "params: {act: relu}\ngraph:\n  a: {op: $act, negative_slope: 0.2}\n", head=LANGUAGE_HEAD)
    assert "unknown key 'negative_slope' for a relu node" in str(e.value)
    assert "'op' is 'relu' here, from '$act'" in e.value.format()
    g = spec(write_spec, "params: {act: leaky_relu}\ngraph:\n  a: {op: $act, negative_slope: 0.2}\n", head=LANGUAGE_HEAD)
    assert g.nodes["a"].concrete.negative_slope == 0.2


@pytest.mark.parametrize("init,message", [
    ("{fn: normal, std: -1}", "'init': found -1.0 for 'std' (expected a number > 0)"),
    ("{fn: uniform, a: 1, b: 0}", "'uniform' needs a < b"),
    ("{fn: kaiming_normal}", "kaiming_normal needs a tensor of 2 or more dimensions"),
])
def test_a_param_init_is_checked_before_anything_is_built(write_spec, init, message):
    body = f"graph:\n  a: {{op: conv2d, out: 8, kernel: 1}}\n  g: {{op: param, shape: [8], init: {init}}}\n" \
           "  p: {op: permute, dims: [0, 2, 3, 1], from: a}\n  m: {op: mul, from: [g, p]}\n"
    with pytest.raises(SpecError) as e:
        spec(write_spec, body, head=LANGUAGE_HEAD)
    assert message in str(e.value) and e.value.loc is not None


# -- regressions from review ----------------------------------------------------------
# Defects found in review, each pinned by a test (the spec that showed it, and what must
# happen instead): moved here from tests/test_regressions.py, beside the stage they guard.


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


def test_one_mistake_in_outputs_is_one_error(write_spec):
    with pytest.raises(SpecSchemaError) as e:
        spec(write_spec, "graph:\n  r: {op: relu}\noutputs:\n  p: {node: 5, training_only: true}\n")
    assert str(e.value).splitlines()[0].endswith("in output p: 'node': found 5 (expected a string)")


def test_huge_integers_for_numbers(write_spec):
    with pytest.raises(SpecError, match="has 400 characters; integers in a spec have at most 40"):
        spec(write_spec, f"graph:\n  d: {{op: dropout, p: {'9' * 400}}}\n")
    with pytest.raises(SpecSchemaError, match=r"found 9{39} \(expected a number >= 0 and <= 1\)"):
        spec(write_spec, f"graph:\n  d: {{op: dropout, p: {'9' * 39}}}\n")
    with pytest.raises(SpecLimitError):
        load_spec(SPECS / "densenet121.yaml", drop_rate=10**400)
    with pytest.raises(SpecSchemaError, match="input_shape is \\[3, an integer of about 6,020 digits, 3\\]"):
        load_spec(SPECS / "densenet121.yaml", input_shape=(3, 2 ** 20000, 3))


# - second review (an adversarial audit of the messages)


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


# -- the JSON Schema ---------------------------------------------------------------------


def test_schema_command_matches_the_committed_file(capsys):
    status = main(["schema"])
    out = capsys.readouterr().out
    assert status == 0
    assert json.loads(out) == json.loads(SCHEMA_FILE.read_text()), "run: archspec schema -o specs/archspec.schema.json"
    assert json.loads(out)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_specs_validate_against_the_schema(path):
    assert path.read_text().splitlines()[0] == "# yaml-language-server: $schema=archspec.schema.json"
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    data = load_document(path).data if "extends" not in path.read_text() else _raw(path)
    assert list(validator.iter_errors(data)) == []


def _raw(path):
    from archspec._load import load_text

    return load_text(path.read_text(), str(path)).data


def _messages(errors):
    """(where, message) of each error and of each alternative an anyOf/oneOf tried below it."""
    for e in errors:
        yield ".".join(map(str, e.absolute_path)), e.message
        yield from _messages(e.context)


@pytest.mark.parametrize("mutate,where,expected", [
    (lambda d: d.update(grpah=d.pop("graph")), "", "Additional properties are not allowed ('grpah' was unexpected)"),
    (lambda d: d["graph"]["features"].__setitem__(0, {"op": "conv2d", "out": 64, "kernal": 11}), "graph.features.0",
     "Additional properties are not allowed ('kernal' was unexpected)"),
    (lambda d: d["graph"].__setitem__("avgpool", {"op": "avgpool"}), "graph.avgpool.op", "'avgpool2d' was expected"),
    (lambda d: d.update(archspec=2), "archspec", "2 is not one of [1]"),
])
def test_schema_rejects_mistakes(mutate, where, expected):
    validator = jsonschema.Draft202012Validator(json_schema())
    data = _raw(SPECS / "alexnet.yaml")
    mutate(data)
    assert (where, expected) in set(_messages(validator.iter_errors(data)))


def test_schema_allows_a_variant_without_graph():
    validator = jsonschema.Draft202012Validator(json_schema())
    assert not list(validator.iter_errors({"archspec": 1, "extends": "base.yaml", "name": "v", "params": {"n": 2}}))
    assert list(validator.iter_errors({"archspec": 1, "name": "v"}))  # no extends: graph and input are required


def test_schema_accepts_variants_with_partial_nodes_and_removals():
    """A variant is merged over its base before it is checked, so its editor schema allows
    partial nodes and nulls, as the tutorial's file has them; a spec without `extends`
    still gets the strict node schema."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    tutorial = Path(__file__).parent.parent / "docs" / "tutorial" / "densenet_cifar.yaml"
    assert list(validator.iter_errors(_raw(tutorial))) == []
    variant = {"archspec": 1, "name": "v", "extends": "googlenet.yaml",
               "graph": {"aux1": None, "inception4b": {"c1": 64}}, "outputs": {"aux_logits1": None}}
    assert list(validator.iter_errors(variant)) == []
    variant["grpah"] = variant.pop("graph")
    assert [e.message for e in validator.iter_errors(variant)] == ["Additional properties are not allowed ('grpah' was unexpected)"]
    not_a_variant = _raw(SPECS / "alexnet.yaml")
    not_a_variant["graph"]["classifier"] = {"kernel": 3}  # a partial node needs a base to merge over
    assert list(validator.iter_errors(not_a_variant))
