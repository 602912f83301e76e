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
    # the nodes resolve makes carry their role; the path's '#' suffix only spells it
    from archspec._ir import NodeRole

    roles = {p: n.role for p, n in g.nodes.items() if n.role is not NodeRole.OP}
    assert roles == {"cat#concat": NodeRole.JOIN, "res#add": NodeRole.JOIN, "dense.l1#in": NodeRole.DENSE_INPUT,
                     "dense.l2#in": NodeRole.DENSE_INPUT, "dense#dense": NodeRole.JOIN}
    assert g.owner("dense.l1#in") == "dense"  # a layer that is one op: its container computes the layer's input
    assert all(n.implicit == (n.role is not NodeRole.OP) for n in g.nodes.values())


def test_a_switched_off_node_stands_for_what_its_op_says():
    """The one rule resolve (an alias) and infer (a node switched off by a shape's `when`)
    both follow: a join passes its first input, a param nothing, any other op its inputs."""
    from archspec import ops

    assert ops.REGISTRY["add"].stands_for_when_off(["a", "b"]) == ["a"]
    assert ops.REGISTRY["concat"].stands_for_when_off(["a", "b"]) == ["a"]
    assert ops.REGISTRY["mul"].stands_for_when_off(["a", "b"]) == ["a"]
    assert ops.REGISTRY["param"].stands_for_when_off(["a"]) == []
    assert ops.REGISTRY["relu"].stands_for_when_off(["a"]) == ["a"]


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


def test_model_attributes_are_the_compiled_models_own(write_spec):
    """MODEL_ATTRIBUTES (torch-free, read by validate) is exactly what the compiled model's
    class adds to torch.nn.Module: a method or property added to ArchModule without being
    declared fails here, as does a declared name the model no longer has."""
    import torch

    from archspec import compile_spec
    from archspec._ir import MODEL_ATTRIBUTES
    from archspec._module import ArchModule
    from archspec._resolve import RESERVED_NAMES

    def public(names):
        return {n for n in names if not n.startswith("_")} - set(dir(torch.nn.Module()))

    assert public(dir(ArchModule)) == MODEL_ATTRIBUTES - {"Outputs", "load_report"}
    path = write_spec(HEAD + "graph:\n  conv: {op: conv2d, out: 4, kernel: 1}\n  bn: {op: batchnorm2d}\n")
    plain = compile_spec(path)
    assert public(dir(plain)) - set(plain._modules) == MODEL_ATTRIBUTES - {"load_report"}
    for optimize in (None, "inference"):  # with weights (load_report), and the inference-only class
        model = compile_spec(path, weights=plain.state_dict(), optimize=optimize)
        assert public(dir(model)) - set(model._modules) == MODEL_ATTRIBUTES
    assert MODEL_ATTRIBUTES <= RESERVED_NAMES


@pytest.mark.parametrize("name", ["loss", "variant", "num_features", "get_classifier", "loss_weights", "load_report"])
def test_model_attribute_names_are_refused_before_the_build(write_spec, name):
    """Such a name validated, and the build ended in KeyError "attribute 'loss' already exists"."""
    from archspec import compile_spec

    path = write_spec(HEAD + f"graph:\n  {name}: {{op: conv2d, out: 4, kernel: 1}}\n")
    for run in (lambda: spec(write_spec, f"graph:\n  {name}: {{op: relu}}\n"), lambda: compile_spec(path)):
        with pytest.raises(SpecSchemaError, match=f"the node name '{name}' is reserved") as e:
            run()
        assert e.value.node == name


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


# -- regressions from review --------------------------------------------------------------
# Defects found in review, each pinned by a test (the spec that showed it, and what must
# happen instead): moved here from tests/test_regressions.py, beside the stage they guard.

from archspec import Limits, SpecError, SpecErrors, SpecLimitError
from archspec.cli import main
from reference import SPECS


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


def test_nesting_is_bounded(write_spec):
    body = "{op: relu}"
    for _ in range(150):
        body = "{seq: {x: " + body + "}}"
    with pytest.raises(SpecLimitError, match="Limits.max_nesting|Limits.max_yaml_depth"):
        spec(write_spec, "graph:\n  deep: " + body + "\n")
    blocks = "blocks:\n" + "".join(f"  b{i}: {{seq: {{a: {{seq: {{b: {{use: b{i + 1}}}}}}}}}}}\n" for i in range(60)) + "  b60: {op: relu}\n"
    with pytest.raises(SpecLimitError, match="Limits.max_nesting"):
        spec(write_spec, blocks + "graph:\n  n: {use: b0}\n")


