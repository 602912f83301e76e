"""Stage 1: YAML text to data with positions; refusals; extends and merging."""

from __future__ import annotations

import pytest

from archspec import Limits, SpecLimitError, SpecReferenceError, SpecSyntaxError
from archspec._load import load_document, load_text


def test_positions_of_keys_and_values():
    doc = load_text("a: 1\nb:\n  c: [x, 'y']\n", "f.yaml")
    assert doc.data == {"a": 1, "b": {"c": ["x", "y"]}}
    assert str(doc.locs.value(("a",))) == "f.yaml:1:4"
    assert str(doc.locs.key(("b", "c"))) == "f.yaml:3:3"
    assert str(doc.locs.value(("b", "c", 1))) == "f.yaml:3:11"  # inside the quotes


def test_yaml_12_core_scalars():
    doc = load_text("a: [yes, no, on, off, true, False, ~, 1e-5, 0x10, .5, 1_000, '3']\n")
    assert doc.data["a"] == ["yes", "no", "on", "off", True, False, None, 1e-5, 16, 0.5, 1000, "3"]


def test_keys_are_always_strings():
    assert load_text("on: 1\n1: 2\nnull: 3\n").data == {"on": 1, "1": 2, "null": 3}


def test_duplicate_keys_are_an_error_with_both_places():
    with pytest.raises(SpecSyntaxError) as e:
        load_text("graph:\n  a: 1\n  b: 2\n  a: 3\n", "f.yaml")
    assert str(e.value).splitlines()[0] == "f.yaml:4:3: error: duplicate key 'a' in this mapping"
    assert e.value.notes[0][0].line == 2


def test_anchors_and_aliases():
    doc = load_text("base: &b {x: 1, y: 2}\nlist: [*b, *b]\n'<<': 3\n", "f.yaml")
    assert doc.data["list"] == [{"x": 1, "y": 2}, {"x": 1, "y": 2}]
    assert doc.locs.value(("list", 1, "y")).line == 1  # an alias's copy keeps its anchor's positions
    assert doc.data["<<"] == 3  # a quoted '<<' is a key like any other


def test_merge_keys_are_refused():
    """YAML 1.2 core has no merge key; '<<: *b' merged silently (the docs said YAML 1.2)."""
    for text in ("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 3\n", "base: &b {x: 1}\nuse: {y: 3, <<: [*b]}\n"):
        with pytest.raises(SpecSyntaxError, match="'<<' merge keys are YAML 1.1") as e:
            load_text(text, "f.yaml")
        assert e.value.loc.line in (2, 3) and e.value.loc.end_col - e.value.loc.col == 2


@pytest.mark.parametrize("prefix,suffix,col", [("", ": 1\n", 1), ("g:\n  - ", ": 1\n", 5), ("g: {a: 1, ", ": 1}\n", 11),
                                               ("g:\n  '", "': 1\n", 3)])
def test_a_key_over_1024_characters_is_said_to_be_too_long(prefix, suffix, col):
    """It said "mapping values are not allowed here" (PyYAML reads keys of at most 1,024)."""
    quotes = 2 if prefix.endswith("'") else 0
    load_text(prefix + "k" * (1024 - quotes) + suffix)
    with pytest.raises(SpecSyntaxError) as e:
        load_text(prefix + "k" * (1025 - quotes) + suffix, "f.yaml")
    assert e.value.message == "this mapping key is 1,025 characters long; YAML reads a key of at most 1,024"
    assert (e.value.loc.col, e.value.loc.end_col) == (col, col + 1025)


