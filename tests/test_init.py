"""Compiling on the meta device and filling every tensor once (issue 10).

The module tree is built without memory; each tensor is then filled once, from the last
``init:`` rule that sets it or from its op's default, which must be PyTorch's own start,
draw for draw. Checkpoints are put in place without filling anything first.
"""

from __future__ import annotations

import pytest
import torch

import archspec._initialize as initialize
from archspec import SpecSchemaError, compile_spec, load_spec
from archspec._compiler import build_model
from archspec._lower import _build_tree
from archspec._info import ModelInfo
from archspec._module import make_module
from reference import SPECS, zoo_specs

HEAD = "archspec: 1\nname: tiny\ninput: [3, 16, 16]\n"

# every op that holds tensors, in a network without init rules
EVERY_TENSOR_OP = HEAD + """graph:
  c: {op: conv2d, out: 8, kernel: 3, padding: 1}
  g: {op: conv2d, out: 8, kernel: 3, groups: 2, bias: false}
  d: {op: conv2d, kernel: 3, depthwise: true}
  bn: {op: batchnorm2d}
  gn: {op: groupnorm, groups: 4}
  ln2: {op: layernorm2d}
  pool: {op: adaptive_avgpool2d, size: 1}
  f: {op: flatten}
  bn1: {op: batchnorm1d}
  ln: {op: layernorm}
  fc: {op: linear, out: 10}
  nobias: {op: linear, out: 5, bias: false}
"""


def constructed_by_torch(graph, seed: int) -> dict[str, torch.Tensor]:
    """The state a build with torch's own constructors makes (each module's
    ``reset_parameters`` in construction order): what archspec compiled before issue 10."""
    torch.manual_seed(seed)
    model = make_module("def forward(self, x):\n    return x\n\ndef _forward_eval(self, x):\n    return x\n\n"
                        "def _forward_train(self, x):\n    return x\n",
                        ModelInfo(name=graph.name, type_name="Outputs", outputs=[], loss_weights={}, input_shape=[],
                                  taps=True, source="", checkpoint_keys=[], classifier=None))
    _build_tree(model, graph, graph.inplace, meta=False)
    return model.state_dict()


def counting(monkeypatch) -> list:
    calls: list = []
    real = initialize.init_tensor

    def counted(tensor, spec):
        calls.append(spec)
        real(tensor, spec)

    monkeypatch.setattr(initialize, "init_tensor", counted)
    return calls


def test_defaults_are_pytorchs_draw_for_draw(write_spec):
    path = write_spec(EVERY_TENSOR_OP)
    reference = constructed_by_torch(load_spec(path), seed=3)
    torch.manual_seed(3)
    state = compile_spec(path).state_dict()
    assert list(state) == list(reference)
    for key, tensor in reference.items():
        assert torch.equal(state[key], tensor), key
    assert state["c.weight"].abs().max() > 0 and state["bn.running_var"].eq(1).all()


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "convnext_tiny"])
def test_bundled_specs_without_their_rules_start_as_torch_would(name):
    # init=False: only the ops' defaults, which must equal the constructors' (a param node
    # starts from its own `init`, which the constructor-built reference leaves empty)
    graph = load_spec(zoo_specs()[name], input_shape=(3, 32, 32))
    reference = constructed_by_torch(graph, seed=0)
    torch.manual_seed(0)
    state = compile_spec(zoo_specs()[name], input_shape=(3, 32, 32), init=False).state_dict()
    assert list(state) == list(reference)
    params = {p for p in graph.order if graph.nodes[p].op == "param"}
    for key, tensor in reference.items():
        if key not in params:
            assert torch.equal(state[key], tensor), key
    for key in params:
        assert torch.equal(state[key], torch.full_like(state[key], graph.nodes[key].concrete.init)), key


def test_every_tensor_is_filled_once_from_its_last_rule(write_spec, monkeypatch):
    calls = counting(monkeypatch)
    path = write_spec(HEAD + """graph:
  c1: {op: conv2d, out: 4, kernel: 3}
  c2: {op: conv2d, out: 4, kernel: 3}
  bn: {op: batchnorm2d}
  s: {op: param, shape: [4, 1, 1], init: 0.5}
  m: {op: mul, from: [bn, s]}
init:
  - {ops: [conv2d], weight: {fn: normal, std: 0.02}, bias: 0}
  - {paths: [c2], weight: 3}
""")
    model = compile_spec(path)
    state = model.state_dict()
    assert len(calls) == len(state) == 10
    assert calls.count(3.0) == 1 and model.c2.weight.eq(3).all()
    assert sum(1 for c in calls if isinstance(c, dict) and c.get("fn") == "normal") == 1  # c1 only: c2's is not drawn
    assert model.s.eq(0.5).all() and model.bn.running_var.eq(1).all()


