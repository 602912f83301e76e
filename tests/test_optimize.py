"""``optimize="inference"``: batch norm folded where the IR allows it, eval no-ops dropped,
channels-last, an eval-only module that keeps the spec's names (issue 10).

That the optimised outputs agree with the unoptimised model's (float32, 1e-5 relative) is
checked on every bundled spec with a fixture, inside the logits tests of ``test_seeds.py``
and ``test_zoo.py`` (same weights, no second build); the networks without a fixture are
checked here.
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

from archspec import compile_spec, load_spec, ops
from archspec._compiler import build_model
from archspec._info import Optimized
from archspec._ir import needed
from archspec._optimize import _prefers_channels_last, eval_noops, fold_plan, optimize
from archspec.cli import main
from reference import SPECS, assert_optimized_agrees, relative_error, zoo_specs

HEAD = "archspec: 1\nname: tiny\ninput: [3, 16, 16]\n"


def randomise_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Batch-norm statistics and affine values away from their defaults, so folding shows
    (as the fixture recipe's: a deep network's float32 rounding grows with wilder ones)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.2 + 0.9)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.05)
    return model


def test_fold_plan_is_static_and_needs_a_sole_reader(write_spec):
    graph = load_spec(write_spec(HEAD + """graph:
  c1: {op: conv2d, out: 8, kernel: 3, padding: 1}
  b1: {op: batchnorm2d}
  r: {op: relu}
  c2: {op: conv2d, out: 8, kernel: 3, padding: 1}
  b2: {op: batchnorm2d}
  sum: {op: add, from: [b2, c2]}
  b3: {op: batchnorm2d, track_running_stats: false}
  c3: {op: conv2d, out: 8, kernel: 1}
  b4: {op: batchnorm2d, from: c3}
  drop: {op: dropout, p: 0.5}
  pool: {op: adaptive_avgpool2d, size: 1}
  f: {op: flatten}
  fc: {op: linear, out: 4}
  b5: {op: batchnorm1d}
"""))
    # c2 has a second reader (the sum), b3 keeps no running statistics: neither folds
    assert fold_plan(graph) == {"b1": "c1", "b4": "c3", "b5": "fc"}
    assert eval_noops(graph) == {"drop": "b4"}


def test_optimised_tiny_network_keeps_names_and_outputs(write_spec):
    path = write_spec(HEAD + """graph:
  c1: {op: conv2d, out: 8, kernel: 3, padding: 1, bias: false}
  b1: {op: batchnorm2d}
  r: {op: relu}
  drop: {op: dropout, p: 0.5}
  c2: {op: conv2d, out: 8, kernel: 3, padding: 1}
  b2: {op: batchnorm2d, affine: false}
  pool: {op: adaptive_avgpool2d, size: 1}
  f: {op: flatten}
  fc: {op: linear, out: 4}
