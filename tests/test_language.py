"""The language the zoo needed, feature by feature: conditional residuals, joins switched
off, op/use/from chosen by expressions, learnable tensors, broadcasting, tables as
parameters, and variants that insert nodes where they are written."""

from __future__ import annotations

import pytest
import torch

from archspec import SpecError, compile_spec, load_spec
from archspec._summary import totals

HEAD = "archspec: 1\nname: t\ninput: [8, 6, 6]\n"


def build(write_spec, body: str, **kw):
    return compile_spec(write_spec(HEAD + body), **kw)


def graph(write_spec, body: str, **kw):
    return load_spec(write_spec(HEAD + body), **kw)


RESIDUAL = """blocks:
  unit:
    params: {out: int, stride: 1}
    add:
      conv:
        - {op: conv2d, out: $out, kernel: 3, stride: $stride, padding: 1, bias: false}
        - {op: batchnorm2d}
      shortcut: {op: identity, when: "${stride == 1 and in_c == out}"}
graph:
  a: {use: unit, out: 8}
  b: {use: unit, out: 16, stride: 2}
"""


def test_a_branch_switched_off_by_shape_drops_out_of_the_add(write_spec):
    g = graph(write_spec, RESIDUAL)
    assert "a.shortcut" in g.order and "b.shortcut" not in g.order
    assert g.nodes["a#add"].sources == ["a.conv.1", "a.shortcut"]
    assert g.nodes["b#add"].sources == ["b.conv.1"]  # an add of one branch is that branch
    model = build(write_spec, RESIDUAL).eval()
    x = torch.randn(2, 8, 6, 6)
    a = model.a.conv[1](model.a.conv[0](x)) + x
    b = model.b.conv[1](model.b.conv[0](a))
    assert torch.allclose(model(x), b, atol=1e-6)
    assert "add_" in model.code  # the kept residual sums in place into the branch's output


def test_a_join_switched_off_passes_its_first_input(write_spec):
    body = """params: {residual: false}
graph:
  conv: {op: conv2d, out: 8, kernel: 1}
  drop: {op: stochastic_depth, p: 0.1, when: $residual}
  sum: {op: add, from: [drop, input], when: $residual}
  act: {op: relu}
"""
    off = graph(write_spec, body)
    assert off.nodes["act"].sources == ["conv"]
    on = graph(write_spec, body, residual=True)
    assert on.nodes["act"].sources == ["sum"] and on.nodes["sum"].sources == ["drop", "input"]
    # the same with a condition on the input shape, decided by infer
    shaped = graph(write_spec, body.replace("when: $residual}\n  act", 'when: "${in_c == 4}"}\n  act'), residual=True)
    assert shaped.nodes["act"].sources == ["drop"] and not shaped.nodes["sum"].enabled


def test_op_use_and_from_by_expression(write_spec):
    body = """params: {act: hardswish, deep: true, skip: true}
blocks:
  shallow: {op: identity}
  deeper: {seq: [{op: conv2d, out: 8, kernel: 1}, {op: $act}]}
graph:
  pick: {use: "${'deeper' if deep else 'shallow'}"}
  gate: {op: "${'sigmoid' if deep else 'identity'}"}
  out: {op: add, from: "${['gate', 'input'] if skip else ['gate', 'pick']}"}
"""
    g = graph(write_spec, body)
    assert g.nodes["pick.1"].op == "hardswish" and g.nodes["gate"].op == "sigmoid"
    assert g.nodes["out"].sources == ["gate", "input"]
    g = graph(write_spec, body, deep=False, skip=False, act="relu")
    assert g.nodes["pick"].op == "identity" and g.nodes["gate"].op == "identity"
    assert g.nodes["out"].sources == ["gate", "pick"]
    with pytest.raises(SpecError, match="'op' is 'swish', from"):
        graph(write_spec, body, act="swish")


def test_a_learnable_tensor_is_keyed_at_its_path_and_started_by_its_init(write_spec):
    body = """graph:
  stage:
    seq:
      conv: {op: conv2d, out: 8, kernel: 1}
      gamma: {op: param, shape: ["${8}", 1, 1], init: 0.5}
      beta: {op: param, shape: [8, 6, 6], init: {fn: normal, std: 2.0}}
      scaled: {op: mul, from: [gamma, conv]}
      shifted: {op: add, from: [scaled, beta]}
"""
    for init in (True, False):  # a param's init is its construction, not an init: rule
        torch.manual_seed(0)
        model = build(write_spec, body, init=init)
        assert model.stage.gamma.eq(0.5).all() and 1.7 < float(model.stage.beta.detach().std()) < 2.3
        assert {"stage.gamma", "stage.beta"} <= set(model.state_dict())
        assert isinstance(model.stage.gamma, torch.nn.Parameter) and model.stage.gamma.shape == (8, 1, 1)
    x = torch.randn(2, 8, 6, 6)
    out = model(x)
    assert torch.allclose(out, model.stage.conv(x) * 0.5 + model.stage.beta, atol=1e-6)
    out.sum().backward()
    assert model.stage.gamma.grad is not None and model.stage.beta.grad is not None
    assert graph(write_spec, body).state_shapes()["stage.gamma"] == (8, 1, 1)