def test_the_same_seed_gives_the_same_weights():
    spec = SPECS / "googlenet.yaml"
    states = []
    for _ in range(2):
        torch.manual_seed(7)
        states.append(compile_spec(spec, num_classes=10, aux_logits=False).state_dict())
    assert all(torch.equal(a, states[1][k]) for k, a in states[0].items())


def test_a_complete_checkpoint_is_put_in_place_without_filling(tmp_path, monkeypatch):
    spec = zoo_specs()["resnet18"]
    saved = compile_spec(spec, num_classes=10).state_dict()
    torch.save(saved, tmp_path / "w.pt")
    calls = counting(monkeypatch)
    model = compile_spec(spec, num_classes=10, weights=tmp_path / "w.pt")
    assert calls == []
    assert all(torch.equal(t, saved[k]) for k, t in model.state_dict().items())
    assert not any(t.is_meta for t in model.state_dict().values())
    assert model.fc.weight.requires_grad and isinstance(model.fc.weight, torch.nn.Parameter)


def test_non_strict_loading_fills_only_what_the_checkpoint_lacks(tmp_path, monkeypatch):
    spec = zoo_specs()["resnet18"]
    torch.save(compile_spec(spec).state_dict(), tmp_path / "w.pt")
    calls = counting(monkeypatch)
    model = compile_spec(spec, num_classes=10, weights=tmp_path / "w.pt", strict=False)
    assert len(calls) == 2  # fc.weight and fc.bias, from the spec's rule for linear layers
    report = model.load_report
    assert [k for k, _, _ in report.mismatched] == ["fc.weight", "fc.bias"] and not report.missing
    assert model.fc.weight.shape == (10, 512) and 0 < model.fc.weight.abs().max() < 1


def test_checkpoint_tensors_take_the_models_dtype_and_are_not_tied(tmp_path):
    spec = zoo_specs()["resnet18"]
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in compile_spec(spec).state_dict().items()}
    shared = torch.zeros(2, 1000, 512)
    state["fc.weight"], state["fc.bias"] = shared[0], shared[1, :, 0]  # views of one storage
    torch.save(state, tmp_path / "w.pt")
    model = compile_spec(spec, weights=tmp_path / "w.pt")
    assert model.conv1.weight.dtype == torch.float32
    with torch.no_grad():
        model.fc.weight.fill_(1)
    assert model.fc.bias.eq(0).all()


def test_a_strict_mismatch_is_still_reported(tmp_path):
    spec = zoo_specs()["resnet18"]
    state = compile_spec(spec).state_dict()
    del state["layer1.0.conv1.weight"]
    state["extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(archspec_weights_error(), match=r"missing from the checkpoint \(1\): layer1.0.conv1.weight"):
        compile_spec(spec, weights=tmp_path / "w.pt")


def archspec_weights_error():
    from archspec import WeightsError

    return WeightsError


def test_meta_device_builds_without_memory_or_filling(monkeypatch):
    calls = counting(monkeypatch)
    model = compile_spec(zoo_specs()["regnet_y_128gf"], device="meta")
    assert calls == [] and all(t.is_meta for t in model.state_dict().values())
    assert sum(t.numel() for t in model.parameters()) == 644_812_894


def test_build_model_on_a_device_fills_there():
    graph = load_spec(zoo_specs()["squeezenet1_1"], input_shape=(3, 64, 64))
    model = build_model(graph, device="cpu")
    assert {t.device.type for t in model.state_dict().values()} == {"cpu"}


def test_an_initialiser_beyond_float32_is_refused_statically(write_spec):
    path = write_spec(HEAD + "graph:\n  fc: {op: conv2d, out: 4, kernel: 1}\ninit:\n"
                             "  - {ops: [conv2d], weight: {fn: uniform, a: -3.0e+38, b: 3.0e+38}}\n")
    with pytest.raises(SpecSchemaError, match="beyond float32") as info:
        load_spec(path)  # before any tensor exists
    assert info.value.loc.line == 7  # the rule
