"""Every bundled spec against its reference fixture (shared/reference, copied into
tests/fixtures): state_dict keys and shapes, parameter count, logits under the
deterministic weights, MACs, and the compiled module's behaviour (train/eval outputs,
backward, torch.fx, TorchScript, other input sizes)."""

from __future__ import annotations

import math

import pytest
import torch

from archspec import compile_spec, load_spec
from archspec._compiler import build_model
from archspec._summary import totals
from reference import GMACS, SEEDS, SPECS, assert_optimized_agrees, deterministic_input, fixture, materialize, relative_error

CASES = sorted(SEEDS.items())
IDS = [name for _, name in CASES]
#: one representative per family for the expensive checks (the DenseNets differ only in
#: their parameters, AlexNet's paper layout only in LRN, which test_ops checks against torch)
REPRESENTATIVES = [(s, n) for s, n in CASES if n in ("alexnet", "googlenet", "inception_v3", "xception", "densenet121")]
REP_IDS = [name for _, name in REPRESENTATIVES]


def test_every_bundled_spec_is_a_seed():
    assert sorted(p.name for p in SPECS.glob("*.yaml")) == sorted(SEEDS)


@pytest.fixture(scope="module")
def compiled():
    cache = {}

    def get(spec: str):
        if spec not in cache:
            torch.manual_seed(0)
            cache.clear()  # keep one network in memory at a time
            cache[spec] = compile_spec(SPECS / spec)
        return cache[spec]

    return get


@pytest.mark.parametrize("spec,name", CASES, ids=IDS)
def test_state_dict_keys_shapes_and_parameters(spec, name, compiled):
    ref = fixture(name)
    model = compiled(spec)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == {k: shape for k, shape in ref["state_dict"]}
    assert sum(p.numel() for p in model.parameters()) == ref["parameters"]


@pytest.mark.parametrize("spec,name", CASES, ids=IDS)
def test_logits_match_the_reference(spec, name):
    ref = fixture(name)
    graph = load_spec(SPECS / spec)
    model = materialize(build_model(graph, device="meta"), threads=2).eval()  # the reference's keys load strictly
    with torch.no_grad():
        out = model(deterministic_input(ref["input_shape"][-1]))
    expected = torch.tensor(ref["logits"], dtype=torch.float64)
    assert out.shape == expected.shape
    assert relative_error(out, expected) < 1e-9
    # the same weights, optimised for inference, in float32 (issue 10)
    assert_optimized_agrees(graph, model, deterministic_input(ref["input_shape"][-1]))


@pytest.mark.parametrize("spec,name", CASES, ids=IDS)
def test_macs_agree_with_the_published_figure(spec, name):
    graph = load_spec(SPECS / spec)
    gmacs = totals(graph).macs / 1e9
    assert math.isclose(gmacs, GMACS[name], rel_tol=0.01), gmacs
    assert totals(graph).params == fixture(name)["parameters"]