def test_a_learnable_tensor_is_never_overwritten_in_place(write_spec):
    model = build(write_spec, "graph:\n  p: {op: param, shape: [8, 6, 6], init: 1.0}\n  s: {op: add, from: [p, input]}\n")
    x = torch.randn(2, 8, 6, 6)
    before = x.clone()
    model(x)
    assert model.p.eq(1).all() and torch.equal(x, before)
    assert "add_" not in model.code


def test_add_broadcasts_but_sums_in_place_only_into_the_full_shape(write_spec):
    body = """graph:
  conv: {op: conv2d, out: 8, kernel: 1}
  pool: {op: adaptive_avgpool2d, from: input}
  sum: {op: add, from: [pool, conv]}
"""
    g = graph(write_spec, body)
    assert g.nodes["sum"].shape == (8, 6, 6) and g.inplace["sum"] == 1  # into conv's output, not the pooled one
    model = build(write_spec, body)
    x = torch.randn(2, 8, 6, 6)
    assert torch.allclose(model(x), model.pool(x) + model.conv(x), atol=1e-6)


def test_tables_as_parameters_with_nested_overrides(write_spec):
    body = """params:
  setting: [[16, 1], [24, 2]]
graph:
  "s{k}":
    seq:
      "{i}": {op: conv2d, out: "${setting[k][0]}", kernel: 1, repeat: "${setting[k][1]}"}
    repeat: "${len(setting)}"
    index: k
"""
    g = graph(write_spec, body)
    assert [p for p in g.order] == ["s0.0", "s1.0", "s1.1"] and g.nodes["s1.1"].shape == (24, 6, 6)
    g = graph(write_spec, body, params={"setting.1.1": 3, "setting.0.0": 32})
    assert [p for p in g.order] == ["s0.0", "s1.0", "s1.1", "s1.2"] and g.nodes["s0.0"].shape == (32, 6, 6)


def test_a_variant_inserts_nodes_where_it_writes_them(write_spec):
    base = write_spec(HEAD + """graph:
  a: {op: conv2d, out: 8, kernel: 1}
  b: {op: relu}
  c: {op: conv2d, out: 8, kernel: 1}
  d: {op: relu}
""", "base.yaml")
    def variant(graph_text: str):
        path = write_spec(f"archspec: 1\nextends: {base.name}\nname: v\ngraph:\n{graph_text}")
        return [p for p in load_spec(path).order]

    assert variant("  x: {op: identity}\n  c: {}\n") == ["a", "b", "x", "c", "d"]   # before the next base key named
    assert variant("  b: {}\n  x: {op: identity}\n") == ["a", "b", "x", "c", "d"]   # after the last base key named
    assert variant("  x: {op: identity}\n") == ["a", "b", "c", "d", "x"]            # at the end, naming none


def test_se_resnet50_is_resnet50_plus_squeeze_and_excitation():
    from reference import SPECS

    base = load_spec(SPECS / "resnet" / "resnet50.yaml")
    se = load_spec(SPECS / "resnet" / "se_resnet50.yaml")
    extra = set(se.state_shapes()) - set(base.state_shapes())
    assert set(base.state_shapes()) < set(se.state_shapes())
    assert len(extra) == 16 * 4 and all(".se.fc" in k for k in extra)  # fc1/fc2 weight and bias in each of 16 blocks
    block = se.containers["layer1.0"].children
    assert block.index("layer1.0.se") == block.index("layer1.0.sum") - 1
    assert se.nodes["layer1.0.sum"].sources[0] == "layer1.0.se.scale"
    assert totals(se).params == 28_088_024
    assets = (SPECS / "resnet" / "se_resnet50.yaml").read_text().splitlines()
    assert len(assets) < 30


