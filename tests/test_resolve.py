"""Stage 3: blocks, parameters, repeat, when, inline, from, containers, outputs, overrides."""

from __future__ import annotations

import pytest

from archspec import (
    SpecExpressionError,
    SpecReferenceError,
    SpecSchemaError,
    load_spec,
)

HEAD = "archspec: 1\nname: t\ninput: [3, 8, 8]\n"


def spec(write_spec, body: str, **kw):
    return load_spec(write_spec(HEAD + body), **kw)


def paths(graph):
    return [p for p in graph.order]


def test_list_names_and_sequence(write_spec):
    g = spec(write_spec, "graph:\n  f:\n    - {op: conv2d, out: 4, kernel: 3}\n    - {op: relu}\n")
    assert paths(g) == ["f.0", "f.1"]
    assert g.nodes["f.1"].sources == ["f.0"]
    assert g.nodes["f.0"].sources == ["input"]


def test_block_parameters_defaults_and_globals(write_spec):
    g = spec(write_spec, """params: {width: 6}
blocks:
  unit:
    params: {out: int, k: 3, wide: "${out * 2}"}
    seq:
      a: {op: conv2d, out: $wide, kernel: $k, padding: 1}
      b: {op: conv2d, out: $width, kernel: 1}
graph:
  u: {use: unit, out: 5}
""")
    assert g.nodes["u.a"].shape == (10, 8, 8)
    assert g.nodes["u.b"].shape == (6, 8, 8)
    assert g.containers["u"].block == "unit"


@pytest.mark.parametrize("use,message", [
    ("{use: unit}", "block 'unit' needs the parameter 'out' (int)"),
    ("{use: unit, out: 4, kk: 1}", "block 'unit' has no parameter 'kk'"),
    ("{use: unit, out: 2.5}", "'out' is 2.5 (expected an integer)"),
    ("{use: unti, out: 4}", "unknown block 'unti'"),
    ("{use: relu}", "unknown block 'relu'"),
])
def test_block_use_errors(write_spec, use, message):
    with pytest.raises((SpecReferenceError, SpecSchemaError)) as e:
        spec(write_spec, f"blocks:\n  unit:\n    params: {{out: int, k: 3}}\n    op: conv2d\n    out: $out\n    kernel: $k\n"
                         f"graph:\n  u: {use}\n")
    assert message in str(e.value)
    assert e.value.loc is not None and e.value.loc.line == 11


def test_unknown_block_parameter_suggests(write_spec):
    with pytest.raises(SpecReferenceError) as e:
        spec(write_spec, "blocks:\n  unit: {params: {out: int}, op: linear, out: $out}\n"
                         "graph:\n  f: {op: flatten}\n  u: {use: unit, otu: 4}\n")
    assert e.value.hint == "did you mean 'out'?"
    assert e.value.expected == "one of: out"


def test_a_block_using_itself(write_spec):
    with pytest.raises(SpecReferenceError, match=r"block 'a' uses itself \(a -> b -> a\)"):
        spec(write_spec, "blocks:\n  a: {seq: {x: {use: b}}}\n  b: {seq: {y: {use: a}}}\ngraph:\n  n: {use: a}\n")


def test_repeat_with_index_in_names_and_values(write_spec):
    g = spec(write_spec, 'graph:\n  "c{i+1}": {op: conv2d, out: "${4 * (i + 1)}", kernel: 1, repeat: 3}\n')
    assert paths(g) == ["c1", "c2", "c3"]
    assert [g.nodes[p].shape[0] for p in paths(g)] == [4, 8, 12]
    assert g.nodes["c2"].sources == ["c1"]


def test_repeat_index_can_be_renamed(write_spec):
    g = spec(write_spec, 'graph:\n  "c{j}": {op: conv2d, out: "${j + 1}", kernel: 1, repeat: 2, index: j}\n')
    assert paths(g) == ["c0", "c1"]


def test_repeat_without_index_in_name_is_a_duplicate(write_spec):
    with pytest.raises(SpecReferenceError) as e:
        spec(write_spec, "graph:\n  c: {op: relu, repeat: 2}\n")
    assert "repeat makes several nodes named 'c'" in str(e.value)
    assert e.value.hint == "put the repeat index in the name, as in 'layer{i+1}'"


@pytest.mark.parametrize("value,message", [("0", "'repeat': found 0"), ("-1", "'repeat': found -1"), ("2.5", "'repeat': found 2.5")])
def test_bad_repeat_counts(write_spec, value, message):
    with pytest.raises(SpecSchemaError, match=message):
        spec(write_spec, f"graph:\n  c: {{op: relu, repeat: {value}}}\n")


def test_repeat_limit(write_spec):
    from archspec import Limits, SpecLimitError

    with pytest.raises(SpecLimitError, match="Limits.max_repeat"):
        spec(write_spec, 'graph:\n  "c{i}": {op: relu, repeat: 100}\n', limits=Limits(max_repeat=10))