""")
    graph = load_spec(path)
    model = randomise_norms(build_model(graph)).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
    fast = optimize(copy.deepcopy(model), graph)
    assert list(fast.state_dict()) == ["c1.weight", "c1.bias", "c2.weight", "c2.bias", "fc.weight", "fc.bias"]
    assert relative_error(fast(x), expected) < 1e-6
    assert fast.c1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(p.requires_grad for p in fast.parameters())
    assert "b1" not in fast.code and "drop" not in fast.code and "channels_last" in fast.code
    with pytest.raises(RuntimeError, match="optimised for inference"):
        fast.train()
    fast.eval()  # still allowed
    # it pickles and copies as an optimised model
    again = pickle.loads(pickle.dumps(fast))
    assert torch.equal(again(x), fast(x))
    with pytest.raises(RuntimeError, match="optimised for inference"):
        again.train()
    buffer = io.BytesIO()
    torch.save(fast, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), fast(x))


def test_weights_load_before_folding(tmp_path):
    spec = zoo_specs()["resnet18"]
    model = randomise_norms(compile_spec(spec, num_classes=10)).eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    fast = compile_spec(spec, num_classes=10, weights=tmp_path / "w.pt", optimize="inference")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert relative_error(fast(x), model(x)) < 1e-5
    assert "bn1.weight" not in fast.state_dict() and "conv1.bias" in fast.state_dict()
    assert fast._archspec_info.optimized == Optimized(folded=20, fused=17, residual=8, dropped=0, channels_last=True)


def test_training_only_heads_are_dropped():
    graph = load_spec(SPECS / "googlenet.yaml", input_shape=(3, 96, 96))
    fast = optimize(build_model(graph), graph)
    assert not hasattr(fast, "aux1") and fast.fc.weight.shape == (1000, 1024)


def test_optimised_model_scripts_and_exports(tmp_path):
    graph = load_spec(zoo_specs()["mobilenet_v3_small"], input_shape=(3, 64, 64))
    model = randomise_norms(build_model(graph)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    fast = optimize(model, graph)
    scripted = torch.jit.script(fast)
    assert relative_error(scripted(x), expected) < 1e-5
    assert relative_error(torch.fx.symbolic_trace(fast)(x), expected) < 1e-5


def test_export_optimize_writes_the_folded_network(tmp_path, capsys):
    spec = zoo_specs()["squeezenet1_1"]
    assert main(["export", str(spec), "--format", "exported", "--optimize", "--input", "3,64,64",
                 "-o", str(tmp_path / "m.pt2")]) == 0
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    assert program(torch.randn(3, 3, 64, 64)).shape == (3, 1000)


def test_compiled_mode_wraps_in_torch_compile():
    fast = compile_spec(zoo_specs()["squeezenet1_1"], input_shape=(3, 64, 64), optimize="compiled")
    assert isinstance(fast, torch._dynamo.eval_frame.OptimizedModule)
    assert fast._orig_mod._archspec_info.optimized.channels_last


def test_unknown_mode_and_meta_models_are_refused():
    spec = zoo_specs()["squeezenet1_1"]
    with pytest.raises(ValueError, match="optimize is one of 'inference', 'compiled'"):
        compile_spec(spec, optimize="fast")
    with pytest.raises(ValueError, match="meta"):
        compile_spec(spec, device="meta", optimize="inference")


@pytest.mark.parametrize("spec", ["alexnet-paper.yaml", "resnet/se_resnet50.yaml"])
def test_bundled_specs_without_a_seed_fixture_agree(spec):
    graph = load_spec(SPECS / spec, input_shape=(3, 96, 96) if "alexnet" not in spec else (3, 227, 227))
    model = randomise_norms(build_model(graph))
    assert_optimized_agrees(graph, model, torch.randn(2, *graph.input_shape))


@pytest.mark.parametrize("name", ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"])
def test_efficientnet_v2_agrees_under_its_own_initialisation(name):
    # the shared fixture recipe's weights make these networks chaotic in float32 (see
    # reference.GAIN1_FIXTURES); torchvision's initialisation, the spec's `init:`, does not
    torch.manual_seed(0)
    graph = load_spec(zoo_specs()[name], input_shape=(3, 64, 64))
    model = randomise_norms(build_model(graph))
    assert_optimized_agrees(graph, model, torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize("name, expected", [("convnext/convnext_tiny", True), ("resnet/resnet18", True),
                                            ("vit/vit_b_32", False), ("swin/swin_t", False)])
def test_channels_last_where_convolutions_run_past_the_stem(name, expected):
    # ConvNeXt's linears do most of its work, but its convs and permutes gain from the
    # layout; a transformer's lone patch embedding does not
    graph = load_spec(SPECS / f"{name}.yaml")
    assert _prefers_channels_last(graph, set(needed(graph, training=False))) is expected


def test_fuse_plan_needs_the_conv_value_read_by_the_activation_alone(write_spec):
    graph = load_spec(write_spec(HEAD + """graph:
  c1: {op: conv2d, out: 8, kernel: 3, padding: 1}
  b1: {op: batchnorm2d}
  r1: {op: relu6}
  c2: {op: conv2d, out: 8, kernel: 3, padding: 1}
  r2: {op: relu}
  c3: {op: conv2d, out: 8, kernel: 1}
  s3: {op: sigmoid}
  c4: {op: conv2d, out: 8, kernel: 1}
  r4: {op: silu}
  sum: {op: add, from: [r4, c4]}
  c5: {op: conv2d, out: 8, kernel: 1}
  drop: {op: dropout, p: 0.1}
  r5: {op: hardswish}
