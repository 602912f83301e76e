"""The ops of dense prediction (issue 27): ``conv_transpose2d``, ``pixel_shuffle`` and
``pixel_unshuffle``, constants in ``add`` and ``mul``, ``frozen_batchnorm2d``, and batch
norm folded through a transposed convolution. Each is compared with torch's own module
or function in float64: shapes, outputs, ``state_dict`` keys, the starting weights draw
for draw, and the MACs torch's flop counter counts."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from archspec import SpecError, compile_spec, load_spec
from archspec._compiler import build_model
from archspec._optimize import fold_plan, fuse_plan, optimize
from reference import NO_TORCHVISION, torchvision_models

HEAD = "archspec: 1\nname: t\n"


def one_node(write_spec, shape, node: str):
    return write_spec(HEAD + f"input: {list(shape)}\ngraph:\n  n: {node}\n")


def error_of(write_spec, shape, node: str) -> SpecError:
    with pytest.raises(SpecError) as e:
        load_spec(one_node(write_spec, shape, node))
    return e.value


# --------------------------------------------------------------------------- conv_transpose2d

CASES = [  # (input, settings): each as nn.ConvTranspose2d takes them
    ((4, 7, 5), dict(out=6, kernel=3, stride=2, padding=1, output_padding=1, groups=2)),
    ((3, 5, 6), dict(out=4, kernel=2, stride=2)),
    ((4, 6, 6), dict(out=8, kernel=[3, 2], stride=[2, 3], padding=[1, 0], output_padding=[1, 2], bias=False)),
    ((6, 4, 5), dict(out=3, kernel=3, dilation=2, output_padding=1, groups=3)),
    ((2, 3, 3), dict(out=2, kernel=1, padding=0)),
]


def _node(settings: dict) -> str:
    return "{op: conv_transpose2d, " + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                                                 for k, v in settings.items()) + "}"


def _torch_module(c: int, settings: dict) -> nn.ConvTranspose2d:
    s = dict(settings)
    return nn.ConvTranspose2d(c, s.pop("out"), s.pop("kernel"), **s)


@pytest.mark.parametrize("shape, settings", CASES)
def test_conv_transpose2d_is_torchs(shape, settings, write_spec):
    path = one_node(write_spec, shape, _node(settings))
    torch.manual_seed(3)
    model = compile_spec(path).double()
    torch.manual_seed(3)
    ref = _torch_module(shape[0], settings).double()
    # the same keys and, from the same seed, the same weights: torch's fan in for this
    # weight is out/groups x kH x kW, its dimension 1
    assert list(model.state_dict()) == [f"n.{k}" for k in ref.state_dict()]
    for k, t in ref.state_dict().items():
        assert torch.equal(model.state_dict()[f"n.{k}"], t), k
    x = torch.randn(2, *shape, dtype=torch.float64)
    expected = ref(x)
    assert torch.equal(model(x), expected)
    node = load_spec(path).nodes["n"]
    assert node.shape == tuple(expected.shape[1:])
    # MACs: as torch's flop counter counts a transposed convolution (flops / 2)
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        ref(x[:1])
    assert node.macs == counter.get_total_flops() // 2


def test_conv_transpose2d_refuses_an_output_size_it_cannot_reach(write_spec):
    e = error_of(write_spec, (4, 7, 7), "{op: conv_transpose2d, out: 4, kernel: 2, stride: 2, output_padding: 2}")
    assert "cannot reach an output height of 16 from an input height of 7: it reaches 14 to 15" in e.message
    assert e.expected == "an output_padding of at most 1 in height"
    with pytest.raises(RuntimeError, match="output padding must be smaller"):  # torch refuses it too
        nn.ConvTranspose2d(4, 4, 2, stride=2, output_padding=2)(torch.randn(1, 4, 7, 7))
    # stride 1 and dilation 1: no output padding at all
    e = error_of(write_spec, (4, 7, 7), "{op: conv_transpose2d, out: 4, kernel: 3, output_padding: 1}")
    assert "it reaches 9 only (output_padding 0, less than" in e.message


def test_conv_transpose2d_groups_and_sizes_are_checked(write_spec):
    e = error_of(write_spec, (6, 4, 4), "{op: conv_transpose2d, out: 4, kernel: 2, groups: 4}")
    assert e.message.startswith("in n: groups=4 does not divide the 6 input channels") or \
        "groups=4 does not divide the 6 input channels" in e.message
    e = error_of(write_spec, (6, 4, 4), "{op: conv_transpose2d, out: 4, kernel: 2, groups: 3}")
    assert "groups=3 does not divide the 4 output channels" in e.message
    e = error_of(write_spec, (6, 1, 4), "{op: conv_transpose2d, out: 4, kernel: 1, padding: 1}")
    assert "output height would be -1" in e.message
    e = error_of(write_spec, (6,), "{op: conv_transpose2d, out: 4, kernel: 2}")
    assert "conv_transpose2d needs an image input" in e.message


# --------------------------------------------------------------------------- pixel shuffles

def test_pixel_shuffle_and_unshuffle_are_torchs(write_spec):
    path = write_spec(HEAD + "input: [8, 6, 4]\ngraph:\n  down: {op: pixel_unshuffle, downscale_factor: 2}\n"
                      "  up: {op: pixel_shuffle, upscale_factor: 2}\n  up2: {op: pixel_shuffle, upscale_factor: 2}\n"
                      "outputs: {down: down, up: up, up2: up2}\n")
    graph = load_spec(path)
    assert [graph.nodes[n].shape for n in ("down", "up", "up2")] == [(32, 3, 2), (8, 6, 4), (2, 12, 8)]
    model = compile_spec(path)
    assert not list(model.state_dict()) and "torch.pixel_shuffle(" in model.code
    x = torch.randn(2, 8, 6, 4, dtype=torch.float64)
    down, up, up2 = model(x)  # the outputs, in their order
    assert torch.equal(down, torch.pixel_unshuffle(x, 2))
    assert torch.equal(up, x)
    assert torch.equal(up2, nn.PixelShuffle(2)(x))


def test_pixel_shuffle_errors(write_spec):
    e = error_of(write_spec, (6, 4, 4), "{op: pixel_shuffle, upscale_factor: 2}")
    assert "pixel_shuffle by 2 needs channels in multiples of 2x2=4, but its input has 6" in e.message
    e = error_of(write_spec, (3, 6, 5), "{op: pixel_unshuffle, downscale_factor: 2}")
    assert "pixel_unshuffle by 2 needs a width that is a multiple of 2, but its input is 3x6x5" in e.message
    assert e.expected == "a downscale_factor that divides the input's height 6 and width 5"


# --------------------------------------------------------------------------- constants in joins

JOINS = """graph:
  a: {op: conv2d, out: 4, kernel: 1}
  b: {op: conv2d, out: 4, kernel: 3, padding: 1, from: input}
  avg: {op: add, from: [a, b], scale: 0.5}
  shifted: {op: add, constant: 1.5, from: avg}
  affine: {op: add, from: [a, b], scale: -2, constant: 3}
  halved: {op: mul, constant: 0.5, from: b}
  gated: {op: mul, from: [a, b], constant: 2}
  same: {op: add, from: a, scale: 1}
  r: {op: relu, inplace: auto, from: same}