@pytest.mark.parametrize("text,message", [
    ("a: !!python/object/apply:os.system ['echo hi']\n", "the YAML tag '!!python/object/apply:os.system' is not allowed"),
    ("a: !custom 3\n", "the YAML tag '!custom' is not allowed"),
    ("a: 1\n---\nb: 2\n", "a spec file holds exactly one YAML document"),
    ("- 1\n- 2\n", "the top level of a spec must be a mapping; found a list"),
    ("", "the file is empty"),
    ("a:\n\tb: 1\n", "invalid YAML: a tab character where YAML expects spaces"),
    ("a: [1, 2\n", "invalid YAML"),
    ("a: *nope\n", "unknown alias '*nope'"),
    ("? [1, 2]\n: 3\n", "a mapping key must be a plain name, not a list or mapping"),
])
def test_refusals(text, message):
    with pytest.raises(SpecSyntaxError) as e:
        load_text(text, "f.yaml")
    assert message in str(e.value)
    assert e.value.loc is not None and e.value.loc.file == "f.yaml"


def test_python_tags_execute_nothing(tmp_path):
    marker = tmp_path / "marker"
    text = f"a: !!python/object/apply:os.system ['touch {marker}']\nb: !!python/object/new:pathlib.Path ['{marker}']\n"
    with pytest.raises(SpecSyntaxError):
        load_text(text)
    assert not marker.exists()


def test_billion_laughs_is_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(SpecLimitError) as e:
        load_text("\n".join(lines) + "\n", "bomb.yaml")
    assert "expands to more than 200,000 values (Limits.max_yaml_values)" in str(e.value)


def test_deep_nesting_is_refused():
    with pytest.raises(SpecLimitError) as e:
        load_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "Limits.max_yaml_depth" in str(e.value)


def test_file_size_limit(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: 1\n" + "#" * 2000 + "\n")
    with pytest.raises(SpecLimitError) as e:
        load_document(path, Limits(max_file_bytes=1000))
    assert "over the limit of 1,000 (Limits.max_file_bytes)" in str(e.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"a: 1\nb: \xff\xfe\n")
    with pytest.raises(SpecSyntaxError) as e:
        load_document(path)
    assert e.value.loc.line == 2 and "not UTF-8" in str(e.value)


def test_missing_file():
    with pytest.raises(SpecReferenceError, match="no spec file at"):
        load_document("/nonexistent/spec.yaml")


def test_extends_merges_maps_replaces_lists_and_null_removes(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "archspec: 1\nname: base\nparams: {a: 1, b: [1, 2], c: 3}\n"
        "graph:\n  x: {op: relu}\n  y: {op: linear, out: 4}\n  z: {op: relu}\n")
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\nname: child\nparams: {b: [9], c: null}\n"
        "graph:\n  y: {out: 8}\n  z: {op: dropout, p: 0.1}\n  w: {op: identity}\n")
    doc = load_document(tmp_path / "child.yaml")
    assert doc.data["name"] == "child"
    assert doc.data["params"] == {"a": 1, "b": [9]}
    assert doc.data["graph"] == {"x": {"op": "relu"}, "y": {"op": "linear", "out": 8}, "z": {"op": "dropout", "p": 0.1},
                                 "w": {"op": "identity"}}
    assert doc.locs.value(("graph", "x", "op")).file.endswith("base.yaml")
    assert doc.locs.value(("graph", "y", "out")).file.endswith("child.yaml")
    assert doc.locs.value(("graph", "z", "p")).file.endswith("child.yaml")
    assert [p.rsplit("/", 1)[-1] for p in doc.files] == ["base.yaml", "child.yaml"]


def test_extends_names_only_spec_files(tmp_path):
    (tmp_path / "a.yaml").write_text("archspec: 1\nextends: /etc/passwd\n")
    with pytest.raises(SpecReferenceError, match="which is not a spec file"):
        load_document(tmp_path / "a.yaml")