"""))
    from archspec._optimize import fuse_plan
    skip = {**fold_plan(graph), **eval_noops(graph)}
    # b1 folds into c1 and drop computes nothing in eval: the activations after them read
    # the convs; a sigmoid is not fused; c4's value is read by the silu and the sum
    assert fuse_plan(graph, skip) == ({"r1": "c1", "r2": "c2", "r5": "c5"}, {})


def test_fuse_plan_residual_sums(write_spec):
    graph = load_spec(write_spec(HEAD + """graph:
  stem: {op: conv2d, out: 8, kernel: 3, padding: 1}
  a: {op: conv2d, out: 8, kernel: 3, padding: 1}
  an: {op: batchnorm2d}
  ar: {op: relu}
  b: {op: conv2d, out: 8, kernel: 3, padding: 1}
  bn: {op: batchnorm2d}
  sum: {op: add, from: [bn, stem]}
  out: {op: relu}
  c: {op: conv2d, out: 8, kernel: 1, from: out}
  twice: {op: add, from: [c, out]}
  d: {op: conv2d, out: 8, kernel: 1, from: twice}
  e: {op: conv2d, out: 8, kernel: 1, from: twice}
  three: {op: add, from: [d, e, twice]}
  f: {op: conv2d, out: 8, kernel: 1, from: three}
  wide: {op: conv2d, out: 16, kernel: 1, from: three}
  pool: {op: avgpool2d, kernel: 2, from: f}
  gin: {op: relu, from: three}
  g: {op: conv2d, out: 8, kernel: 1, stride: 2}
  small: {op: add, from: [pool, g]}
  post: {op: relu}
  h: {op: conv2d, out: 8, kernel: 3, padding: 1}
  sum2: {op: add, from: [h, small]}
  k: {op: conv2d, out: 8, kernel: 1}
  pos: {op: param, shape: [8, 8, 8], init: 1.0}
  learned: {op: add, from: [k, pos]}
  final: {op: concat, from: [learned, learned]}