outputs: {avg: avg, shifted: shifted, affine: affine, halved: halved, gated: gated, r: r, a: a}
"""


def test_add_and_mul_take_constants(write_spec):
    path = write_spec(HEAD + "input: [4, 6, 6]\n" + JOINS)
    model = compile_spec(path).double().eval()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    out = dict(zip(["avg", "shifted", "affine", "halved", "gated", "r", "a"], model(x)))
    a, b = model.a(x), model.b(x)
    assert torch.equal(out["avg"], (a + b) * 0.5)
    assert torch.equal(out["shifted"], (a + b) * 0.5 + 1.5)
    assert torch.equal(out["affine"], (a + b) * -2 + 3)
    assert torch.equal(out["halved"], b * 0.5)
    assert torch.equal(out["gated"], a * b * 2)
    # a neutral scale on one input passes it (the in-place plan knows): the relu after it
    # does not overwrite 'a', which other nodes read
    assert torch.equal(out["r"], a.relu()) and torch.equal(out["a"], a)
    with pytest.raises(SpecError, match="this relu cannot run in place: 'a' is also read by"):
        load_spec(write_spec(HEAD + "input: [4, 6, 6]\n" + JOINS.replace("inplace: auto", "inplace: true")))
    code = model.code
    assert "* 1.0" not in code and "mul_(1.0)" not in code and "+ 0.0" not in code and "add_(0.0)" not in code


def test_constants_keep_gradients_right_in_training(write_spec):
    path = write_spec(HEAD + "input: [4, 6, 6]\ngraph:\n  a: {op: conv2d, out: 4, kernel: 1}\n"
                      "  b: {op: conv2d, out: 4, kernel: 1, from: input}\n  s: {op: add, from: [a, b], scale: 0.5, constant: 1}\n"
                      "  m: {op: mul, constant: 3}\n  r: {op: relu}\n")
    model = compile_spec(path).double().train()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    ref = copy.deepcopy(model)
    y = model(x)
    y.sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    expected = torch.relu(((ref.a(x2) + ref.b(x2)) * 0.5 + 1) * 3)
    expected.sum().backward()
    assert torch.equal(y, expected)
    assert torch.equal(x.grad, x2.grad)
    assert torch.equal(model.a.weight.grad, ref.a.weight.grad)


def test_one_input_needs_a_constant(write_spec):
    e = error_of(write_spec, (4, 6, 6), "{op: add}")
    assert "add takes at least 2 inputs, but it reads 1" in e.message  # as before: the golden ref-add-one-input
    e = error_of(write_spec, (4, 6, 6), "{op: mul}")
    assert "mul takes at least 2 inputs, but it reads 1" in e.message
    e = error_of(write_spec, (4, 6, 6), "{op: mul, scale: 2}")  # mul has no scale
    assert "scale" in e.message


SUMS = """input: [4, 8, 8]
graph:
  stem: {op: conv2d, out: 4, kernel: 1}
  p1: {op: relu}
  a: {op: conv2d, out: 4, kernel: 3, padding: 1}
  sum: {op: add, from: [a, stem]}
  p2: {op: relu}
  b: {op: conv2d, out: 4, kernel: 3, padding: 1}
  scaled: {op: add, from: [b, sum], scale: 0.5}
  p3: {op: relu}
  c: {op: conv2d, out: 4, kernel: 3, padding: 1}
  shifted: {op: add, from: [c, scaled], constant: 1}
  out: {op: relu}
