"""Stage 5: the module tree, in-place safety, generated forward, outputs, init rules, pickling."""

from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys
import warnings

import pytest
import torch

from archspec import SpecShapeError, SpecWarning, compile_spec

HEAD = "archspec: 1\nname: tiny\ninput: [3, 16, 16]\n"


def compile_text(write_spec, body: str, **kw):
    return compile_spec(write_spec(HEAD + body), **kw)


def relus(model):
    return {n: m.inplace for n, m in model.named_modules() if isinstance(m, torch.nn.ReLU)}


def test_module_tree_follows_the_names(write_spec):
    model = compile_text(write_spec, """blocks:
  unit: {seq: {conv: {op: conv2d, out: 4, kernel: 3, padding: 1}, act: {op: relu}}}
graph:
  stem: {use: unit}
  body: [{use: unit}, {op: maxpool2d, kernel: 2}]
""")
    assert [k for k in model.state_dict()] == ["stem.conv.weight", "stem.conv.bias", "body.0.conv.weight", "body.0.conv.bias"]
    assert isinstance(model.body[1], torch.nn.MaxPool2d)
    assert model.body[0]._get_name() == "Block[unit]" and len(model.body) == 2


def test_inplace_only_where_nothing_else_reads(write_spec):
    model = compile_text(write_spec, """graph:
  first: {op: relu}                       # reads the network input: never in place
  conv: {op: conv2d, out: 4, kernel: 1}
  shared: {op: relu}                      # conv is also read by 'flat'
  k: {op: conv2d, out: 4, kernel: 1}
  own: {op: relu}                         # k is read by 'own' only
  a: {op: conv2d, out: 4, kernel: 1, from: shared}
  b: {op: relu, from: a}                  # a is also read by 'c'
  c: {op: relu, from: a}
  d: {op: relu, from: b}                  # b is a relu: autograd needs its output
  flat: {op: flatten, from: conv}         # a view of conv, which 'shared' also reads
  e: {op: relu, from: flat}
  sum: {op: add, from: [c, d]}
outputs: {x: sum, y: e, z: own}
""")
    assert relus(model) == {"first": False, "shared": False, "own": True, "b": False, "c": False, "d": False, "e": False}


def test_inplace_true_where_unsafe_is_an_error(write_spec):
    with pytest.raises(SpecShapeError) as e:
        compile_text(write_spec, "graph:\n  a: {op: conv2d, out: 4, kernel: 1}\n  b: {op: relu, inplace: true}\n  c: {op: add, from: [a, b]}\n")
    assert "in b: this relu cannot run in place: 'a' is also read by 'c'" in str(e.value)
    assert e.value.loc.line == 6


def test_residual_add_runs_in_place_on_the_branch_it_owns(write_spec):
    model = compile_text(write_spec, """graph:
  stem: {op: conv2d, out: 4, kernel: 1}
  res:
    add:
      main: {op: conv2d, out: 4, kernel: 3, padding: 1}
      skip: {op: identity}
""")
    assert "    add = main.add_(skip);  main = skip = None" in model.res.code.splitlines()  # the add container's forward
    x = torch.randn(2, 3, 16, 16)
    stem = model.stem(x)
    assert torch.allclose(model.eval()(x), model.res.main(stem) + stem)


def test_train_and_eval_outputs(write_spec):
    model = compile_text(write_spec, """graph:
  conv: {op: conv2d, out: 4, kernel: 1}
  pool: {op: adaptive_avgpool2d}
  flat: {op: flatten}
  head: {op: linear, out: 2}
  aux: {seq: [{op: adaptive_avgpool2d}, {op: flatten}, {op: linear, out: 3}], from: conv}
outputs:
  logits: head
  side: {node: aux, training_only: true}
""")
    x = torch.randn(2, 3, 16, 16)
    out = model.train()(x)
    assert out._fields == ("logits", "side") and out.side.shape == (2, 3)
    assert type(out).__name__ == "TinyOutputs"
    assert "aux" not in model.code.split("def _forward_train")[0]  # the eval forward never runs the aux head
    with torch.no_grad():
        assert isinstance(model.eval()(x), torch.Tensor)


def test_several_eval_outputs_make_a_named_tuple(write_spec):
    model = compile_text(write_spec, "graph:\n  a: {op: conv2d, out: 4, kernel: 1}\n  b: {op: relu}\noutputs:\n  a: a\n  b: b\n")
    out = model.eval()(torch.randn(1, 3, 16, 16))
    assert out._fields == ("a", "b")
    scripted = torch.jit.script(model)
    assert torch.equal(scripted(torch.ones(1, 3, 16, 16))[1], out.__class__(*model(torch.ones(1, 3, 16, 16)))[1])