def test_when_false_is_bypassed_and_lists_renumber(write_spec):
    g = spec(write_spec, """params: {extra: false}
graph:
  f:
    - {op: conv2d, out: 4, kernel: 1}
    - {op: relu, when: $extra}
    - {op: relu}
  skip: {op: identity, when: $extra}
  g: {op: identity, from: skip}
""")
    assert paths(g) == ["f.0", "f.1", "g"]
    assert g.nodes["f.1"].sources == ["f.0"]
    assert g.nodes["g"].sources == ["f.1"]  # reads what the switched-off node would have read


def test_when_using_the_input_shape_is_decided_by_infer(write_spec):
    g = spec(write_spec, """graph:
  a: {op: conv2d, out: 3, kernel: 1}
  b: {op: conv2d, out: 5, kernel: 1, when: "${in_c != 3}"}
  c: {op: conv2d, out: 7, kernel: 1, when: "${in_c == 3}"}
""")
    assert paths(g) == ["a", "c"]
    assert not g.nodes["b"].enabled


def test_structural_values_cannot_use_the_shape(write_spec):
    with pytest.raises(SpecExpressionError) as e:
        spec(write_spec, 'graph:\n  "c{i}": {op: relu, repeat: "${in_c}"}\n')
    assert "decides the graph's structure" in str(e.value)
    with pytest.raises(SpecExpressionError):
        spec(write_spec, 'graph:\n  f:\n    - {op: relu, when: "${in_c > 1}"}\n')


def test_inline_splices_a_repeated_group(write_spec):
    g = spec(write_spec, """graph:
  f:
    - seq: [{op: conv2d, out: 4, kernel: 1}, {op: relu}]
      repeat: 2
      inline: true
    - {op: identity}
""")
    assert paths(g) == ["f.0", "f.1", "f.2", "f.3", "f.4"]
    assert "f" in g.containers and not any(p.startswith("f.0.") for p in g.nodes)


def test_from_names_siblings_and_input(write_spec):
    g = spec(write_spec, """graph:
  a: {op: conv2d, out: 4, kernel: 1}
  b: {op: conv2d, out: 4, kernel: 1, from: input}
  s: {op: add, from: [a, b]}
  c: {op: concat, from: [s, a, input]}
""")
    assert g.nodes["s"].sources == ["a", "b"]
    assert g.nodes["c"].shape == (11, 8, 8)


def test_unknown_from_suggests(write_spec):
    with pytest.raises(SpecReferenceError) as e:
        spec(write_spec, "graph:\n  conv: {op: conv2d, out: 4, kernel: 1}\n  r: {op: relu, from: cnov}\n")
    assert "'from' names 'cnov', which is not a node here" in str(e.value)
    assert e.value.hint == "did you mean 'conv'?"
    assert (e.value.loc.line, e.value.loc.col) == (6, 23)


def test_cycles_are_printed(write_spec):
    with pytest.raises(SpecReferenceError) as e:
        spec(write_spec, "graph:\n  a: {op: relu, from: c}\n  b: {op: relu}\n  c: {op: relu}\n")
    assert "the graph has a cycle: a -> b -> c -> a" in str(e.value)


def test_concat_add_and_dense_containers(write_spec):
    g = spec(write_spec, """graph:
  cat:
    concat:
      x: {op: conv2d, out: 2, kernel: 1}
      y: [{op: conv2d, out: 3, kernel: 1}, {op: relu}]
  res:
    add:
      main: {op: conv2d, out: 5, kernel: 3, padding: 1}
      short: {op: identity}
  dense:
    dense:
      "l{i}": {op: conv2d, out: 4, kernel: 1, repeat: 3}
""")
    assert g.containers["cat"].shape == (5, 8, 8)
    assert g.containers["res"].shape == (5, 8, 8)
    assert g.nodes["dense.l2"].in_shapes == [(13, 8, 8)]
    assert g.containers["dense"].shape == (17, 8, 8)


def test_from_is_refused_in_branches(write_spec):
    with pytest.raises(SpecSchemaError, match="'from' is not allowed in the branches of a concat"):
        spec(write_spec, "graph:\n  c:\n    concat:\n      a: {op: relu}\n      b: {op: relu, from: a}\n")


def test_reserved_and_invalid_names(write_spec):
    with pytest.raises(SpecSchemaError, match="the node name 'eval' is reserved"):
        spec(write_spec, "graph:\n  eval: {op: relu}\n")
    with pytest.raises(SpecSchemaError, match="'input' is reserved"):
        spec(write_spec, "graph:\n  input: {op: relu}\n")
    with pytest.raises(SpecSchemaError, match="invalid node name 'a.b'"):
        spec(write_spec, "graph:\n  a.b: {op: relu}\n")
    with pytest.raises(SpecSchemaError, match="invalid node name '-a'"):
        spec(write_spec, "graph:\n  '-a': {op: relu}\n")
    # a '-' after the first character is fine: RegNet's stages name their blocks block1-0, block1-1, ...
    assert paths(spec(write_spec, "graph:\n  'block1-{i}': {op: relu, repeat: 2}\n")) == ["block1-0", "block1-1"]