"""


def test_a_sum_with_constants_is_not_fused_into_a_conv(write_spec):
    plain = load_spec(write_spec(HEAD + SUMS.replace(", scale: 0.5", "").replace(", constant: 1", "")))
    assert fuse_plan(plain, {})[1] == {"sum": ("a", "stem"), "scaled": ("b", "sum"), "shifted": ("c", "scaled")}
    graph = load_spec(write_spec(HEAD + SUMS))
    activations, sums = fuse_plan(graph, fold_plan(graph))
    assert sums == {"sum": ("a", "stem")}  # a convolution adds the plain sum only
    model = build_model(graph).eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        expected = model(x)
        fast = optimize(copy.deepcopy(model), graph)
        assert torch.allclose(fast(x), expected, rtol=1e-5, atol=1e-6)
    assert fast._archspec_info.optimized.residual == 1


# --------------------------------------------------------------------------- frozen batch norm

def _random_stats(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(module, name)
            t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)


def test_frozen_batchnorm2d_is_torchvisions(write_spec):
    if torchvision_models() is None:
        pytest.skip(NO_TORCHVISION)
    import torchvision.ops as tv  # its FrozenBatchNorm2d is the reference
    path = one_node(write_spec, (5, 7, 3), "{op: frozen_batchnorm2d, eps: 0.001}")
    model = compile_spec(path).double()
    ref = tv.FrozenBatchNorm2d(5, eps=0.001).double()
    # four buffers, torchvision's keys, started as torchvision starts them
    assert list(model.state_dict()) == [f"n.{k}" for k in ref.state_dict()] == \
        ["n.weight", "n.bias", "n.running_mean", "n.running_var"]
    assert not list(model.parameters())
    for k, t in ref.state_dict().items():
        assert torch.equal(model.state_dict()[f"n.{k}"], t), k
    _random_stats(ref)
    model.n.load_state_dict(ref.state_dict())
    x = torch.randn(2, 5, 7, 3, dtype=torch.float64)
    for mode in (True, False):  # the same in train and eval mode
        model.train(mode)
        assert (model(x) - ref(x)).abs().max().item() <= 1e-12
    # a trained batch norm's checkpoint loads (its num_batches_tracked is ignored)
    bn = nn.BatchNorm2d(5).double()
    model.n.load_state_dict(bn.state_dict())
    assert torch.equal(model.n.running_var, bn.running_var)


def test_frozen_batchnorm2d_folds_into_the_conv_before_it(write_spec):
    graph = load_spec(write_spec(HEAD + "input: [3, 9, 9]\ngraph:\n  c: {op: conv2d, out: 4, kernel: 3, bias: false}\n"
                                 "  f: {op: frozen_batchnorm2d}\n  r: {op: relu}\n"))
    assert fold_plan(graph) == {"f": "c"}
    model = build_model(graph).double().eval()
    _random_stats(model.f)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    expected = model(x)
    fast = optimize(copy.deepcopy(model), graph)
    assert list(fast.state_dict()) == ["c.weight", "c.bias"]
    assert (fast(x) - expected).abs().max().item() < 1e-12


# --------------------------------------------------------------------------- folding through a transposed conv

@pytest.mark.parametrize("groups, bias", [(1, True), (2, False), (4, True)])
def test_batchnorm_folds_into_a_transposed_conv(groups, bias, write_spec):
    graph = load_spec(write_spec(HEAD + f"""input: [4, 5, 6]