def test_work_is_bounded(write_spec):
    with pytest.raises(SpecLimitError, match="Limits.max_nodes"):
        spec(write_spec, 'graph:\n  "x{i}": {op: relu, when: false, repeat: 5000}\n  y: {op: identity}\n',
             limits=Limits(max_nodes=1000))
    with pytest.raises(SpecLimitError, match="Limits.max_edges"):
        spec(write_spec, 'graph:\n  d: {dense: {"l{i}": {op: conv2d, out: 1, kernel: 1, repeat: 4000}}}\n')
    with pytest.raises(SpecLimitError, match="Limits.max_int"):
        spec(write_spec, 'graph:\n  d: {dense: {"l{i}": {op: identity, repeat: 100}}}\n')


@pytest.mark.parametrize("name", ["class", "self", "code", "output_names", "load_report"])
def test_names_that_would_break_the_module_are_refused(write_spec, name):
    with pytest.raises(SpecSchemaError, match=f"the node name '{name}' is reserved"):
        spec(write_spec, f"graph:\n  {name}: {{op: relu}}\n")


def test_derived_defaults_see_all_arguments_and_shadow_spec_params(write_spec):
    g = spec(write_spec, "params: {width: 64}\nblocks:\n  blk:\n    params: {wide: \"${width * 2}\", width: 16, ks: [\"$k\", 1], k: 3}\n"
                         "    op: conv2d\n    out: $wide\n    kernel: $ks\ngraph:\n  c: {use: blk, width: 4}\n")
    assert g.nodes["c"].shape == (8, 6, 8)


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


@pytest.mark.parametrize("weight,message", [
    ("{fn: uniform, a: 2.0, b: $x}", "'uniform' needs a < b, found a=2.0 and b=1.0"),
    ("{fn: uniform, a: $x}", "'uniform' needs a < b, found a=1.0 and b=1.0"),  # b left out: torch's 1.0
    ("{fn: trunc_normal, b: $x, a: 3}", "'trunc_normal' needs a < b, found a=3.0 and b=1.0"),
])
def test_init_bounds_from_expressions_are_checked_as_literal_ones(write_spec, weight, message):
    """An expression bound is checked once evaluated, by the rule the schema applies to
    literal ones (a bound left out is torch's default: it used to pass, and fail in torch)."""
    with pytest.raises(SpecSchemaError) as e:
        spec(write_spec, f"params: {{x: 1.0}}\ngraph:\n  c: {{op: conv2d, out: 4, kernel: 1}}\n"
                         f"init:\n  - {{ops: [conv2d], weight: {weight}}}\n")
    assert e.value.message == message and e.value.node == "init rule 1"


def test_shape_names_cannot_be_params_or_indices(write_spec):
    with pytest.raises(SpecSchemaError, match="'in_c' cannot be a spec parameter"):
        spec(write_spec, "params: {in_c: 100}\ngraph:\n  c: {op: conv2d, out: \"${in_c // 2}\", kernel: 1}\n")
    with pytest.raises(SpecSchemaError, match="names the input shape"):
        spec(write_spec, 'graph:\n  "c{in_h}": {op: relu, repeat: 2, index: in_h}\n')


def test_repeat_with_from_chains_the_copies(write_spec):
    g = spec(write_spec, 'graph:\n  a: {op: conv2d, out: 4, kernel: 1}\n  b: {op: relu, from: input}\n'
                         '  "l{i}": {op: conv2d, out: 4, kernel: 1, from: a, repeat: 3}\noutputs: {o: l2, p: b}\n')
    assert [g.nodes[f"l{i}"].sources for i in range(3)] == [["a"], ["l0"], ["l1"]]


# - second review (an adversarial audit of the messages)


def test_a_node_name_with_a_final_newline_is_refused(write_spec):
    with pytest.raises(SpecSchemaError, match=r"invalid node name 'r\\n'") as e:
        spec(write_spec, 'graph:\n  "r\\n": {op: relu}\n')
    assert e.value.node == "r\\n"  # printable in the message


def test_huge_python_integers_are_shown_briefly():
    with pytest.raises(SpecLimitError, match="parameter 'growth_rate' set to an integer of about 6,020 digits, over the limit"):
        load_spec(SPECS / "densenet121.yaml", growth_rate=2 ** 20000)


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