outputs: {final: final, wide: wide}
"""))
    from archspec._optimize import fuse_plan
    activations, sums = fuse_plan(graph, fold_plan(graph))
    # b adds the stem's value, then the relu after the sum; c's input is read by the sum
    # too (nothing may overwrite it, but the call would move): not fused; a sum of three
    # is not fused; g adds the pool's value, of its own shape, and h small's. The relu
    # after small is not g's: h's sum reads small too (Xception's blocks). A learnable
    # tensor has no batch dimension: broadcast, not a residual
    assert sums == {"sum": ("b", "stem"), "small": ("g", "pool"), "sum2": ("h", "small")}
    assert activations == {"ar": "a", "out": "b"}
    assert fuse_plan(graph, fold_plan(graph), lambda conv: conv not in ("b", "h")) == (
        {"ar": "a"}, {"small": ("g", "pool")})


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("activation", [None, "relu", "relu6", "silu", "hardswish"])
def test_fused_conv_equals_conv_sum_then_activation(activation, residual):
    from archspec.layers import FusedConv2d

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2)
    plain = copy.deepcopy(conv)
    act = {None: torch.nn.Identity(), "relu": torch.nn.ReLU(), "relu6": torch.nn.ReLU6(), "silu": torch.nn.SiLU(),
           "hardswish": torch.nn.Hardswish()}[activation]
    fused = FusedConv2d.fuse(conv, ops.get(activation).fused_postop if activation else None, residual).eval()
    assert fused is conv and fused.state_dict().keys() == plain.state_dict().keys()

    def check(module, batch, layout=torch.channels_last):
        x = torch.randn(batch, 6, 9, 9).contiguous(memory_format=layout)
        other = torch.randn(batch, 8, 5, 5).contiguous(memory_format=layout) * 3 if residual else None
        with torch.no_grad():
            expected = act(plain(x) + other if residual else plain(x))
            assert relative_error(module(x, other), expected) < 1e-5

    for batch in (1, 2, 1):
        check(fused, batch)
    check(fused, 2, torch.contiguous_format)
    check(torch.jit.script(fused), 2)
    with pytest.raises(TypeError, match="with a residual exactly when it has residual=True"):
        fused(torch.randn(1, 6, 9, 9), None if residual else torch.randn(1, 8, 5, 5))


@pytest.mark.skipif(not __import__("archspec.layers").layers._ONEDNN, reason="this torch has no oneDNN convolution")
def test_fused_conv_packs_once_per_size_and_repacks_a_changed_weight():
    from archspec.layers import FusedConv2d

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 8, 3, padding=1)
    plain = copy.deepcopy(conv)
    fused = FusedConv2d.fuse(conv, ("relu", ())).requires_grad_(False)
    x1, x2 = torch.randn(1, 4, 8, 8), torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        fused(x1), fused(x2), fused(x1)
        assert set(fused._packs) == {(1, 4, 8, 8), (2, 4, 8, 8)}
        fused.weight.mul_(-2.0)  # in place: the packs are stale
        plain.weight.mul_(-2.0)
        assert relative_error(fused(x2), plain(x2).relu()) < 1e-5 and len(fused._packs) == 1
        new = {k: torch.randn_like(v) for k, v in plain.state_dict().items()}
        fused.load_state_dict(new)
        plain.load_state_dict(new)
        assert relative_error(fused(x2), plain(x2).relu()) < 1e-5
        for batch in range(1, 2 * FusedConv2d.MAX_PACKS):  # more sizes than it keeps packs of
            x = torch.randn(batch, 4, 8, 8)
            assert relative_error(fused(x), plain(x).relu()) < 1e-5
        assert len(fused._packs) == FusedConv2d.MAX_PACKS
    with torch.no_grad():
        fused.weight.data = torch.randn_like(fused.weight)  # new memory under the same parameter: seen
        plain.weight.data = fused.weight.detach().clone()
        assert relative_error(fused(x2), plain(x2).relu()) < 1e-5
        fused.weight.data.mul_(-1.0)  # torch counts no write through .data: clear_packs()
        plain.weight.data.mul_(-1.0)
        fused.clear_packs()
        assert relative_error(fused(x2), plain(x2).relu()) < 1e-5
    with torch.inference_mode():  # an inference tensor counts no writes at all: packed all the same
        made = FusedConv2d.fuse(torch.nn.Conv2d(4, 8, 3, padding=1), ("relu", ()))
        assert relative_error(made(x2), torch.relu(made._conv_forward(x2, made.weight, made.bias))) < 1e-5
        assert made._packs
    # torch's conv2d where oneDNN is turned off, or in another dtype
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        fused._packs.clear()
        assert relative_error(fused(x2), plain(x2).relu()) < 1e-5 and not fused._packs
    with torch.no_grad():
        assert relative_error(copy.deepcopy(fused).double()(x2.double()), plain(x2).relu()) < 1e-5
    # packs are a cache: neither pickled nor copied
    for clone in (pickle.loads(pickle.dumps(fused)), copy.deepcopy(fused)):
        assert clone._packs == {} and clone.state_dict().keys() == fused.state_dict().keys()
        with torch.no_grad():
            assert relative_error(clone(x2), plain(x2).relu()) < 1e-5
    # torch's conv2d under autocast, as an nn.Conv2d runs there
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused(x2).dtype == torch.bfloat16
    # gradients: torch's conv2d, as usual (oneDNN's fused kernel has no backward), for the
    # bias and the residual as for the input
    residual = FusedConv2d.fuse(copy.deepcopy(plain), ("relu", ()), True).requires_grad_(False)
    residual.bias.requires_grad_(True)
    other = torch.randn(2, 8, 8, 8, requires_grad=True)
    residual(x2, other).sum().backward()
    assert residual.bias.grad is not None and other.grad is not None and other.grad.abs().sum() > 0
    x = x2.clone().requires_grad_(True)
    fused(x).sum().backward()
    expected = x2.clone().requires_grad_(True)
    plain(expected).relu().sum().backward()
    assert relative_error(x.grad, expected.grad) < 1e-6


def test_only_a_plain_conv_is_fused():
    from archspec.layers import FusedConv2d

    with pytest.raises(TypeError, match="only an nn.Conv2d"):
        FusedConv2d.fuse(torch.nn.Conv1d(2, 2, 1), None)
    with pytest.raises(ValueError, match=r"the post-op is one of relu \(0 scalars\), hardtanh \(2 scalars\), swish "
                                         r"\(0 scalars\), hardswish \(0 scalars\) or None, not \('gelu', \(\)\)"):
        FusedConv2d.fuse(torch.nn.Conv2d(2, 2, 1), ("gelu", ()))
    with pytest.raises(ValueError, match="not \\('hardtanh', \\(6.0,\\)\\)"):
        FusedConv2d.fuse(torch.nn.Conv2d(2, 2, 1), ("hardtanh", (6.0,)))


def test_a_fused_conv_saved_by_its_op_name_loads():
    """A FusedConv2d saved before it kept oneDNN's post-op (it kept the op's name: 'relu6',
    'silu', 'relu', 'hardswish') loads with the post-op that op names now, and computes the same."""
    from archspec.layers import FusedConv2d

    torch.manual_seed(0)
    for name in ("relu", "relu6", "silu", "hardswish"):
        fused = FusedConv2d.fuse(torch.nn.Conv2d(3, 4, 3), ops.get(name).fused_postop).eval()
        old = FusedConv2d.__new__(FusedConv2d)
        state = fused.__getstate__()
        del state["scalars"]
        old.__setstate__({**state, "activation": name})
        x = torch.randn(2, 3, 8, 8)
        assert (old.activation, tuple(old.scalars)) == ops.get(name).fused_postop and torch.equal(old(x), fused(x))