@pytest.mark.parametrize("spec,name", REPRESENTATIVES, ids=REP_IDS)
def test_backward_reaches_every_parameter(spec, name, compiled):
    model = compiled(spec).train()
    size = fixture(name)["input_shape"][-1]
    out = model(torch.randn(2, 3, size, size))
    outputs = list(out) if isinstance(out, tuple) else [out]
    sum(o.float().pow(2).mean() for o in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("spec,name", REPRESENTATIVES, ids=REP_IDS)
def test_fx_trace_and_torchscript_agree_with_eager(spec, name, compiled):
    model = compiled(spec).eval()
    size = fixture(name)["input_shape"][-1]
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = model(x)
        traced = torch.fx.symbolic_trace(model)(x)
        scripted = torch.jit.script(model)(x)
    assert torch.equal(traced, eager)
    assert torch.allclose(scripted, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", ["googlenet.yaml", "convnext/convnext_tiny.yaml", "mobilenet/mobilenet_v3_small.yaml"])
def test_torch_compile_traces_the_whole_forward(spec):
    """torch.compile's tracer (dynamo) takes the generated forward as one graph, with no
    graph break (fullgraph=True raises on one), in eval and in train mode; the "eager"
    backend keeps the test quick and leaves code generation out of it."""
    torch._dynamo.reset()
    model = compile_spec(SPECS / spec)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for mode in (False, True):
            model.train(mode)
            torch.manual_seed(3)  # the same dropout masks in train mode
            eager = model(x)
            torch.manual_seed(3)
            compiled_out = torch.compile(model, backend="eager", fullgraph=True)(x)
            assert type(compiled_out) is type(eager)
            if isinstance(eager, tuple):
                assert eager._fields == compiled_out._fields
                pairs = zip(eager, compiled_out)
            else:
                pairs = [(eager, compiled_out)]
            for a, b in pairs:
                assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


TRAIN_OUTPUTS = {
    "googlenet.yaml": ("logits", "aux_logits2", "aux_logits1"),
    "inception_v3.yaml": ("logits", "aux_logits"),
}


@pytest.mark.parametrize("spec,fields", sorted(TRAIN_OUTPUTS.items()))
def test_train_mode_returns_named_tuple_and_eval_a_tensor(spec, fields):
    model = compile_spec(SPECS / spec)
    size = load_spec(SPECS / spec).input_shape[-1]
    x = torch.randn(2, 3, size, size)
    out = model.train()(x)
    assert type(out).__name__.endswith("Outputs")
    assert out._fields == fields
    assert all(t.shape == (2, 1000) for t in out)
    with torch.no_grad():
        assert isinstance(model.eval()(x), torch.Tensor)


@pytest.mark.parametrize("spec,name", [("googlenet.yaml", "googlenet"), ("inception_v3.yaml", "inception_v3")])
def test_aux_logits_false_removes_the_aux_heads(spec, name):
    model = compile_spec(SPECS / spec, aux_logits=False)
    keys = set(model.state_dict())
    reference = {k for k, _ in fixture(name)["state_dict"]}
    assert keys == {k for k in reference if not k.startswith(("aux", "AuxLogits"))}
    assert keys < reference
    size = load_spec(SPECS / spec).input_shape[-1]
    assert isinstance(model.train()(torch.randn(2, 3, size, size)), torch.Tensor)


def test_published_variant_parameter_counts():
    # shared/reference/README.md: "GoogLeNet without aux heads 6,624,904; with the paper's 5x5 ... 7,005,832"
    assert totals(load_spec(SPECS / "googlenet.yaml", aux_logits=False)).params == 6_624_904
    assert totals(load_spec(SPECS / "googlenet.yaml", aux_logits=False, paper_5x5=True)).params == 7_005_832
    assert totals(load_spec(SPECS / "inception_v3.yaml", aux_logits=False)).params == 23_834_568


@pytest.mark.parametrize("spec,size", [("googlenet.yaml", 256), ("densenet121.yaml", 160), ("alexnet.yaml", 256),
                                       ("xception.yaml", 224), ("inception_v3.yaml", 342)])
def test_other_input_sizes(spec, size):
    graph = load_spec(SPECS / spec, input_shape=(3, size, size))
    model = compile_spec(SPECS / spec, input_shape=(3, size, size)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 1000)
    assert graph.nodes[graph.outputs[0].node].shape == (1000,)


def _weights(model, op):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, op)]


def test_default_initialisation_googlenet():
    torch.manual_seed(0)
    model = compile_spec(SPECS / "googlenet.yaml")
    for name, m in _weights(model, (torch.nn.Conv2d, torch.nn.Linear)):
        w = m.weight.detach()
        assert abs(w.std().item() - 0.01) < 0.002 and w.abs().max().item() <= 2, name  # trunc_normal(0, 0.01, -2, 2)
    for name, m in _weights(model, torch.nn.BatchNorm2d):
        assert m.weight.eq(1).all() and m.bias.eq(0).all(), name


def test_default_initialisation_inception_v3():
    torch.manual_seed(0)
    model = compile_spec(SPECS / "inception_v3.yaml")
    special = {"AuxLogits.conv1.conv": 0.01, "AuxLogits.fc": 0.001}
    for name, m in _weights(model, (torch.nn.Conv2d, torch.nn.Linear)):
        expected = special.get(name, 0.1)
        assert abs(m.weight.std().item() - expected) < 0.15 * expected, (name, m.weight.std().item())
    for name, m in _weights(model, torch.nn.BatchNorm2d):
        assert m.weight.eq(1).all() and m.bias.eq(0).all(), name


@pytest.mark.parametrize("spec,mode", [("densenet121.yaml", "fan_in"), ("xception.yaml", "fan_out")])
def test_default_initialisation_kaiming(spec, mode):
    torch.manual_seed(0)
    model = compile_spec(SPECS / spec)
    for name, m in _weights(model, torch.nn.Conv2d):
        w = m.weight.detach()
        fan = w[0].numel() if mode == "fan_in" else w.shape[0] * w[0, 0].numel()
        expected = math.sqrt(2 / fan)
        if w.numel() >= 1000:
            assert abs(w.std().item() - expected) < 0.15 * expected, (name, w.std().item(), expected)
    for name, m in _weights(model, torch.nn.BatchNorm2d):
        assert m.weight.eq(1).all() and m.bias.eq(0).all(), name
    linear = _weights(model, torch.nn.Linear)[-1][1]
    if spec.startswith("densenet"):
        assert linear.bias.eq(0).all()  # torchvision sets the classifier bias to 0


def test_default_initialisation_alexnet_paper():
    torch.manual_seed(0)
    model = compile_spec(SPECS / "alexnet-paper.yaml")
    ones = {"features.4", "features.10", "features.12", "classifier.0", "classifier.3"}  # conv 2, 4, 5 and the hidden fc
    layers = _weights(model, (torch.nn.Conv2d, torch.nn.Linear))
    assert len(layers) == 8
    for name, m in layers:
        assert abs(m.weight.std().item() - 0.01) < 0.0015, name
        assert m.bias.eq(1 if name in ones else 0).all(), name