def test_init_rules_apply_in_order_by_op_and_path(write_spec):
    torch.manual_seed(0)
    model = compile_text(write_spec, """graph:
  c1: {op: conv2d, out: 64, kernel: 3}
  c2: {op: conv2d, out: 64, kernel: 3}
  bn: {op: batchnorm2d}
  f: {op: flatten}
  fc: {op: linear, out: 10}
init:
  - {ops: [conv2d], weight: {fn: normal, std: 0.02}, bias: 0}
  - {paths: ["c2"], weight: {fn: trunc_normal, std: 1.0, a: -0.5, b: 0.5}, bias: 1}
  - {ops: [batchnorm2d], weight: 2, bias: -1}
""")
    assert abs(model.c1.weight.std().item() - 0.02) < 0.002
    assert model.c1.bias.abs().max().item() == 0
    assert model.c2.weight.abs().max().item() <= 0.5 and model.c2.bias.eq(1).all()
    assert model.bn.weight.eq(2).all() and model.bn.bias.eq(-1).all()
    fan_in_bound = 1 / (64 * 12 * 12) ** 0.5
    assert model.fc.weight.abs().max().item() <= fan_in_bound + 1e-6  # untouched: PyTorch's default


def test_init_rule_that_matches_nothing_warns(write_spec):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compile_text(write_spec, "graph:\n  c: {op: conv2d, out: 4, kernel: 1}\ninit:\n  - {paths: [cc], weight: 0}\n")
    found = [w.message for w in caught if isinstance(w.message, SpecWarning)]
    assert len(found) == 1 and "init rule 1 (paths cc) sets no tensor" in str(found[0])


def test_init_rule_by_op_alone_may_select_nothing(write_spec):
    # a family's base spec initialises batch norm for variants that have it (VGG's _bn): no warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compile_text(write_spec, "graph:\n  c: {op: conv2d, out: 4, kernel: 1}\ninit:\n  - {ops: [batchnorm2d], weight: 1}\n")
    assert not [w for w in caught if isinstance(w.message, SpecWarning)]


def test_pickle_deepcopy_and_torch_save(write_spec):
    model = compile_text(write_spec, "graph:\n  c: {op: conv2d, out: 4, kernel: 3}\n  r: {op: relu}\n").eval()
    x = torch.randn(1, 3, 16, 16)
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert torch.equal(clone(x), model(x)) and clone.code == model.code
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), model(x))


def _saved_with_a_dict(model, **info):
    """``model`` through torch.save and torch.load, as archspec wrote it before its metadata
    was a ModelInfo: a plain dict (this one, as it wrote it for the digits spec)."""
    from archspec._module import _rebuild

    old = dict(model.__dict__, _archspec_info={
        "name": "digits_cnn", "type_name": "DigitsCnnOutputs", "outputs": [("output", False)],
        "loss_weights": {"output": 1.0}, "input_shape": [1, 8, 8], "taps": False, "source": "docs/examples/digits.yaml",
        "checkpoint_keys": [], "classifier": ("fc", 128), "eval_inlined": [],
        "recipe": ("docs/examples/digits.yaml", {}, None, None, None), **info})
    buffer = io.BytesIO()
    torch.save(_rebuild(old), buffer)  # _rebuild is what unpickling calls
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_a_model_saved_before_model_info_loads():
    """A model saved by archspec before ModelInfo loads and runs; its recipe named no
    compile function, so ``variant()`` says it cannot recompile."""
    fast = compile_spec("docs/examples/digits.yaml", optimize="inference").eval()
    x = torch.randn(2, 1, 8, 8)
    loaded = _saved_with_a_dict(fast, optimized={"folded": 3, "fused": 3, "residual": 0, "dropped": 1, "channels_last": True})
    assert torch.equal(loaded(x), fast(x))
    assert loaded.spec_name == "digits_cnn" and loaded.num_features == 128 and loaded._archspec_info.optimized.folded == 3
    plain = _saved_with_a_dict(compile_spec("docs/examples/digits.yaml").eval())
    assert plain._archspec_info.optimized is None and plain.output_names == ["output"]
    with pytest.raises(RuntimeError, match="does not know the spec it was compiled from"):
        plain.variant(num_classes=3)