def test_a_part_of_a_chunk_is_never_overwritten_in_place(write_spec):
    # torch.chunk returns views that autograd forbids writing into (found by the fuzz test)
    body = "graph:\n  conv: {op: conv2d, out: 8, kernel: 1}\n  half: {op: chunk, chunks: 2, part: 1}\n  act: {op: relu}\n"
    g = graph(write_spec, body.replace("half", "part1"))
    assert g.inplace["act"] is None
    model = build(write_spec, body.replace("half", "part1")).train()
    model(torch.randn(2, 8, 6, 6)).sum().backward()
    with pytest.raises(SpecError, match="one of the views chunk makes together"):
        graph(write_spec, body.replace("half", "part1").replace("{op: relu}", "{op: relu, inplace: true}"))


# -- found by a review: each failed before its fix ---------------------------------------------


def test_a_switched_off_param_is_left_out_of_the_join_that_reads_it(write_spec):
    body = "params: {ls: false}\ngraph:\n  a: {op: conv2d, out: 8, kernel: 1}\n  g: {op: param, shape: [8, 1, 1], init: 2.0, when: $ls}\n" \
           "  s: {op: mul, from: [g, a]}\n"
    g = graph(write_spec, body)
    assert g.nodes["s"].sources == ["a"]  # not a * a
    model = build(write_spec, body)
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(model(x), model.a(x))
    assert graph(write_spec, body, ls=True).nodes["s"].sources == ["g", "a"]
    with pytest.raises(SpecError, match="'g' is switched off .* and reads no input"):
        graph(write_spec, body + "  r: {op: relu, from: g}\n")


def test_negative_slopes_stay_out_of_place(write_spec):
    for setting in ("leaky_relu, negative_slope: -0.1", "elu, alpha: -0.5"):
        def body(extra: str = "") -> str:
            return f"graph:\n  a: {{op: conv2d, out: 4, kernel: 1}}\n  act: {{op: {setting}{extra}}}\n" \
                   "  b: {op: conv2d, out: 4, kernel: 1}\n"

        assert graph(write_spec, body()).inplace["act"] is None
        build(write_spec, body()).train()(torch.randn(2, 8, 6, 6)).sum().backward()  # torch has no in-place backward for these
        with pytest.raises(SpecError, match="torch has no in-place backward for"):
            graph(write_spec, body(", inplace: true"))


def test_the_last_node_switched_off_by_the_shape_stands_for_its_input(write_spec):
    body = 'graph:\n  a: {op: conv2d, out: 4, kernel: 1}\n  r: {op: relu, when: "${in_c != 4}"}\n'
    g = graph(write_spec, body)
    assert g.outputs[0].node == "a"  # as with when: false


def test_when_takes_true_or_false_not_a_number(write_spec):
    with pytest.raises(SpecError, match="'when' is 2, from '\\$stride'"):
        graph(write_spec, "params: {stride: 2}\ngraph:\n  r: {op: relu, when: $stride}\n")
    with pytest.raises(SpecError, match="'when' is 12.0"):
        graph(write_spec, 'graph:\n  r: {op: relu, when: "${in_c * 1.5}"}\n')
    assert "r" in graph(write_spec, 'graph:\n  r: {op: relu, when: "${not false and true}"}\n').order  # YAML's words


def test_a_switched_off_join_that_passes_a_smaller_input_warns(write_spec):
    body = """params: {use_se: false}
graph:
  conv: {op: conv2d, out: 8, kernel: 1}
  avgpool: {op: adaptive_avgpool2d, size: 1}
  gate: {op: sigmoid}
  scale: {op: mul, from: [gate, conv], when: $use_se}
  sum: {op: add, from: [scale, input]}
"""
    with pytest.warns(UserWarning, match="'scale' is switched off, so it passes its first input \\(8x1x1\\), not the 8x6x6"):
        graph(write_spec, body)


def test_diff_lists_rewired_nodes():
    from archspec._diff import diff, format_diff
    from reference import SPECS

    text = format_diff(diff(load_spec(SPECS / "resnet" / "resnet50.yaml"), load_spec(SPECS / "resnet" / "se_resnet50.yaml")))
    assert "~ layer1.{0..2}.sum  add                 reads bn3 -> se x3" in text.splitlines()


def test_nested_overrides_name_the_whole_path(write_spec):
    body = "params:\n  setting: [[16, 1], [24, 2]]\ngraph:\n  c: {op: conv2d, out: \"${setting[0][0]}\", kernel: 1}\n"
    with pytest.raises(SpecError) as e:
        graph(write_spec, body, params={"setting.1.0": "abc"})
    assert "'setting.1.0' set to 'abc' (expected an integer)" in str(e.value)
    assert "'setting.1.0' is 24" in e.value.format()
    with pytest.raises(SpecError, match="'setting.1.0' is 24, which has no entries to set"):
        graph(write_spec, body, params={"setting.1.0.2": 3})