def test_extends_cycle_and_missing_base(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(SpecReferenceError, match=r"'extends' chain loops: .*a.yaml -> .*b.yaml -> .*a.yaml"):
        load_document(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("archspec: 1\nextends: bsae.yaml\n")
    with pytest.raises(SpecReferenceError) as e:
        load_document(tmp_path / "c.yaml")
    assert e.value.loc.line == 2 and "no such file" in str(e.value)


# -- regressions from review --------------------------------------------------------------
# Defects found in review, each pinned by a test (the spec that showed it, and what must
# happen instead): moved here from tests/test_regressions.py, beside the stage they guard.

import os

from archspec import load_spec

H = "archspec: 1\nname: t\ninput: [3, 8, 8]\n"


def spec(write_spec, text, **kw):
    return load_spec(write_spec(H + text), **kw)


def test_alias_expansion_depth_is_bounded():
    lines = ["p0: &a0 " + "[" * 60 + "1" + "]" * 60]
    lines += [f"p{k}: &a{k} " + "[" * 30 + f"*a{k - 1}" + "]" * 30 for k in range(1, 4)]
    with pytest.raises(SpecLimitError, match="deeper than 100 levels"):
        load_text("\n".join(lines) + "\n", "f.yaml")


@pytest.mark.parametrize("text,error", [
    ("a: !!map foo\n", "the tag '!!map' does not fit a plain value"),
    ("a: !!str [1, 2]\n", "the tag '!!str' does not fit a list"),
    ("a: !!seq {b: 1}\n", "the tag '!!seq' does not fit a mapping"),
])
def test_tags_must_fit_their_value(text, error):
    with pytest.raises(SpecSyntaxError, match=error):
        load_text(text, "f.yaml")


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


# - second review (an adversarial audit of the messages)


@pytest.mark.parametrize("literal", ["0x" + "f" * 3600, "9" * 5000])
def test_integer_literals_past_python_digit_limits(write_spec, literal):
    with pytest.raises(SpecSyntaxError, match="integers in a spec have at most 40") as e:
        spec(write_spec, f"graph:\n  c: {{op: conv2d, out: {literal}, kernel: 1}}\n")
    assert e.value.loc.line == 5


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


def test_an_alias_as_a_mapping_key_is_refused(write_spec):
    with pytest.raises(SpecSyntaxError, match="the alias '\\*k' is used as a mapping key") as e:
        spec(write_spec, "params: {a: &k 5}\ngraph:\n  *k : {op: relu}\n")
    assert (e.value.loc.line, e.value.loc.col) == (6, 3)


NEST_BASE = """archspec: 1
name: base
input: [3, 32, 32]
params: {width: 8, classes: 10, drop: 0.5}
graph:
  stem: {op: conv2d, out: $width, kernel: 3}
  features:
    - {op: conv2d, out: $width, kernel: 3}
    - {op: relu}
  pool: {op: adaptive_avgpool2d}
  flat: {op: flatten}
  drop: {op: dropout, p: $drop}
  classifier: {op: linear, out: $classes}
outputs: {logits: classifier}
returns: dict
init:
  - {ops: [conv2d], weight: {fn: kaiming_normal}, bias: 0}
  - {ops: [linear], weight: 0, bias: 0}
  - {paths: ["features.0", classifier], weight: 1}
checkpoint_keys:
  - {match: "^old\\\\.(.*)", replace: "\\\\1"}
description: the base classifier
"""


def test_extends_as_a_mapping_without_nest_is_extends_as_a_string(tmp_path):
    (tmp_path / "base.yaml").write_text(NEST_BASE)
    (tmp_path / "a.yaml").write_text("extends: base.yaml\nname: a\nparams: {width: 4}\n")
    (tmp_path / "b.yaml").write_text("extends: {spec: base.yaml}\nname: a\nparams: {width: 4}\n")
    a, b = load_document(tmp_path / "a.yaml"), load_document(tmp_path / "b.yaml")
    assert a.data == b.data and a.files[0] == b.files[0]
    assert str(a.locs.value(("params", "classes"))) == str(b.locs.value(("params", "classes")))  # in base.yaml


def test_nest_makes_the_base_graph_one_node_of_the_variant(tmp_path):
    """nest: backbone: the base's graph is the seq 'backbone'; the variant removes its head by
    merge and adds nodes after it; params (those still named), blocks and input come along,
    outputs, returns and checkpoint_keys do not; the base's init rules apply inside backbone only (paths
    prefixed, within: backbone), before the variant's own. Values keep their files."""
    (tmp_path / "base.yaml").write_text(NEST_BASE)
    (tmp_path / "seg.yaml").write_text(
        "archspec: 1\nextends: {spec: base.yaml, nest: backbone}\nname: seg\n"
        "graph:\n  backbone: {seq: {pool: null, flat: null, drop: null, classifier: null}}\n"
        "  head: {op: conv2d, out: 2, kernel: 1}\n"
        "init:\n  - {paths: [head], weight: 0}\n")
    doc = load_document(tmp_path / "seg.yaml")
    assert list(doc.data["graph"]) == ["backbone", "head"]
    assert list(doc.data["graph"]["backbone"]["seq"]) == ["stem", "features"]
    assert doc.data["input"] == [3, 32, 32]
    assert doc.data["params"] == {"width": 8}  # the removed head's classes and drop: named by nothing now
    assert not {"description", "outputs", "returns", "checkpoint_keys"} & set(doc.data)  # it describes the base
    assert doc.data["init"] == [
        {"ops": ["conv2d"], "weight": {"fn": "kaiming_normal"}, "bias": 0, "within": "backbone"},
        {"ops": ["linear"], "weight": 0, "bias": 0, "within": "backbone"},
        {"paths": ["backbone.features.0", "backbone.classifier"], "weight": 1, "within": "backbone"},
        {"paths": ["head"], "weight": 0}]
    loc = doc.locs.value(("graph", "backbone", "seq", "stem", "out"))
    assert loc.file.endswith("base.yaml") and loc.line == 6
    assert doc.locs.value(("init", 2, "paths", 1)).file.endswith("base.yaml")
    assert doc.locs.value(("init", 3, "paths", 0)).file.endswith("seg.yaml")


def test_nest_of_one_base_node_takes_that_node_alone(tmp_path):
    """nest: {backbone: features}: the base's list 'features' is the node 'backbone'; rules
    on paths outside it are dropped, by ops alone kept when the node writes one of the ops;
    the base's parameters nothing names any more are left out."""
    (tmp_path / "base.yaml").write_text(NEST_BASE)
    (tmp_path / "v.yaml").write_text(
        "archspec: 1\nextends: {spec: base.yaml, nest: {backbone: features}}\nname: v\n"
        "params: {classes: 3}\ngraph:\n  head: {op: conv2d, out: $classes, kernel: 1}\n")
    doc = load_document(tmp_path / "v.yaml")
    assert doc.data["graph"]["backbone"] == [{"op": "conv2d", "out": "$width", "kernel": 3}, {"op": "relu"}]
    assert list(doc.data["graph"]) == ["backbone", "head"]
    assert doc.data["params"] == {"width": 8, "classes": 3}  # drop: named by nothing kept
    assert doc.data["init"] == [
        {"ops": ["conv2d"], "weight": {"fn": "kaiming_normal"}, "bias": 0, "within": "backbone"},
        {"paths": ["backbone.0"], "weight": 1, "within": "backbone"}]
    assert doc.locs.value(("graph", "backbone", 0, "out")).file.endswith("base.yaml")


def test_nest_refuses_a_base_path_it_cannot_carry(tmp_path):
    from archspec import SpecSchemaError

    (tmp_path / "base.yaml").write_text(NEST_BASE.replace('"features.0", classifier', '"*.0"'))
    (tmp_path / "v.yaml").write_text("archspec: 1\nextends: {spec: base.yaml, nest: {backbone: features}}\nname: v\n")
    with pytest.raises(SpecSchemaError, match=r"init path '\*\.0' of '.*base.yaml' cannot be carried into 'nest'") as e:
        load_document(tmp_path / "v.yaml")
    assert e.value.loc.file.endswith("base.yaml")