def test_train_outputs_pickle_into_a_fresh_process(write_spec, tmp_path):
    """The named tuple a model returns can be saved and read back where the spec was never
    compiled (a DataLoader worker, a later session)."""
    model = compile_text(write_spec, """graph:
  c: {op: conv2d, out: 4, kernel: 3}
  aux: {op: relu, from: c}
outputs:
  main: c
  side: {node: aux, training_only: true}
""").train()
    out = model(torch.randn(1, 3, 16, 16))
    torch.save(out, tmp_path / "out.pt")
    code = (f"import torch; o = torch.load({str(tmp_path / 'out.pt')!r}, weights_only=False); "
            "print(type(o).__name__, o._fields, tuple(o.main.shape))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[-2] == "TinyOutputs ('main', 'side') (1, 4, 14, 14)"
    again = pickle.loads(pickle.dumps(out))
    assert type(again) is type(out) and torch.equal(again.side, out.side)


def test_params_given_twice_is_an_error(write_spec):
    path = write_spec(HEAD + "params: {k: 3}\ngraph:\n  c: {op: conv2d, out: 4, kernel: $k}\n")
    with pytest.raises(TypeError, match="parameter 'k' is given twice"):
        compile_spec(path, params={"k": 1}, k=5)


def test_generated_code_is_straight_line(write_spec):
    model = compile_text(write_spec, "graph:\n  c: {op: conv2d, out: 4, kernel: 3}\n  r: {op: relu}\n")
    body = model.code.split("def _forward_eval(self, x):")[1].split("def _forward_train")[0]
    assert "for " not in body and "if " not in body
    assert "self.c(x)" in body


def test_block_containers_run_their_own_forward(write_spec):
    model = compile_text(write_spec, "graph:\n  s: [{op: relu}]\n")
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(model.s(x), torch.relu(x)) and model.s.code is not None


# -- regressions from review --------------------------------------------------------------
# Defects found in review, each pinned by a test (the spec that showed it, and what must
# happen instead): moved here from tests/test_regressions.py, beside the stage they guard.

H = "archspec: 1\nname: t\ninput: [3, 8, 8]\n"


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


def test_nodes_may_be_called_kind_or_block(write_spec):
    model = compile_spec(write_spec(H + "graph:\n  s: {seq: {kind: {op: relu}, block: {op: identity}}}\n"))
    assert isinstance(model.s.kind, torch.nn.ReLU)


def test_a_spec_name_starting_with_a_digit(write_spec):
    model = compile_spec(write_spec("archspec: 1\nname: 3d-net\ninput: [3, 8, 8]\ngraph:\n  r: {op: relu}\n  "
                                    "q: {op: identity, from: input}\noutputs: {a: r, b: {node: q, training_only: true}}\n"))
    assert type(model.train()(torch.randn(1, 3, 8, 8))).__name__ == "Net3dNetOutputs"


RETURNS_DICT = """params: {aux_loss: true}
returns: dict
graph:
  body: {seq: {conv: {op: conv2d, out: 4, kernel: 3, padding: 1}, layer3: {op: relu}, layer4: {op: conv2d, out: 6, kernel: 1}}}
  classifier: {op: conv2d, out: 2, kernel: 1}
  aux_classifier: {op: conv2d, out: 2, kernel: 1, from: body.layer3, when: $aux_loss}
outputs:
  out: classifier
  aux: {node: aux_classifier, loss_weight: 0.5}
"""


@pytest.mark.parametrize("aux_loss", [True, False])
def test_returns_dict_gives_an_ordered_dict_of_the_outputs_in_both_modes(write_spec, aux_loss):
    """As torchvision's segmentation models: an OrderedDict 'out' (and 'aux' with aux_loss) in
    train and eval, even of one output; an output switched off is left out. fx and TorchScript
    give the same dict (a plain one, as torchvision's scripted models do)."""
    import collections

    torch.manual_seed(0)
    model = compile_text(write_spec, RETURNS_DICT, aux_loss=aux_loss)
    names = ["out", "aux"] if aux_loss else ["out"]
    x = torch.randn(2, 3, 16, 16)
    for training in (True, False):
        out = model.train(training)(x)
        assert type(out) is collections.OrderedDict and list(out) == names
    with torch.no_grad():
        want = model.eval()(x)
        for other in (torch.fx.symbolic_trace(model)(x), torch.jit.script(model)(x)):
            assert list(other) == names and all(torch.equal(other[k], want[k]) for k in names)
    target = torch.randn(2, 2, 16, 16)
    out = model.train()(x)
    loss = model.loss(out, target, torch.nn.functional.mse_loss)
    expected = torch.nn.functional.mse_loss(out["out"], target)
    if aux_loss:
        expected = expected + 0.5 * torch.nn.functional.mse_loss(out["aux"], target)
    assert torch.allclose(loss, expected)
    taps = compile_text(write_spec, RETURNS_DICT, aux_loss=aux_loss, outputs=["body.layer3"])
    assert list(taps(x)) == ["body.layer3"] and type(taps(x)) is dict  # outputs= keeps its own form


def test_an_output_switched_off_by_a_parameter_is_left_out_of_a_tuple(write_spec):
    model = compile_text(write_spec, RETURNS_DICT.replace("returns: dict\n", ""), aux_loss=False)
    out = model.eval()(torch.randn(1, 3, 16, 16))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 2, 16, 16) and model.output_names == ["out"]


def test_an_init_rule_within_a_node_selects_only_inside_it(write_spec):
    model = compile_text(write_spec, """graph:
  body: {seq: {a: {op: conv2d, out: 4, kernel: 1}, b: {op: conv2d, out: 4, kernel: 1}}}
  head: {op: conv2d, out: 2, kernel: 1}
init:
  - {ops: [conv2d], within: body, weight: 0, bias: 0}
""")
    assert not model.body.a.weight.any() and not model.body.b.weight.any()
    assert model.head.weight.any() and model.head.bias.any()