def test_reserved_names_cover_torch_module_attributes():
    import torch

    from archspec._resolve import RESERVED_NAMES

    public = {n for n in dir(torch.nn.Module()) if not n.startswith("_")}
    assert public <= RESERVED_NAMES


def test_outputs(write_spec):
    g = spec(write_spec, """params: {aux: false}
graph:
  a: {op: conv2d, out: 4, kernel: 1}
  b: {op: relu}
  side: {op: flatten, from: a, when: $aux}
outputs:
  main: b
  side: {node: side, training_only: true}
  mid: a
""")
    assert [(o.name, o.node, o.training_only) for o in g.outputs] == [("main", "b", False), ("mid", "a", False)]


def test_unknown_output_node(write_spec):
    with pytest.raises(SpecReferenceError) as e:
        spec(write_spec, "graph:\n  conv: {op: relu}\noutputs:\n  x: cnov\n")
    assert "output 'x' names 'cnov', which is not a node" in str(e.value)
    assert e.value.hint == "did you mean 'conv'?"


def test_parameter_overrides(write_spec):
    text = "params: {n: 4, cfg: [1, 2], rate: 0.5}\ngraph:\n  f: {op: flatten}\n  l: {op: linear, out: \"${n + cfg[1]}\"}\n"
    assert spec(write_spec, text, n=10).nodes["l"].shape == (12,)
    assert spec(write_spec, text, params={"cfg.1": 5}).nodes["l"].shape == (9,)
    assert spec(write_spec, text, rate=1).params["rate"] == 1.0
    with pytest.raises(SpecReferenceError) as e:
        spec(write_spec, text, m=3)
    assert "unknown parameter 'm'" in str(e.value) and e.value.expected == "one of: cfg, n, rate"
    with pytest.raises(SpecSchemaError) as e:
        spec(write_spec, text, n="ten")
    assert "parameter 'n' set to 'ten'" in str(e.value) and e.value.expected == "an integer"


def test_expression_errors_note_where_a_parameter_was_set(write_spec):
    """A value that breaks a base's expression is usually written elsewhere: in a variant
    file or an override. The error points at the expression and notes where the value came from."""
    from archspec import SpecExpressionError, load_spec

    write_spec("archspec: 1\nname: base\ninput: [3, 8, 8]\nparams: {widths: [4, 8]}\n"
               "graph:\n  a: {op: conv2d, out: '${widths[0]}', kernel: 1}\n  b: {op: conv2d, out: '${widths[1]}', kernel: 1}\n",
               name="base.yaml")
    variant = write_spec("archspec: 1\nextends: base.yaml\nname: v\nparams: {widths: [4]}\n", name="v.yaml")
    with pytest.raises(SpecExpressionError) as e:
        load_spec(variant)
    assert e.value.loc.file.endswith("base.yaml") and e.value.loc.line == 7
    assert [(loc.file.endswith("v.yaml"), loc.line, text) for loc, text in e.value.notes] == [
        (True, 4, "'widths' is [4], set here")]
    with pytest.raises(SpecExpressionError) as e:
        load_spec(variant.parent / "base.yaml", widths=[2])
    assert e.value.notes == [(None, "'widths' is [2], set by an override (--set or a keyword argument)")]
    with pytest.raises(SpecExpressionError) as e:  # the value written beside the expression: no note needed
        load_spec(write_spec("archspec: 1\nname: s\ninput: [3, 8, 8]\nparams: {widths: [4]}\n"
                             "graph:\n  b: {op: conv2d, out: '${widths[1]}', kernel: 1}\n"))
    assert e.value.notes == []


def test_a_misspelt_parameter_of_a_variant_warns_with_the_name_meant(tmp_path):
    import warnings

    from archspec import SpecWarning

    (tmp_path / "base.yaml").write_text(HEAD + "params: {width: 4, blocks: 2}\ngraph:\n"
                                        "  '{b}c': {op: conv2d, out: $width, kernel: 1, repeat: $blocks, index: b}\n")
    (tmp_path / "variant.yaml").write_text("archspec: 1\nextends: base.yaml\nname: v\nparams: {widht: 8}\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = load_spec(tmp_path / "variant.yaml")
        load_spec(tmp_path / "base.yaml")  # every parameter used (one only in a name template): no warning
    assert graph.nodes["0c"].shape[0] == 4  # the typo left the width as it was
    found = [w.message for w in caught if isinstance(w.message, SpecWarning)]
    assert len(found) == 1
    assert found[0].message == "the parameter 'widht' is never used: no expression names it; did you mean 'width'?"
    assert found[0].loc.file.endswith("variant.yaml") and found[0].loc.line == 4