graph:
  up: {{op: conv_transpose2d, out: 8, kernel: 3, stride: 2, padding: 1, output_padding: 1, groups: {groups}, bias: {str(bias).lower()}}}
  bn: {{op: batchnorm2d}}
  r: {{op: relu}}
"""))
    assert fold_plan(graph) == {"bn": "up"}
    torch.manual_seed(0)
    model = build_model(graph).double()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.bn.running_mean.copy_(torch.randn(8, generator=g, dtype=torch.float64))
        model.bn.running_var.copy_(torch.rand(8, generator=g, dtype=torch.float64) + 0.5)
        model.bn.weight.copy_(torch.rand(8, generator=g, dtype=torch.float64) + 0.5)
        model.bn.bias.copy_(torch.randn(8, generator=g, dtype=torch.float64))
    model.eval()
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    expected = model(x)
    fast = optimize(copy.deepcopy(model), graph)
    assert list(fast.state_dict()) == ["up.weight", "up.bias"] and "bn" not in fast.code
    assert fast._archspec_info.optimized.folded == 1
    assert (fast(x) - expected).abs().max().item() < 1e-12


def test_a_read_of_the_layers_size_alone_does_not_stop_the_fold(write_spec):
    """A ``like:`` read of the transposed conv takes its size, which folding keeps: the batch
    norm still folds, and the resize reads the folded layer's size."""
    graph = load_spec(write_spec(HEAD + """input: [4, 5, 6]
graph:
  up: {op: conv_transpose2d, out: 8, kernel: 2, stride: 2}
  bn: {op: batchnorm2d}
  r: {op: relu}
  grown: {op: interpolate, like: up, from: input}
  cat: {op: concat, from: [r, grown]}
"""))
    assert fold_plan(graph) == {"bn": "up"}
    model = build_model(graph).double()
    with torch.no_grad():
        model.bn.running_var.uniform_(0.5, 1.5), model.bn.running_mean.normal_()
    model.eval()
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    expected = model(x)
    fast = optimize(copy.deepcopy(model), graph)
    assert "bn" not in dict(fast.named_children())
    assert fast(x).shape == (2, 12, 10, 12) and (fast(x) - expected).abs().max().item() < 1e-12
